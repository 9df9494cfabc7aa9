"""The Train screen driven by Pilot: the form, a real smoke run in a child process, pause/resume/stop,
and the error paths (a bad field value; a child that crashes)."""

from __future__ import annotations

import json

import pytest
from helpers import reap
from textual.notifications import Notify
from textual.widgets import Input, Select, Static

from grok_tui.host import usable_cpus
from grok_tui.spec import config
from grok_tui.spec.presets import preset
from grok_tui.spec.tomlfile import load_toml
from grok_tui.store import runs as store
from grok_tui.tui.app import make_app
from grok_tui.tui.followed import Launch, LiveRun
from grok_tui.tui.messages import RunEnded
from grok_tui.tui.screens.train import TrainScreen
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.config_form import ConfigForm, field_for_error

from .conftest import wait_for


async def set_field(pilot, name: str, text: str) -> None:
    """Type a value into a form field the way a user does: focus, select all (on focus), type."""
    app = pilot.app
    w = app.screen.query_one(f"#f-{name}", Input)
    app.screen.query_one(ConfigForm).scroll_to_widget(w, animate=False)
    w.focus()
    await pilot.pause()
    w.select_all()  # typing replaces the whole value, as after a click (no empty value in between)
    await pilot.press(*list(text))
    assert w.value == text


def test_field_for_error_maps_sentences_to_fields():
    names = list(config.field_specs())
    assert field_for_error("p must be prime for x/y (it needs an inverse mod p), got 12.", names) == "p"
    assert field_for_error("train ratio must be in (0, 1), got 1.5.", names) == "train_frac"
    assert field_for_error("train_frac (the train ratio) must be in (0, 1), got 1.5.", names) == "train_frac"
    assert field_for_error("heads (3) must divide d_model (64).", names) == "heads"
    assert field_for_error("weight decay must be >= 0, got -1.0.", names) == "weight_decay"
    assert field_for_error("batch size must be at least 1, got 0.", names) == "batch_size"
    assert field_for_error("unknown operation 'x%y' (known: add, sub).", names) == "op"


def test_the_app_starts_a_run_from_a_config_file_it_writes(tmp_path):
    cfg = config.apply_overrides(preset("smoke"), {"lr": 1.5e-3, "nesterov": False, "data_seed": 3})
    launch = Launch(tmp_path / "runs", "x", cfg)
    assert launch.argv[1:] == ["-m", "grok_tui", "run", "--config", str(launch.config_file), "--name", "x",
                               "--runs-dir", str(tmp_path / "runs"), "--log"]
    launch.write_config()
    assert load_toml(launch.config_file) == cfg  # every field, through the CLI's own loading path


async def test_bad_values_are_flagged_at_the_field(tmp_path):
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        await set_field(pilot, "p", "abc")
        await set_field(pilot, "heads", "3")
        app.screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        await pilot.pause()
        err_p = app.screen.query_one("#err-p", Static)
        assert err_p.display and "p must be a whole number" in str(err_p.render())
        assert app.screen.query_one("#f-p", Input).has_class("-invalid")
        assert app.live is None  # nothing started
        # fix p; the model problem is found by the engine's validation and shown at heads
        await set_field(pilot, "p", "1")
        app.screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        await pilot.pause()
        assert "p must be at least 2" in str(app.screen.query_one("#err-p", Static).render())
        err_heads = app.screen.query_one("#err-heads", Static)
        assert err_heads.display and "must divide d_model" in str(err_heads.render())
        assert app.live is None
        assert not (tmp_path / "runs").exists()  # nothing was written: not even the runs directory


async def test_key_help_of_the_train_view_names_every_key_by_its_action(tmp_path):
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        app.screen.query_one("#chart-acc").focus()
        await pilot.press("question_mark")
        await pilot.pause()
        text = str(app.screen.query_one("#help-text").render())
        assert "refuse" not in text  # no internal action names
        lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
        assert "Pause/Continue" in lines["p"] and "not now" in lines["p"]  # no run to pause
        assert "Stop" in lines["x"] and "not now" in lines["x"]
        assert "Start" in lines["s"] and "not now" not in lines["s"]


async def test_presets_load_and_optimizer_fields_follow_the_choice(tmp_path):
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        form = app.screen.query_one(ConfigForm)
        assert form.query_one("#row-beta1").display and not form.query_one("#row-momentum").display
        form.query_one("#preset", Select).value = "seed001"
        await pilot.pause()
        assert form.query_one("#f-optimizer", Select).value == "sgd"
        assert form.query_one("#f-norm", Select).value == "none"
        assert form.query_one("#f-lr", Input).value == "0.1"
        assert form.query_one("#row-momentum").display and not form.query_one("#row-beta1").display
        cfg, errors, general = form.read()
        assert cfg is not None and not errors and not general
        assert cfg.flat() == preset("seed001").flat()


@pytest.mark.slow
async def test_smoke_run_live_pause_resume_stop(tmp_path):
    """Fill the form, train the smoke preset in a child process, watch the charts and milestones. At train
    fraction 0.8 and weight decay 3 smoke groks within a few hundred steps (340 at seed 0), so the test
    needs seconds, not a whole run."""
    runs = tmp_path / "runs"
    app = make_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        screen.query_one("#preset", Select).value = "smoke"
        await pilot.pause()
        await set_field(pilot, "device", "cpu")
        await set_field(pilot, "threads", "1")  # the child: one thread on a shared machine
        await set_field(pilot, "train_frac", "0.8")
        await set_field(pilot, "weight_decay", "3")
        screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        child = app.live
        assert child is not None and child.launch.cfg.train.threads == 1
        await wait_for(pilot, lambda: child.state == "running", 60, "the runner to start")
        acc = screen.query_one("#chart-acc", MetricChart)
        await wait_for(pilot, lambda: acc.points > 0, 60, "points on the accuracy chart")
        await wait_for(pilot, lambda: "memorized" in child.milestones, 180, "the memorized milestone")
        # pause: the step stops moving; resume: it moves on
        await pilot.press("p")
        await wait_for(pilot, lambda: child.state == "paused", 30, "the pause")
        await wait_for(pilot, lambda: "paused" in str(screen.query_one("#status", Static).render()), 5,
                       "the status line to say paused")
        step = child.last["step"]
        await wait_for(pilot, lambda: any(e["event"] == "paused" for e in child.follower.events), 5,
                       "the paused event read")  # events.jsonl may be read a poll after summary.json
        at = next(e["step"] for e in reversed(child.follower.events) if e["event"] == "paused")
        # the status line names the step it paused at, not its last evaluation's
        await wait_for(pilot, lambda: f"step {at}/" in str(screen.query_one("#status", Static).render()), 5,
                       f"the status line to say step {at}")
        await pilot.pause(1.0)
        assert child.last["step"] == step  # no rows come while paused (however long the wait)
        await pilot.press("p")
        await wait_for(pilot, lambda: child.state == "running", 30, "the resume")
        await wait_for(pilot, lambda: "grokked" in child.milestones, 300, "the grokked milestone")
        # the accuracy chart draws both milestones, named with their steps in its title
        marks = f"M {child.milestones['memorized']} G {child.milestones['grokked']}"
        await wait_for(pilot, lambda: marks in acc.plt.build(), 10, f"'{marks}' on the accuracy chart")
        assert acc.series[0].milestones == child.milestones
        for cid in ("acc", "loss", "wnorm", "grad"):
            assert screen.query_one(f"#chart-{cid}", MetricChart).points > 0, cid
        await wait_for(pilot, lambda: f"grokked {child.milestones['grokked']}"
                       in str(screen.query_one("#status", Static).render()), 5, "the status line to say grokked")
        await wait_for(pilot, lambda: "steps/s" in str(screen.query_one("#status", Static).render()), 30,
                       "the status line to show the speed again after the resume")
        await pilot.press("x")
        await wait_for(pilot, lambda: not child.active, 60, "the stop")
        assert child.state in ("stopped", "finished")
        summary = json.loads((runs / child.run_id / "summary.json").read_text())
        assert summary["status"] == child.state
        assert summary["grokked_step"] == child.milestones["grokked"]
        # the runner did no step between its paused and resumed events
        events = store.open_run(runs, child.run_id).events()
        paused = [e["step"] for e in events if e["event"] == "paused"]
        resumed = [e["step"] for e in events if e["event"] == "resumed"]
        assert len(paused) == len(resumed) == 1 and paused == resumed
        # the run shows up in the runs view
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: child.run_id in app.screen.infos, 10, "the run in the runs view")


async def test_crashing_child_shows_the_error_and_the_app_keeps_working(tmp_path):
    runs = tmp_path / "runs"
    app = make_app(runs)
    messages: list = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        screen = app.screen
        screen.query_one("#preset", Select).value = "smoke"
        await pilot.pause()
        await set_field(pilot, "lr", "10000")  # valid, but the loss blows up: the runner exits 1
        await set_field(pilot, "steps", "200")
        await set_field(pilot, "device", "cpu")
        await set_field(pilot, "threads", "1")  # the child: one thread on a shared machine
        screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        child = app.live
        assert child.launch.cfg.train.threads == 1
        await wait_for(pilot, lambda: child.state == "failed", 120, "the child to fail")
        assert child.error and "diverged" in child.error
        await wait_for(pilot, lambda: child.returncode is not None, 60, "the runner to exit")
        assert child.returncode == 1
        await wait_for(pilot, lambda: any(isinstance(m, RunEnded) for m in messages), 10, "RunEnded")
        ended = [m for m in messages if isinstance(m, RunEnded)]
        assert [(m.run_id, m.status, m.error) for m in ended] == [(child.run_id, "failed", child.error)]
        await wait_for(pilot, lambda: "diverged" in str(screen.query_one("#status", Static).render()), 10,
                       "the status line to say diverged")
        # still usable: a good run starts and finishes
        await set_field(pilot, "lr", "0.002")
        await set_field(pilot, "steps", "40")
        screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        second = app.live
        assert second is not child
        await wait_for(pilot, lambda: second.state == "finished", 120, "the second run to finish")
        await wait_for(pilot, lambda: second.returncode is not None and second.rows[-1]["step"] == 40, 60,
                       "the last row and the runner's exit")
        assert second.returncode == 0


async def test_the_apps_child_gets_the_config_grok_tui_run_would(tmp_path, monkeypatch):
    """The form on a preset, started: the config file the app hands its child is what `grok-tui run
    --preset smoke` saves, threads included (0: one per core in both; the CLI's OpenMP threads spin
    briefly), and the status line says how many threads that is."""
    from grok_tui.train.prepare import prepare_run

    monkeypatch.setattr(Launch, "start", Launch.write_config)  # the file, not the process
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#preset", Select).value = "smoke"
        await pilot.pause()
        app.screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        await app.workers.wait_for_complete()
        child = app.live
        assert child is not None and child.threads == 0
        assert f"threads {usable_cpus()} (auto)" in app.screen.status_text(child)
        given = load_toml(child.launch.config_file)
    job = prepare_run(tmp_path / "cli", preset="smoke", name="cli")
    job.writer.close()
    assert given == load_toml(tmp_path / "cli" / "cli" / "config.toml")
    assert given.train.threads == 0


def _gpu_run(fixture_runs) -> str:
    """A copy of a fixture run as a CUDA run writes it: the GPU's name in its started event, memory and
    utilisation in every row."""
    run = fixture_runs / "smoke-lr2e-3"
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.update(gpu_mem_mib=312.4, gpu_peak_mib=540.0, gpu_util=87)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    events = [json.loads(ln) for ln in (run / "events.jsonl").read_text().splitlines()]
    events[0].update(device="cuda:0", gpu="NVIDIA H200")
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "device": "cuda:0"}))
    return run.name


async def test_status_line_shows_the_gpu_beside_the_loss_and_no_speed_once_ended(fixture_runs):
    run_id = _gpu_run(fixture_runs)
    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        run = app.attach(run_id)
        await wait_for(pilot, lambda: run.state == "finished" and run.rows, 10, "the run's rows")
        await wait_for(pilot, lambda: "gpu" in str(app.screen.query_one("#status", Static).render()), 5,
                       "the status line")
        text = str(app.screen.query_one("#status", Static).render())
        assert "cuda:0 (NVIDIA H200)" in text and "gpu mem 312/540 MiB util 87%" in text
        assert "steps/s" not in text  # finished: no speed
    alone = LiveRun(fixture_runs / run_id)  # outside the app's follower: its state is the test's to set
    alone.update()
    screen = TrainScreen()
    for state, speed in (("paused", False), ("stopped", False), ("running", True)):
        alone.state = state
        assert ("steps/s" in screen.status_text(alone)) == speed, state


async def test_every_refused_key_says_why_and_a_fixed_field_clears_its_error(fixture_runs):
    app = make_app(fixture_runs, attach_on_start=False)
    messages: list = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        screen = app.screen
        screen.query_one("#chart-acc").focus()
        for key in ("p", "x"):
            await pilot.press(key)
        await pilot.pause()
        said = [m.notification.message for m in messages if isinstance(m, Notify)]
        assert sum("no run to control" in t for t in said) == 2
        run = LiveRun(fixture_runs / "smoke-lr2e-3")  # shown, but outside the follower: the test sets its state
        run.update()
        app.live = run
        await pilot.press("x")
        await pilot.pause()
        assert any("is finished: there is nothing to stop" in m.notification.message
                   for m in messages if isinstance(m, Notify))
        run.state = "running"  # as if it trained: a second s is refused with a sentence
        await pilot.press("s")
        await pilot.pause()
        assert any("is running; stop it first" in m.notification.message for m in messages if isinstance(m, Notify))
        assert app.live is run
        run.state = "finished"
        screen.refresh_run()  # what a RunUpdated from the follower does
        form = screen.query_one(ConfigForm)
        await wait_for(pilot, lambda: not form.disabled, 5, "the form to take input again")
        # a bad field shows its error; the error goes as soon as the field holds a good value
        await set_field(pilot, "p", "abc")
        screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        await pilot.pause()
        err_p = screen.query_one("#err-p", Static)
        assert err_p.display
        await set_field(pilot, "p", "1")
        await pilot.pause()
        assert err_p.display and "p must be at least 2" in str(err_p.render())  # still wrong: the new reason
        await set_field(pilot, "p", "97")
        await pilot.pause()
        assert not err_p.display and not screen.query_one("#f-p", Input).has_class("-invalid")


def _headless(runs, name, steps=100000):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "grok_tui", "run", "--preset", "smoke", "--steps", str(steps), "--eval-every", "10",
           "--checkpoint-every", "0", "--name", name, "--runs-dir", str(runs), "--device", "cpu", "--threads", "1"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)


async def test_attach_to_a_run_started_by_another_process_and_stop_it(tmp_path):
    """A run started headless in another terminal: the app, opened later, follows it live through its
    run directory alone and stops it; quitting while it trains asks, and cancel keeps the app."""
    from grok_tui.tui.messages import RunUpdated
    from grok_tui.tui.screens.dialogs import QuitScreen

    runs = tmp_path / "runs"
    proc = _headless(runs, "elsewhere")
    try:
        await _wait_proc(lambda: (runs / "elsewhere" / "metrics.jsonl").is_file(), 120, "the headless run's rows")
        app = make_app(runs)
        messages: list = []
        async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
            await wait_for(pilot, lambda: app.live is not None, 20, "the app to attach the training run")
            run = app.live
            assert run.run_id == "elsewhere" and run.launch is None
            await wait_for(pilot, lambda: run.state == "running", 20, "its state")
            n = len(run.rows)
            await wait_for(pilot, lambda: len(run.rows) > n + 2, 60, "rows to arrive")
            assert any(isinstance(m, RunUpdated) and m.run_id == "elsewhere" and m.rows for m in messages)
            acc = app.screen.query_one("#chart-acc", MetricChart)
            await wait_for(pilot, lambda: acc.points > 0, 20, "its accuracy chart")
            assert "elsewhere" in str(app.screen.query_one("#run-header", Static).render())  # the whole id
            await pilot.press("q")
            await pilot.pause()
            assert isinstance(app.screen, QuitScreen)
            await pilot.press("c")  # cancel: the app stays, the run trains
            await pilot.pause()
            assert app.return_code is None and run.active
            app.screen.query_one("#chart-acc").focus()
            await pilot.press("x")
            await wait_for(pilot, lambda: run.state == "stopped", 120, "the stop")
        assert proc.wait(60) == 130
        info = store.open_run(runs, "elsewhere")
        assert info.status == "stopped" and "final" in json.dumps(info.events()[-2])
    finally:
        reap(proc, group=True)


async def _wait_proc(cond, timeout, what):
    import asyncio
    import time

    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_a_run_the_app_launched_outlives_the_app_killed_with_sigkill(tmp_path):
    """The app's process (here a stand-in that launches the run exactly as the app does) dies with kill -9:
    the run, a process of its own session writing only files, finishes with every row."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    from grok_tui.store.control import proc_start_time

    runs = tmp_path / "runs"
    cfg = config.apply_overrides(preset("smoke"), {"steps": 300, "eval_every": 10, "device": "cpu",
                                                          "threads": 1})
    (tmp_path / "c.toml").write_text(cfg.to_toml())
    app_stand_in = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from grok_tui.spec.tomlfile import load_toml
        from grok_tui.tui.followed import Launch, LiveRun
        launch = Launch(Path({str(runs)!r}), "orphan", load_toml({str(tmp_path / 'c.toml')!r}))
        Path({str(runs)!r}).mkdir(parents=True, exist_ok=True)
        launch.start()
        print(launch.proc.pid, flush=True)
        time.sleep(600)
    """)
    app_proc = subprocess.Popen([sys.executable, "-c", app_stand_in], stdout=subprocess.PIPE, text=True)
    runner_pid, runner_start = None, None
    try:
        runner_pid = int(app_proc.stdout.readline())
        runner_start = proc_start_time(runner_pid)  # to know it is still the runner when the test ends
        t0 = time.monotonic()  # the bounds below only stop a hang: no assertion is about the time taken
        while not (runs / "orphan" / "metrics.jsonl").is_file():
            assert time.monotonic() - t0 < 300, "the runner's first row"
            time.sleep(0.1)
        os.kill(app_proc.pid, signal.SIGKILL)
        app_proc.wait()
        assert os.getsid(runner_pid) == runner_pid  # its own session: a hang-up of the app's terminal misses it
        t0 = time.monotonic()
        while store.open_run(runs, "orphan").active or not (runs / "orphan" / "summary.json").is_file():
            assert time.monotonic() - t0 < 600, "the orphaned run to finish"
            time.sleep(0.2)
    finally:
        reap(app_proc)
        # the runner is no child of this process (its parent was the stand-in): its group is killed if it is
        # still the runner (same pid, same start time), and init reaps it
        if runner_pid is not None and runner_start is not None and proc_start_time(runner_pid) == runner_start:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner_pid, signal.SIGKILL)
    info = store.open_run(runs, "orphan")
    assert info.status == "finished"
    assert [r["step"] for r in info.metrics()] == list(range(10, 301, 10))
    assert (runs / "orphan" / "runner.log").is_file()


async def test_a_runs_directory_that_is_a_file_is_one_sentence(tmp_path):
    runs = tmp_path / "runs"
    runs.write_text("not a directory")
    app = make_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        screen.query_one("#preset", Select).value = "smoke"
        await pilot.pause()
        screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        await wait_for(pilot, lambda: app.live is not None and app.live.state == "failed", 20, "the failure")
        assert "cannot write the runs directory" in app.live.error
        await wait_for(pilot, lambda: "cannot write the runs directory" in
                       str(screen.query_one("#status", Static).render()), 10, "the status line")
        await pilot.press("q")  # nothing training: quits at once
    assert app.return_code == 0


def test_a_launched_runner_removes_its_start_files_once_its_run_directory_exists(tmp_path):
    """The app may be gone by then (closed terminal, kill -9): the runner cleans `.start/` itself; a
    runner that fails before its run directory exists keeps its log there for the app to read."""
    cfg = config.apply_overrides(preset("smoke"), {"steps": 20, "eval_every": 10, "checkpoint_every": 0,
                                                         "threads": 1, "device": "cpu"})
    other = tmp_path / "runs" / ".start" / "other.toml"
    other.parent.mkdir(parents=True)
    other.write_text(cfg.to_toml())  # another launch's file stays
    ok = Launch(tmp_path / "runs", "20261203-101631-add-p31-adamw", cfg)  # the app's long ids
    ok.start()
    assert ok.proc.wait(timeout=120) == 0
    log = (tmp_path / "runs" / ok.run_id / "runner.log").read_text()
    assert "20/20" in log and "…" not in log  # the progress line whole, not cut at 80 columns
    assert not ok.config_file.exists() and not ok.log_file.exists() and other.exists()
    bad = Launch(tmp_path / "runs", "bad", config.apply_overrides(cfg, {"p": 12, "op": "x/y"}))
    bad.start()
    assert bad.proc.wait(timeout=120) == 2
    assert not (tmp_path / "runs" / "bad").exists() and "must be prime" in (bad.error_line() or "")


def test_status_line_says_a_compiled_run_waits_for_the_compiler_until_its_first_evaluation(fixture_runs):
    """A run whose started event says its step is compiled shows "compiling the step…" in place of
    "- steps/s" until an evaluation arrives after that start (a resume of a compiled run too)."""
    run = fixture_runs / "smoke-lr2e-3"
    rows = (run / "metrics.jsonl").read_text().splitlines()
    events = [json.loads(ln) for ln in (run / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "started"
    screen = TrainScreen()

    def status(started: dict, n_rows: int) -> str:
        (run / "events.jsonl").write_text(json.dumps(started) + "\n")
        (run / "metrics.jsonl").write_text("".join(ln + "\n" for ln in rows[:n_rows]))
        live = LiveRun(run)
        live.update()
        live.state = "running"
        return screen.status_text(live)

    compiled = {**events[0], "compile": True}
    assert "compiling the step" in status(compiled, 0)
    assert "compiling the step" not in status(compiled, 2)  # its evaluations arrive: a speed
    assert "compiling the step" not in status({**events[0], "compile": False}, 0)
    last = json.loads(rows[1])["step"]
    assert "compiling the step" in status({**compiled, "step": last}, 2)  # resumed there, compiling again


async def test_a_runs_warning_becomes_a_warning_notification(fixture_runs):
    """A child's warning event (e.g. torch.compile failed and training went on eagerly) is said in the app."""
    from grok_tui.tui.app import NOTIFY_EVENTS
    from grok_tui.tui.messages import RunEvent

    assert "warning" in NOTIFY_EVENTS  # the follower posts it as a RunEvent
    app = make_app(fixture_runs, attach_on_start=False)
    messages: list = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        app.post_message(RunEvent("r1", {"event": "warning", "step": 20,
                                         "message": "torch.compile failed (InductorError); training goes on without it."}))
        await pilot.pause()
        notes = [m.notification for m in messages if isinstance(m, Notify)]
        assert any(n.message == "r1: torch.compile failed (InductorError); training goes on without it."
                   and n.severity == "warning" for n in notes), [n.message for n in notes]
