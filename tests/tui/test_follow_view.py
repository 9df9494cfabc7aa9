"""The app's work is proportional to what changed: one followed run per run for every view, dropped when no
view holds it; the runs table recomputes only changed rows; a chart of a long run hands plotext about two
points per column. Counted, never timed."""

from __future__ import annotations

import json

from textual.app import App, ComposeResult

from grok_tui.figures.series import Series
from grok_tui.store import files
from grok_tui.tui.app import make_app
from grok_tui.tui.messages import RunUpdated
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.run_table import RunTable

from .conftest import wait_for
from .test_runs import open_runs


class ChartApp(App):
    def compose(self) -> ComposeResult:
        yield MetricChart("accuracy", "val_acc", logx=True, id="c")


async def test_a_chart_of_a_million_points_hands_plotext_two_per_column():
    app = ChartApp()
    async with app.run_test(size=(80, 20)) as pilot:
        chart = app.query_one(MetricChart)
        await pilot.pause()
        handed: list[int] = []
        real = chart.plt.plot
        chart.plt.plot = lambda x, y, **kw: handed.append(len(x)) or real(x, y, **kw)
        xs = [float(s) for s in range(1, 1_000_001)]
        s = Series("val_acc", xs, [min(1.0, x / 600_000) for x in xs], {"memorized": 2_000, "grokked": 500_000},
                   raw=[0.5] * len(xs))
        assert chart.show([s])
        w = chart.size.width
        assert len(handed) == 2 and all(n <= 2 * w + 4 for n in handed), (handed, w)  # raw + smoothed
        assert chart.plotted == max(handed)
        handed.clear()
        chart.logx = False
        chart.show([s])
        assert handed and all(n <= 2 * w + 4 for n in handed)
        assert len(s.x) == 1_000_000  # the series itself stays whole (export, plot)


async def test_selected_runs_are_followed_once_and_dropped_when_deselected(fixture_runs):
    app = make_app(fixture_runs, attach_on_start=False)
    messages: list = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        screen = await open_runs(pilot)
        await pilot.press("down", "space")  # smoke-lr2e-3
        rid = screen.selected[0]
        await wait_for(pilot, lambda: len(screen.chart.series) == 1, 20, "its series")
        run = app.followed[rid]
        # the Train view's attach shares the same followed run
        assert app.attach(rid) is run
        assert sum(isinstance(m, RunUpdated) and m.run_id == rid and m.rows for m in messages) >= 1
        reads = run.follower.reads
        # rows appended to the run reach the chart through the same follower (only the new rows)
        rows = files.read_jsonl(fixture_runs / rid / "metrics.jsonl")
        last = rows[-1]
        with open(fixture_runs / rid / "metrics.jsonl", "a") as f:
            f.write(json.dumps({**last, "step": last["step"] + 20}) + "\n")
        n = len(screen.chart.series[0].x)
        await wait_for(pilot, lambda: len(screen.chart.series[0].x) == n + 1, 20, "the new row on the chart")
        assert run.follower.reads == reads + 1  # the metrics file alone was read again
        # deselected but shown in Train: still followed; let go by both: no longer read
        await pilot.press("space")
        await pilot.pause()
        assert rid in app.followed
        app.live = None
        app.unfollow(rid, "train")
        assert rid not in app.followed


async def test_an_unchanged_scan_touches_no_table_row(fixture_runs):
    app = make_app(fixture_runs, attach_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(RunTable)
        made = table.made
        runs, changed = screen.scanner.scan()
        assert not changed  # and so the scan worker posts nothing
        screen._sync_table()  # even a sync of the same runs computes no row again
        assert table.made == made
        summary = json.loads((fixture_runs / "smoke-wd0.3" / "summary.json").read_text())
        files.atomic_write_text(fixture_runs / "smoke-wd0.3" / "summary.json",
                                json.dumps({**summary, "best_val_acc": 0.123}))
        screen.scan()
        await wait_for(pilot, lambda: table.made == made + 1, 20, "the changed row")
        assert "0.123" in str(table.get_row("smoke-wd0.3"))
