"""The Runs / compare screen on the checked-in fixture runs: select, overlay, metric, log axes,
details, delete with confirmation, live discovery of new runs, export."""

from __future__ import annotations

import shutil

from grok_tui.tui.app import make_app
from grok_tui.tui.screens.dialogs import ConfirmScreen, ExportScreen, RunDetailsScreen
from grok_tui.tui.screens.runs import RunsScreen
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.run_table import RunTable

from .conftest import wait_for


async def open_runs(pilot) -> RunsScreen:
    await pilot.press("r")
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    await wait_for(pilot, lambda: screen.query_one(RunTable).row_count > 0, 20, "the runs table")
    return screen


async def test_select_two_runs_and_overlay_them(fixture_runs):
    app = make_app(fixture_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(RunTable)
        assert table.row_count == 3  # diverged-lr1e4, smoke-lr2e-3, smoke-wd0.3
        await pilot.press("down", "space", "down", "space")
        await wait_for(pilot, lambda: len(screen.query_one("#overlay", MetricChart).series) == 2, 20, "2 series")
        chart = screen.query_one("#overlay", MetricChart)
        s1, s2 = chart.series
        assert s1.label != s2.label and s1.color != s2.color and s1.x and s2.x
        assert chart.metric == "val_acc"
        grokked = [s for s in chart.series if "grokked" in s.milestones]
        assert grokked, "the grokked run carries its milestone mark"
        # the legend marks: plotext draws both labels in the chart
        text = chart.plt.build()
        assert s1.label in text and s2.label in text
        # next metric, then log y on and off
        await pilot.press("m")
        await pilot.pause()
        assert chart.metric == "train_acc" and all(s.x for s in chart.series)
        await pilot.press("m", "m")
        await pilot.pause()
        assert chart.metric == "train_loss" and chart.logy  # losses start on a log axis
        await pilot.press("L")
        assert not chart.logy
        await pilot.press("l")
        assert not chart.logx
        # deselect one
        await pilot.press("space")
        await pilot.pause()
        assert len(chart.series) == 1


async def test_details_and_delete_with_confirmation(fixture_runs):
    app = make_app(fixture_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(RunTable)
        first = table.current_id
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, RunDetailsScreen) and app.screen.run.id == first
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert (fixture_runs / first).is_dir()
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: table.row_count == 2, 10, "the row to go")
        assert not (fixture_runs / first).exists()


async def test_runs_started_elsewhere_appear_live(fixture_runs):
    app = make_app(fixture_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(RunTable)
        src = fixture_runs / "smoke-wd0.3"
        shutil.copytree(src, fixture_runs / "zz-copied-in")
        await wait_for(pilot, lambda: table.row_count == 4, 10, "the new run in the table")
        # a selected run that grows is redrawn with its new rows
        table.move_cursor(row=3)
        await pilot.press("space")
        chart = screen.query_one("#overlay", MetricChart)
        await wait_for(pilot, lambda: len(chart.series) == 1, 10, "the series")
        n = len(chart.series[0].x)
        metrics = fixture_runs / "zz-copied-in" / "metrics.jsonl"
        with open(metrics, "a") as f:
            f.write('{"step": 999999, "val_acc": 0.5, "train_acc": 1.0}\n')
        await wait_for(pilot, lambda: len(chart.series[0].x) == n + 1, 10, "the appended row")


async def test_export_from_the_overlay_writes_figure_and_csv(fixture_runs, tmp_path):
    app = make_app(fixture_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        await pilot.press("e")  # nothing selected: a warning, no dialog
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("space")  # the diverged run: no rows, nothing to export
        await wait_for(pilot, lambda: screen.query_one("#overlay", MetricChart).series, 10, "a series")
        await pilot.press("e")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("down", "space")
        await wait_for(pilot, lambda: len(screen.query_one("#overlay", MetricChart).series) == 2, 10, "2 series")
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        inp = app.screen.query_one("#export-path")
        assert "/grok-val_acc-" in inp.value  # named after the metric drawn
        inp.value = str(tmp_path / "out" / "fig")
        (tmp_path / "out").mkdir()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert (tmp_path / "out" / "fig.png").stat().st_size > 1000
        lines = (tmp_path / "out" / "fig.csv").read_text().splitlines()
        # runs by id, a column per setting that differs between the two (lr, steps)
        assert lines[0] == "run,step,metric,value,lr,steps" and len(lines) > 5 and ",val_acc," in lines[1]
        await pilot.press("v")  # train and val together: the file is named after both
        await wait_for(pilot, lambda: len(screen.query_one("#overlay", MetricChart).series) == 4, 10, "4 series")
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        assert "/grok-train_acc+val_acc-" in app.screen.query_one("#export-path").value
        await pilot.press("escape")
