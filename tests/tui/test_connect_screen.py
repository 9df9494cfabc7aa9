"""The connectivity view through Pilot: pick checkpoints, run a curve in a child process, see the panels,
reopen an earlier result, errors as notifications, cancel, the landscape view. The children run with one
thread (`child_threads`) on a shared machine."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from textual.widgets import Select

from grok_tui.connect import results as connect_results
from grok_tui.host import usable_cpus
from grok_tui.store import runs
from grok_tui.tui.app import make_app
from grok_tui.tui.jobs import ConnectJob
from grok_tui.tui.screens.connect import ConnectScreen, checkpoint_options
from grok_tui.tui.widgets.connect_plot import ConnectPlot, LandscapeHeatmap

from .conftest import notified, wait_for


def _copy(smoke_pair, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(smoke_pair, root, ignore=shutil.ignore_patterns("connect"))
    return root


def test_checkpoint_options_list_milestones_last_and_steps(smoke_pair):
    info = runs.open_run(smoke_pair, "a")
    values = [v for _, v in checkpoint_options(info)]
    assert values[:2] == ["memorized", "last"] and "100" in values and "300" in values


async def _click(pilot, selector: str) -> None:
    """Click a button once its press effect of the previous click is over: Textual's Button ignores
    clicks while it shows that effect (0.2 s), so a second click sooner would be lost."""
    button = pilot.app.screen.query_one(selector)
    await wait_for(pilot, lambda: not button.has_class("-active"), 5, f"{selector} to be clickable")
    await pilot.click(selector)


async def _open(app, pilot) -> ConnectScreen:
    app.child_threads = 1
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), 10, "the connect view")
    screen = app.screen
    await wait_for(pilot, lambda: screen.query_one("#ckpt-b", Select).value == "last", 10, "the pickers")
    return screen


async def test_run_a_segment_and_reopen_it(smoke_pair, tmp_path):
    root = _copy(smoke_pair, tmp_path)
    app = make_app(root)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(app, pilot)
        bar = screen.query_one("#connect-progress")
        assert not bar.display  # idle: no bar pulsing as if a job ran
        screen.query_one("#run-a", Select).value = "a"
        await pilot.pause()
        screen.query_one("#ckpt-a", Select).value = "100"
        screen.query_one("#run-b", Select).value = "a"
        await pilot.pause()
        screen.query_one("#ckpt-b", Select).value = "300"
        screen.query_one("#points").value = "5"
        await pilot.click("#go")
        assert bar.display  # the job's bar
        await wait_for(pilot, lambda: screen.shown, 120, "the segment result")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: not bar.display, 10, "the bar hidden after the job")
        saved = root / "a" / "connect" / "segment-100-300.json"
        assert saved.is_file()
        loss = screen.query_one("#panel-loss", ConnectPlot)
        assert [ln.label for ln in loss.lines] == ["train", "val"] and len(loss.lines[0].x) == 5
        grad = screen.query_one("#panel-grad", ConnectPlot)
        assert grad.display and len(grad.lines[0].y) == 5
        assert not screen.query_one("#heat-train", LandscapeHeatmap).display
        result = connect_results.load_result(saved)
        assert loss.lines[0].y == result["data"]["train_loss"]
        sel = screen.query_one("#results", Select)
        await wait_for(pilot, lambda: sel.value == str(saved), 10, "the result listed and picked")
        assert not list((root / "a" / "connect").glob(".jobs/*"))  # the child's progress file and log are gone
        # reopen: draw something else, then pick the saved result again (read in a worker)
        screen.draw([{**result, "data": {**result["data"], "train_loss": [0.0] * 5}}])
        sel.clear()
        await pilot.pause()
        sel.value = str(saved)
        await wait_for(pilot, lambda: loss.lines[0].y == result["data"]["train_loss"], 10, "the reopened result")


async def test_errors_become_notifications_and_landscape_draws_heat_maps(smoke_pair, tmp_path):
    root = _copy(smoke_pair, tmp_path)
    app = make_app(root)
    messages: list = []
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        screen = await _open(app, pilot)
        screen.query_one("#run-a", Select).value = "a"
        screen.query_one("#run-b", Select).value = "b"
        await pilot.pause()
        screen.query_one("#curve", Select).value = "chain"
        await pilot.click("#go")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: notified(messages, "same run"), 10, "the same-run error")
        assert not screen.shown
        screen.query_one("#points").value = "x1"
        await _click(pilot, "#go")
        await wait_for(pilot, lambda: notified(messages, "points must be a whole number"), 10, "the points error")
        screen.query_one("#points").value = "5"
        screen.query_one("#run-b", Select).value = "a"
        screen.query_one("#curve", Select).value = "polyline"
        screen.query_one("#fit-steps").value = "1000000"
        await pilot.pause()
        await _click(pilot, "#go")
        await wait_for(pilot, lambda: (screen.last_progress or ("",))[0] == "fit", 60, "the fit")
        status = screen.query_one("#connect-status")
        await wait_for(pilot, lambda: " left" in str(status.render()), 10, "the fit's ETA")
        child = screen.jobs[0].proc
        await pilot.press("x")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await wait_for(pilot, lambda: notified(messages, "cancelled"), 10, "the cancel notice")
        assert child.returncode == 130  # the child stopped cleanly on the signal, with its sentence
        assert not screen.shown
        assert screen.query_one("#ckpt-a", Select).value == "memorized"
        await _click(pilot, "#land")
        await wait_for(pilot, lambda: screen.shown, 240, "the landscape")
        await app.workers.wait_for_complete()
        assert [r["kind"] for r in screen.shown] == ["landscape1d", "landscape2d"]
        heat = screen.query_one("#heat-train", LandscapeHeatmap)
        assert heat.display and len(heat.data.values) == 15 and len(heat.data.values[0]) == 15
        assert screen.query_one("#panel-loss", ConnectPlot).xlabel == "alpha"
        assert not screen.query_one("#panel-grad", ConnectPlot).display
        # both saved in run a's connect/ folder, named by the step of a@memorized, and announced
        step = runs.open_run(root, "a").summary["memorized_step"]
        names = [f"landscape1d-{step}.json", f"landscape2d-{step}.json"]
        assert [Path(r["path"]) for r in screen.shown] == [root / "a" / "connect" / n for n in names]
        assert all((root / "a" / "connect" / n).is_file() for n in names)
        assert notified(messages, "saved " + ", ".join(names))


def _start_nothing(monkeypatch) -> list[list[str]]:
    """Jobs the screen starts record their command line and fail to start (as an unwritable results
    directory would), so no child runs: the list of their argv."""
    started: list[list[str]] = []

    def start(job: ConnectJob) -> None:
        started.append(job.argv)
        raise OSError(errno.EACCES, "not started in this test")

    monkeypatch.setattr(ConnectJob, "start", start)
    return started


async def _argv_of_go(pilot, started: list) -> list[str]:
    """Press go; the command line of the job the screen started (its failed start reported, the worker done)."""
    n = len(started)
    await _click(pilot, "#go")
    await wait_for(pilot, lambda: len(started) > n, 10, "the job's start")
    await pilot.app.workers.wait_for_complete()
    return started[-1]


async def test_a_jobs_threads_follow_run_a_else_the_apps_setting(smoke_pair, tmp_path, monkeypatch):
    root = _copy(smoke_pair, tmp_path)
    toml = root / "b" / "config.toml"
    toml.write_text(toml.read_text().replace("threads = 0", "threads = 2"))
    started = _start_nothing(monkeypatch)
    app = make_app(root)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(app, pilot)  # the app's setting: one thread
        for run, threads in (("a", "1"), ("b", "2")):  # a: threads 0 in its config (auto); b: 2
            screen.query_one("#run-a", Select).value = run
            await pilot.pause()
            argv = await _argv_of_go(pilot, started)
            assert argv[argv.index("--threads") + 1] == threads, argv


async def test_an_open_picker_has_a_border(smoke_pair, tmp_path):
    app = make_app(_copy(smoke_pair, tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(app, pilot)
        pick = screen.query_one("#ckpt-a", Select)
        pick.expanded = True
        await pilot.pause()
        assert pick.query_one("SelectOverlay").styles.border_top[0] == "round"  # apart from the chart below


async def test_a_runs_threads_beyond_this_machines_cpus_are_clipped(smoke_pair, tmp_path, monkeypatch):

    root = _copy(smoke_pair, tmp_path)
    toml = root / "b" / "config.toml"
    toml.write_text(toml.read_text().replace("threads = 0", "threads = 4096"))  # set on a bigger machine
    started = _start_nothing(monkeypatch)
    app = make_app(root)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(app, pilot)
        screen.query_one("#run-a", Select).value = "b"
        await pilot.pause()
        argv = await _argv_of_go(pilot, started)
        assert argv[argv.index("--threads") + 1] == str(usable_cpus()), argv
