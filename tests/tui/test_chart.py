"""MetricChart: re-plots only when the data changed, draws few points, log axes with readable ticks."""

from __future__ import annotations

from textual.app import App, ComposeResult

from grok_tui.export import Series
from grok_tui.tui.widgets.chart import MetricChart


class ChartApp(App):
    def compose(self) -> ComposeResult:
        yield MetricChart("accuracy", "val_acc", logx=True, id="c")


async def test_chart_downsamples_and_skips_unchanged_data():
    app = ChartApp()
    async with app.run_test(size=(60, 20)) as pilot:
        chart = app.query_one(MetricChart)
        await pilot.pause()
        xs = [float(s) for s in range(10, 50_010, 10)]
        s = Series("val_acc", xs, [min(1.0, x / 40_000) for x in xs], {"memorized": 200, "grokked": 30_000})
        assert chart.show([s]) is True
        n = chart.redraws
        assert chart.show([s]) is False and chart.redraws == n  # same data: no re-plot
        await pilot.pause()
        plotted = chart.plt.monitor.x  # the x data sets plotext holds
        assert plotted and len(plotted[0]) <= 2 * chart.size.width + 2
        text = chart.plt.build()
        assert "1k" in text and "10k" in text  # log10(step) axis labelled in steps
        assert "[M 200 G 30000]" in text  # milestone marks named in the title
        chart.action_toggle_logx()
        assert not chart.logx and chart.redraws == n + 1
        s.x.append(50_010.0)
        s.y.append(1.0)
        assert chart.show([s]) is True
