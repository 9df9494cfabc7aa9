"""Runs that outlive their front end: one writer per run (the lock), unique ids, control through the run
directory (pid + start time), clean resumes (torn tails, one row per step), a runner whose stdout goes away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import train_run

from grok_tui.errors import ConfigError, TrainingError
from grok_tui.report import Reporter
from grok_tui.spec import config
from grok_tui.store import control, control_groups, files, runs
from grok_tui.train import trainer as train
from grok_tui.train.prepare import prepare_run


def _resume(runs_dir, run_id, **overrides):
    job = prepare_run(runs_dir, resume=run_id, overrides=overrides)
    try:
        return train.run_training(job.cfg, job.writer, resume_from=job.resume_from, trainer=job.trainer)
    finally:
        job.writer.close()


def _runner(runs_dir, name, *flags, steps=100000, stdout=subprocess.PIPE):
    cmd = [sys.executable, "-m", "grok_tui", "run", "--preset", "smoke", "--steps", str(steps), "--eval-every", "10",
           "--checkpoint-every", "0", "--name", name, "--runs-dir", str(runs_dir), "--json", "--device", "cpu",
           "--threads", "1", *flags]
    return subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True)


def _first_eval(proc) -> None:
    for line in proc.stdout:
        if json.loads(line)["type"] == "eval":
            return
    raise AssertionError("the runner ended before its first evaluation: " + proc.stderr.read())


def test_one_writer_per_run_and_a_concurrent_resume_is_refused(tiny_cfg, runs_dir):
    train_run(tiny_cfg, runs_dir / "r")
    first = prepare_run(runs_dir, resume="r", overrides={"steps": 80})
    try:
        assert control.runner_alive(runs_dir / "r") and runs.open_run(runs_dir, "r").status == "running"
        with pytest.raises(ConfigError, match="still running|being written by another process"):
            prepare_run(runs_dir, resume="r", overrides={"steps": 80})
        with pytest.raises(control.RunLocked, match="being written by another process"):
            runs.RunWriter(runs_dir / "r", tiny_cfg, resume=True)  # past the status check: the lock says no
    finally:
        first.writer.close()
    assert not control.runner_alive(runs_dir / "r")
    assert runs.open_run(runs_dir, "r").status == "interrupted"  # it said running, and nobody writes it


def test_a_second_process_resuming_a_run_exits_2_with_one_sentence(tiny_cfg, runs_dir):
    train_run(tiny_cfg, runs_dir / "r")
    held = runs.RunWriter(runs_dir / "r", tiny_cfg, resume=True)
    try:
        held.write_summary(status="running")
        p = subprocess.run([sys.executable, "-m", "grok_tui", "run", "--resume", "r", "--runs-dir", str(runs_dir),
                            "--steps", "80", "--threads", "1"], capture_output=True, text=True, timeout=600)
    finally:
        held.close()
    assert p.returncode == 2, p.stderr
    assert "error:" in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) <= 2


def test_a_reused_pid_is_neither_running_nor_signalled(tiny_cfg, runs_dir):
    train_run(tiny_cfg, runs_dir / "r")
    path = runs_dir / "r"
    # a runner that died, whose pid now belongs to another live process (this one), without a lock file
    (path / "lock").unlink()
    s = files.read_json(path / "summary.json")
    s.update(status="running", pid=os.getpid(), pid_start=(control.proc_start_time(os.getpid()) or 0) + 1)
    files.atomic_write_text(path / "summary.json", json.dumps(s))
    info = runs.open_run(runs_dir, "r")
    assert info.status == "interrupted"
    with pytest.raises(ConfigError, match="not training"):
        control.stop_run(path)  # this process would have been sent SIGTERM
    _resume(runs_dir, "r", steps=70)  # not "still running" for ever
    assert runs.open_run(runs_dir, "r").status == "finished"


def _poll_until(cond, what: str, proc_list=(), bound_s: float = 600.0, every_s: float = 0.01) -> None:
    """Wait until cond() holds. The bound only stops a hang (a child that never gets there): no assertion
    is about how long it takes. A child in proc_list that exits first ends the wait with its stderr."""
    deadline = time.monotonic() + bound_s
    while not cond():
        for p in proc_list:
            if p.poll() is not None:
                raise AssertionError(f"a child exited ({p.returncode}) before {what}: {p.stderr.read()}")
        assert time.monotonic() < deadline, f"no {what} after {bound_s:.0f} s: a hang"
        time.sleep(every_s)


def test_unique_ids_under_ten_concurrent_starts(tiny_cfg, tmp_path):
    """Ten processes create an unnamed run at the same instant (ids have one-second resolution): each one,
    once imported, says it is ready and waits for a go file, which appears when all ten are ready."""
    root = tmp_path / "runs"
    root.mkdir()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    go = barrier / "go"
    (tmp_path / "c.toml").write_text(tiny_cfg.to_toml())
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from grok_tui.spec.tomlfile import load_toml
        from grok_tui.store import runs
        cfg = load_toml({str(tmp_path / 'c.toml')!r})
        barrier = Path({str(barrier)!r})
        (barrier / ("ready-" + sys.argv[1])).touch()
        deadline = time.monotonic() + 600  # only stops a hang: the parent died before the go
        while not (barrier / "go").exists():
            if time.monotonic() > deadline:
                sys.exit("no go file")
            time.sleep(0.002)
        w = runs.create_writer({str(root)!r}, cfg)
        print(w.run_id)
        w.close()
    """)
    procs: list[subprocess.Popen] = []
    try:
        for i in range(10):
            procs.append(subprocess.Popen([sys.executable, "-c", script, str(i)], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        _poll_until(lambda: len(list(barrier.glob("ready-*"))) == 10, "all ten ready", procs)
        assert not list(root.iterdir())  # nobody went before the go
        go.touch()
        outs = [p.communicate(timeout=600) for p in procs]  # the timeout only stops a hang
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    ids = [o.strip() for o, _ in outs]
    assert len(set(ids)) == 10 and sorted(ids) == sorted(d.name for d in root.iterdir())


def test_a_torn_tail_is_repaired_before_a_resume_appends(tiny_cfg, runs_dir):
    cfg = config.apply_overrides(tiny_cfg, {"steps": 40})
    train_run(cfg, runs_dir / "r")
    path = runs_dir / "r"
    with open(path / "metrics.jsonl", "a") as f:
        f.write('{"step": 50, "train_lo')  # a SIGKILL in the middle of a write
    with open(path / "events.jsonl", "a") as f:
        f.write('{"event": "chec')
    _resume(runs_dir, "r", steps=60)
    for name in ("metrics.jsonl", "events.jsonl"):
        lines = (path / name).read_text().splitlines()
        assert all(isinstance(json.loads(ln), dict) for ln in lines), name  # every line whole
    assert [r["step"] for r in files.read_jsonl(path / "metrics.jsonl")] == [10, 20, 30, 40, 50, 60]


def test_one_row_per_step_after_a_kill_and_resume_with_the_same_rows(tiny_cfg, runs_dir):
    straight = train_run(tiny_cfg, runs_dir / "straight")
    assert straight["status"] == "finished"
    # the same run killed after step 50: resumable state at 40, rows and events written up to 50
    cut = runs_dir / "cut"
    train_run(config.apply_overrides(tiny_cfg, {"steps": 40}), cut)
    evs = [e for e in files.read_jsonl(cut / "events.jsonl") if e["event"] != "finished"]
    (cut / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs)
                                      + json.dumps({"event": "checkpoint", "step": 50}) + "\n")
    with open(cut / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 50, "train_loss": 123.0}) + "\n")
    _resume(runs_dir, "cut", steps=60)
    got = files.read_jsonl(cut / "metrics.jsonl")
    want = files.read_jsonl(runs_dir / "straight" / "metrics.jsonl")
    assert [r["step"] for r in got] == [10, 20, 30, 40, 50, 60]  # 50 once, not twice

    def strip(r):
        return {k: v for k, v in r.items() if k != "wall_s"}

    assert [strip(r) for r in got] == [strip(r) for r in want]  # rows past the checkpoint, rewritten the same
    events = files.read_jsonl(cut / "events.jsonl")
    started = [i for i, e in enumerate(events) if e["event"] == "started"]
    assert len(started) == 2 and events[started[1]]["resumed_from"] == 40
    assert all(e["step"] <= 40 for e in events[:started[1]])  # nothing past the checkpoint kept
    assert {e["step"] for e in events if e["event"] == "checkpoint"} == {20, 40, 60}  # not 50


@pytest.mark.slow
def test_a_runner_survives_its_stdout_and_a_hangup_and_is_stopped_through_its_directory(runs_dir):
    proc = _runner(runs_dir, "alone", steps=400)
    hung = threading.Timer(1800, proc.kill)
    hung.start()
    try:
        _first_eval(proc)
        path = runs_dir / "alone"
        info = runs.open_run(runs_dir, "alone")
        assert info.summary["pid"] == proc.pid and info.summary["pid_start"] == control.proc_start_time(proc.pid)
        assert control.runner_alive(path)
        proc.send_signal(signal.SIGHUP)  # the terminal hung up
        proc.stdout.close()  # and its reader is gone: the next line meets a broken pipe
        assert proc.wait() == 0
        err = proc.stderr.read()
    finally:
        hung.cancel()
        proc.kill()
        proc.wait()
    assert "Traceback" not in err, err
    info = runs.open_run(runs_dir, "alone")
    assert info.status == "finished" and info.summary["steps_run"] == 400
    assert [r["step"] for r in info.metrics()] == list(range(10, 401, 10))  # every row


def test_a_front_end_whose_output_fails_is_dropped_not_taken_for_a_run_directory_failure(tiny_cfg, runs_dir):
    class Gone(Reporter):
        calls = 0

        def on_eval(self, run_id, row):
            Gone.calls += 1
            raise BrokenPipeError(32, "Broken pipe")

    s = train_run(tiny_cfg, runs_dir / "r", reporters=[Gone()])
    assert s["status"] == "finished" and Gone.calls == 1
    info = runs.open_run(runs_dir, "r")
    assert [r["step"] for r in info.metrics()] == [10, 20, 30, 40, 50, 60]
    assert any(e["event"] == "warning" and "console output stopped" in e["message"] for e in info.events())


@pytest.mark.slow
def test_pause_continue_and_stop_from_the_command_line(runs_dir):
    from typer.testing import CliRunner

    from grok_tui.cli.main import app

    proc = _runner(runs_dir, "ctl")
    hung = threading.Timer(1800, proc.kill)
    hung.start()
    cli = CliRunner()
    try:
        _first_eval(proc)
        path = runs_dir / "ctl"
        r = cli.invoke(app, ["pause", "ctl", "--runs-dir", str(runs_dir)])
        assert r.exit_code == 0, r.output
        _poll_until(lambda: files.read_json(path / "summary.json").get("status") == "paused", "pause", [proc],
                    every_s=0.1)
        assert runs.open_run(runs_dir, "ctl").status == "paused"
        r = cli.invoke(app, ["continue", "ctl", "--runs-dir", str(runs_dir)])
        assert r.exit_code == 0, r.output
        # the runner says it resumed before it is stopped (a stop that came first would be a stop while
        # paused, which says no 'resumed')
        _poll_until(lambda: "resumed" in [e["event"] for e in files.read_jsonl(path / "events.jsonl")],
                    "resumed event", [proc], every_s=0.1)
        r = cli.invoke(app, ["stop", "ctl", "--runs-dir", str(runs_dir)])
        assert r.exit_code == 0 and "stopped at step" in r.output, r.output
        assert proc.wait(60) == 130
    finally:
        hung.cancel()
        proc.kill()
        proc.wait()
    info = runs.open_run(runs_dir, "ctl")
    assert info.status == "stopped"
    control_events = [e["event"] for e in info.events() if e["event"] in ("paused", "resumed", "stopped")]
    assert control_events == ["paused", "resumed", "stopped"]
    r = cli.invoke(app, ["stop", "ctl", "--runs-dir", str(runs_dir)])
    assert r.exit_code == 2 and "not training" in r.output


def test_control_names_the_other_runs_a_signal_reaches(tmp_path, tiny_cfg):
    """A sweep's members share the process that takes their signals: `pause`/`stop` of one says which
    other runs pause or stop with it (runs of another process and ended runs are not named)."""
    from grok_tui.cli.control import _with_others
    from grok_tui.store import control

    root = tmp_path / "runs"
    writers = [runs.RunWriter(root / f"m{i}", tiny_cfg) for i in range(3)]
    for w in writers:
        w.write_summary(status="running")
        w.announce()  # each lock says: this process takes the run's signals
    elsewhere = runs.RunWriter(root / "other", tiny_cfg)
    parent = os.getppid()
    elsewhere.write_summary(status="running")
    elsewhere.announce({"control_pid": parent, "control_pid_start": control.proc_start_time(parent)})
    ended = runs.RunWriter(root / "ended", tiny_cfg)
    ended.write_summary(status="running")
    ended.announce()
    ended.close()
    try:
        assert control_groups.controlled_with(root, "m0") == ["m1", "m2"]
        assert control_groups.controlled_with(root, "other") == []
        assert _with_others(root, "m1", "pause") == "; the same process trains 2 other runs (m0, m2), which pause with it"
        assert _with_others(root, "other", "stop") == ""
    finally:
        for w in (*writers, elsewhere):
            w.close()
    assert control_groups.controlled_with(root, "m0") == []  # nothing trains them any more


def test_a_run_stopped_while_paused_says_stopped_not_resumed(tiny_cfg, runs_dir):
    from grok_tui.train.loop import Control

    control = Control()

    class PauseThenStop(Reporter):
        def on_eval(self, run_id: str, row: dict) -> None:
            if row["step"] == 20:
                control.pause.set()

        def on_event(self, run_id: str, event: dict) -> None:
            if event["event"] == "paused":  # the loop waits now: the stop comes while it is paused
                control.stop.set()

    s = train_run(tiny_cfg, runs_dir / "ps", reporters=[PauseThenStop()], control=control)
    assert s["status"] == "stopped" and s["steps_run"] == 20
    events = [e["event"] for e in runs.open_run(runs_dir, "ps").events()]
    assert "paused" in events and "resumed" not in events and events[-1] == "stopped"


# --- every end with its reason ------------------------------------------------------------------------

def _fail_at(monkeypatch, step, exc):
    real = train.Trainer.train_step

    def train_step(self, want_grads=False):
        if self.step == step:
            raise exc
        return real(self, want_grads)

    monkeypatch.setattr(train.Trainer, "train_step", train_step)


def test_an_unexpected_exception_in_the_loop_is_recorded_as_failed_then_raised(tiny_cfg, runs_dir, monkeypatch):
    """A bug or a device assert (anything not out of memory nor an OSError) ends the run directory as
    failed with the exception's type and message, and still reaches the caller."""
    _fail_at(monkeypatch, 15, RuntimeError("CUDA error: device-side assert triggered"))
    with pytest.raises(RuntimeError, match="device-side assert"):
        train_run(tiny_cfg, runs_dir / "bug")
    info = runs.open_run(runs_dir, "bug")
    assert info.status == "failed" and info.summary["steps_run"] == 15
    assert info.summary["error"] == "RuntimeError at step 15: CUDA error: device-side assert triggered"
    assert info.events()[-1]["event"] == "failed" and "device-side assert" in info.events()[-1]["error"]


def test_a_run_whose_summary_cannot_be_written_reads_as_its_last_event(tiny_cfg, runs_dir, monkeypatch):
    """The end event is appended to events.jsonl (an existing file) where the summary's atomic rewrite
    fails (a read-only directory): readers take the status and reason from that event."""
    _fail_at(monkeypatch, 15, MemoryError())
    real = runs.RunWriter.write_summary

    def write_summary(self, force=True, **fields):
        if fields.get("status") == "failed":
            raise PermissionError(13, "Permission denied", str(self.path / "summary.json"))
        return real(self, force, **fields)

    monkeypatch.setattr(runs.RunWriter, "write_summary", write_summary)
    with pytest.raises(TrainingError, match="out of memory at step 15"):
        train_run(tiny_cfg, runs_dir / "ro")
    info = runs.open_run(runs_dir, "ro")
    assert info.summary["status"] == "running"  # what the file says
    assert info.status == "failed" and "out of memory at step 15" in info.error


def test_a_killed_run_without_an_end_event_is_still_interrupted(tiny_cfg, runs_dir):
    train_run(tiny_cfg, runs_dir / "k")
    path = runs_dir / "k"
    summary = json.loads((path / "summary.json").read_text())
    started = runs.open_run(runs_dir, "k").events()[0]["time"]  # a summary last written while it trained
    (path / "summary.json").write_text(json.dumps({**summary, "status": "running", "updated_at": started}))
    assert runs.open_run(runs_dir, "k").status == "finished"  # its last event
    (path / "summary.json").write_text(json.dumps({**summary, "status": "running"}))  # rewritten after it:
    assert runs.open_run(runs_dir, "k").status == "interrupted"  # that end was an earlier session's
    (path / "summary.json").write_text(json.dumps({**summary, "status": "running", "updated_at": started}))
    events = (path / "events.jsonl").read_text().splitlines()
    (path / "events.jsonl").write_text("\n".join(e for e in events if '"finished"' not in e) + "\n")
    assert runs.open_run(runs_dir, "k").status == "interrupted"


# --- one owner per run -------------------------------------------------------------------------------

def test_a_run_is_not_signalled_before_its_runner_says_who_it_is(tiny_cfg, runs_dir):
    """Between taking the lock and installing its signal handlers a runner records nothing in its lock, so a
    pause then is refused (SIGUSR1 would kill a runner without its handler); once announced it is the lock's
    owner that control signals, not a pid read from a stale summary."""
    w = runs.RunWriter(runs_dir / "starting", tiny_cfg)
    try:
        w.write_summary(status="running")  # the summary has a pid: the process that writes it
        for _ in range(50):
            with pytest.raises(ConfigError, match="is starting"):
                control.pause_run(w.path)
        w.announce()
        assert control.owner(w.path)["pid"] == os.getpid()
        assert control.control_target(w.path) == (os.getpid(), control.proc_start_time(os.getpid()))
    finally:
        w.close()


def test_a_resumed_sweep_member_answers_itself(tiny_cfg, runs_dir):
    """A member resumed on its own while the sweep runs: its summary no longer names the sweep's process,
    and its lock names the resuming process, so `stop MEMBER` reaches it and not the sweep."""
    w = runs.RunWriter(runs_dir / "sw-000", tiny_cfg)
    w.write_summary(status="stopped", sweep="sw", control_pid=1, control_pid_start=1)
    w.close()
    again = runs.RunWriter(runs_dir / "sw-000", tiny_cfg, resume=True)
    try:
        again.write_summary(status="running")
        again.announce()
        assert "control_pid" not in again.summary and again.summary["sweep"] == "sw"
        assert control.control_target(again.path)[0] == os.getpid()
    finally:
        again.close()


def test_a_removed_lock_file_never_lets_a_second_writer_in(tiny_cfg, runs_dir):
    """The lock file of a paused run is deleted: a second writer takes a lock on a new file, but the live
    writer the summary records (pid and start time) still refuses it."""
    path = runs_dir / "held"
    w = runs.RunWriter(path, tiny_cfg)
    w.write_summary(status="paused")
    w.close()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        summary = json.loads((path / "summary.json").read_text())
        summary.update(pid=holder.pid, pid_start=control.proc_start_time(holder.pid))
        (path / "summary.json").write_text(json.dumps(summary))
        (path / "lock").unlink()
        with pytest.raises(control.RunLocked, match="whose lock file was removed"):
            runs.RunWriter(path, tiny_cfg, resume=True)
    finally:
        holder.kill()
        holder.wait()
    runs.RunWriter(path, tiny_cfg, resume=True).close()  # its process gone: the run is free again


def test_a_new_holder_of_the_lock_is_starting_until_it_says_who_it_is(tiny_cfg, runs_dir):
    """The lock file keeps the last runner's record after it ends; whoever takes the lock next clears it,
    so a resume that is still building its model is 'starting', not the old runner (or its sweep's)."""
    w = runs.RunWriter(runs_dir / "again", tiny_cfg)
    w.announce({"control_pid": 1, "control_pid_start": 1})
    w.write_summary(status="stopped")
    w.close()
    assert control.owner(runs_dir / "again")["control_pid"] == 1  # what the ended runner left
    again = runs.RunWriter(runs_dir / "again", tiny_cfg, resume=True)
    try:
        again.write_summary(status="running")
        assert control.owner(again.path) == {}
        with pytest.raises(ConfigError, match="is starting"):
            control.pause_run(again.path)
    finally:
        again.close()
