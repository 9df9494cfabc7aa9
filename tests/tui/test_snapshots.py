"""Snapshots of the main screens (pytest-textual-snapshot), from the app the CLI builds, pointed at the
checked-in fixture runs, never at live training. After an intended change to a screen (or to the config
fields the form shows): `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the SVGs."""

from __future__ import annotations

from grok_tui.tui.app import make_app
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.run_table import RunTable

from .conftest import wait_for


def test_train_screen_80x24(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=(80, 24))


def test_train_screen_200x50(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=(200, 50))


def _following(run_id: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        app.screen.show_run(app.attach(run_id))
        screen = app.screen
        chart = screen.query_one("#chart-acc", MetricChart)
        await wait_for(pilot, lambda: chart.points > 0 and run_id in str(screen.query_one("#run-header").render()),
                       20, "the run's charts and header")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)

    return run_before


def test_train_following_a_run_80x24(snap_compare, fixture_runs):
    """The header (the run's whole id and setting) above the next run's form and the charts."""
    assert snap_compare(make_app(fixture_runs, attach_on_start=False), terminal_size=(80, 24),
                        run_before=_following("smoke-wd0.3"))


def test_train_following_a_run_120x40(snap_compare, fixture_runs):
    assert snap_compare(make_app(fixture_runs, attach_on_start=False), terminal_size=(120, 40),
                        run_before=_following("smoke-wd0.3"))


def _compare_two():
    async def run_before(pilot) -> None:
        await pilot.press("r")
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.query_one(RunTable).row_count == 3, 20, "the runs table")
        await pilot.press("down", "space", "down", "space")
        chart = screen.query_one("#overlay", MetricChart)
        await wait_for(pilot, lambda: len(chart.series) == 2, 20, "two series")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)

    return run_before


def test_runs_compare_80x24(snap_compare, fixture_runs):
    assert snap_compare(make_app(fixture_runs), terminal_size=(80, 24), run_before=_compare_two())


def test_runs_compare_200x50(snap_compare, fixture_runs):
    assert snap_compare(make_app(fixture_runs), terminal_size=(200, 50), run_before=_compare_two())


def _grouped_smoothed():
    async def run_before(pilot) -> None:
        await pilot.press("r")
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.query_one(RunTable).row_count == 3, 20, "the runs table")
        await pilot.press("space", "down", "space", "down", "space")
        chart = screen.query_one("#overlay", MetricChart)
        await wait_for(pilot, lambda: len(chart.series) == 3, 20, "three series")
        await pilot.press("s", "s", "s", "g")  # smoothing 0.9, grouped by weight_decay
        await wait_for(pilot, lambda: len(chart.bands) == 2, 20, "two groups")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)

    return run_before


def _smoothed():
    async def run_before(pilot) -> None:
        await pilot.press("r")
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.query_one(RunTable).row_count == 3, 20, "the runs table")
        await pilot.press("down", "space", "down", "space", "m", "s", "s", "s")  # train_acc, smoothing 0.9
        chart = screen.query_one("#overlay", MetricChart)
        await wait_for(pilot, lambda: len(chart.series) == 2 and chart.series[0].raw is not None, 20, "smoothed")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)

    return run_before


def _phase():
    async def run_before(pilot) -> None:
        await pilot.press("r")
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.query_one(RunTable).row_count == 3, 20, "the runs table")
        await pilot.press("P")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "grid", None) is not None, 20, "the phase grid")
        await pilot.pause(0.2)

    return run_before


def test_runs_grouped_smoothed_80x24(snap_compare, fixture_runs):
    assert snap_compare(make_app(fixture_runs), terminal_size=(80, 24), run_before=_grouped_smoothed())


def test_runs_grouped_smoothed_200x50(snap_compare, fixture_runs):
    assert snap_compare(make_app(fixture_runs), terminal_size=(200, 50), run_before=_grouped_smoothed())


def test_runs_smoothed_80x24(snap_compare, fixture_runs):
    assert snap_compare(make_app(fixture_runs), terminal_size=(80, 24), run_before=_smoothed())


def test_runs_smoothed_200x50(snap_compare, fixture_runs):
    assert snap_compare(make_app(fixture_runs), terminal_size=(200, 50), run_before=_smoothed())


def test_phase_diagram_80x24(snap_compare, fixture_runs):
    assert snap_compare(make_app(fixture_runs), terminal_size=(80, 24), run_before=_phase())


def test_phase_diagram_200x50(snap_compare, fixture_runs):
    assert snap_compare(make_app(fixture_runs), terminal_size=(200, 50), run_before=_phase())


def _inside():
    async def run_before(pilot) -> None:
        from grok_tui.tui.widgets.spectrum import SpectrumBars, SpectrumHeatmap

        from .test_inside import STEPS

        pilot.app.attach("smoke-lr2e-3")
        await pilot.press("i")
        screen = pilot.app.screen
        chart = screen.query_one("#inside-loss", MetricChart)
        heat, status = screen.query_one(SpectrumHeatmap), screen.query_one("#inside-status")
        await wait_for(pilot, lambda: heat.columns == STEPS and len(chart.series) == 4 and chart.series[0].milestones
                       and len(heat.milestones) == 2 and "finished" in str(status.render()), 20,
                       "the progress rows, the milestones and the run's state")
        await pilot.pause(0.2)
        assert screen.query_one(SpectrumBars).row["step"] == STEPS[-1]

    return run_before


def test_inside_80x24(snap_compare, tmp_path):
    from .test_inside import progress_runs

    app = make_app(progress_runs(tmp_path), attach_on_start=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_inside())


def test_inside_120x40(snap_compare, tmp_path):
    from .test_inside import progress_runs

    app = make_app(progress_runs(tmp_path), attach_on_start=False)
    assert snap_compare(app, terminal_size=(120, 40), run_before=_inside())
