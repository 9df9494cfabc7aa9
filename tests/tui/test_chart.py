"""MetricChart: re-plots only when the data changed, draws few points, log axes with readable ticks."""

from __future__ import annotations

from textual.app import App, ComposeResult

from grok_tui.figures.series import Series
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


def test_ansi_lines_match_rich_from_ansi():
    """The chart's fast ANSI parser gives the text and the style of every cell that Rich's gives."""
    import math

    import plotext
    from rich.console import Console
    from rich.segment import Segment
    from rich.text import Text

    from grok_tui.tui.widgets.chart import ansi_lines

    plotext.clear_figure()
    plotext.plotsize(60, 14)
    plotext.theme("dark")  # foreground and background colours, bold title
    xs = [math.log10(i) for i in range(20, 3500, 20)]
    plotext.plot(xs, [min(1, i / 100) for i in range(len(xs))], color="cyan", marker="braille", label="train")
    plotext.plot(xs, [min(1, i / 150) for i in range(len(xs))], color=(255, 120, 0), label="val")
    plotext.vline(math.log10(240), color="magenta")
    plotext.title("accuracy")
    out = plotext.build()
    assert "\x1b[" in out
    ref = list(Segment.split_lines(Text.from_ansi(out).render(Console(width=200))))
    got = ansi_lines(out)

    def cells(lines):
        return [[(ch, seg.style) for seg in line for ch in seg.text] for line in lines]

    assert cells(got) == cells(ref)


async def test_non_finite_and_huge_values_are_skipped_not_fatal():
    from textual.app import App

    from grok_tui.figures.series import series
    from grok_tui.tui.widgets.chart import MetricChart

    rows = [{"step": 10, "val_loss": 1.0}, {"step": 20, "val_loss": 1e308}, {"step": 30, "val_loss": -1e308},
            {"step": 40, "val_loss": float("inf")}, {"step": 50, "val_loss": float("nan")},
            {"step": 60, "val_loss": 0.5}, {"step": 10**400, "val_loss": 0.1}]
    s = series(rows, "val_loss")
    assert s.x == [10.0, 60.0] and s.y == [1.0, 0.5]

    class One(App):
        def compose(self):
            yield MetricChart("loss", "val_loss", logx=True, logy=True, id="c")

    app = One()
    async with app.run_test(size=(80, 24)) as pilot:
        chart = app.query_one("#c", MetricChart)
        for logy in (True, False):
            chart.logy = logy
            chart.show([s, series(rows, "val_loss", label="again")])
            await pilot.pause()
            assert "loss" in chart.plt.build()
