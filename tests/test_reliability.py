"""Control you can trust: faults tried on real processes and what each gets (docs/reliability.md)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
from helpers import reap

from grok_tui.spec import config
from grok_tui.spec.presets import preset
from grok_tui.spec.tomlfile import load_toml
from grok_tui.store import control, files, ids, runs
from grok_tui.tui.followed import Launch


class _SameSecond(datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: ARG003
        return datetime(2026, 1, 2, 3, 4, 5)


# --- 6: two starts from the app within one second ----------------------------------------------------

def test_two_launches_in_the_same_second_claim_two_ids_and_keep_both_configs(tmp_path, monkeypatch):
    monkeypatch.setattr(ids, "datetime", _SameSecond)
    root = tmp_path / "runs"
    a_cfg = config.apply_overrides(preset("smoke"), {"lr": 1e-3})
    b_cfg = config.apply_overrides(preset("smoke"), {"lr": 2e-3})
    a, b = Launch(root, None, a_cfg), Launch(root, None, b_cfg)  # no runner is started
    assert a.run_id != b.run_id and b.run_id == f"{a.run_id}-2"
    assert a.config_file != b.config_file and a.config_file.is_file() and b.config_file.is_file()
    assert load_toml(a.config_file) == a_cfg and load_toml(b.config_file) == b_cfg
    assert a.argv[a.argv.index("--name") + 1] == a.run_id and b.argv[b.argv.index("--config") + 1] == str(b.config_file)
    # the app's way: an id from the store, then its launch; the store counts the claimed start files
    app_id = ids.new_run_id(root, a_cfg)
    assert app_id == f"{a.run_id}-3"
    c = Launch(root, app_id, a_cfg)
    assert c.run_id == app_id and load_toml(c.config_file) == a_cfg
    # an id asked for that another launch holds moves on, never over the other's file
    d = Launch(root, a.run_id, b_cfg)
    assert d.run_id == f"{a.run_id}-4" and load_toml(a.config_file) == a_cfg
    # a generated id of `grok-tui run` skips them too (its run directory claim agrees with the start files)
    w = runs.create_writer(root, b_cfg)
    try:
        assert w.run_id == f"{a.run_id}-5"
    finally:
        w.close()


def test_concurrent_launches_never_share_a_start_file(tmp_path, monkeypatch):
    monkeypatch.setattr(ids, "datetime", _SameSecond)
    root = tmp_path / "runs"
    for _round in range(5):  # looped: the race is cheap
        cfgs = [config.apply_overrides(preset("smoke"), {"seed": i}) for i in range(8)]
        go = threading.Barrier(len(cfgs))
        got: list[Launch] = []

        def launch(cfg, go=go, got=got):
            go.wait()
            got.append(Launch(root, None, cfg))

        threads = [threading.Thread(target=launch, args=(c,)) for c in cfgs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({la.run_id for la in got}) == len(cfgs)
        for la in got:
            assert load_toml(la.config_file) == la.cfg
        for la in got:
            la.cleanup()
        assert not any((root / runs.START_DIR).iterdir())


def test_a_launch_that_cannot_claim_removes_nothing_and_start_says_why(tmp_path):
    root = tmp_path / "runs"
    root.write_text("a file")
    la = Launch(root, "x", preset("smoke"))
    assert not la.claimed
    la.cleanup()  # nothing of its own to remove
    with pytest.raises(OSError):
        la.start()
    assert la.proc is None


# --- real runners ----------------------------------------------------------------------------------

def _runner(runs_dir, name, *flags, steps=100000):
    cmd = [sys.executable, "-m", "grok_tui", "run", "--preset", "smoke", "--steps", str(steps), "--eval-every", "10",
           "--checkpoint-every", "0", "--name", name, "--runs-dir", str(runs_dir), "--device", "cpu",
           "--threads", "1", *flags]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _poll_until(cond, what: str, procs=(), bound_s: float = 600.0, every_s: float = 0.02) -> None:
    """Wait until cond() holds; the bound only stops a hang (no assertion is about how long it takes). A
    child in procs that exits first ends the wait with its stderr."""
    deadline = time.monotonic() + bound_s
    while not cond():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a child exited ({p.returncode}) before {what}: {p.stderr.read()}")
        assert time.monotonic() < deadline, f"no {what} after {bound_s:.0f} s: a hang"
        time.sleep(every_s)


def _has_row(path) -> bool:
    return bool(files.read_jsonl(path / "metrics.jsonl"))


# --- 3: a run directory removed under its writer --------------------------------------------------

def test_a_run_directory_removed_under_its_writer_ends_it_with_one_sentence_and_stays_gone(runs_dir):
    path = runs_dir / "doomed"
    proc = _runner(runs_dir, "doomed")
    try:
        _poll_until(lambda: _has_row(path), "the first evaluation row", [proc])
        while path.exists():  # the runner may make a temp file beside the ones rmtree removes: again
            shutil.rmtree(path, ignore_errors=True)
        code = proc.wait(600)
        err = proc.stderr.read()
    finally:
        reap(proc)
    assert code == 1, err
    assert f"the run directory {path} was removed while it trained." in " ".join(err.split()), err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert not os.path.lexists(path)  # nothing was made again
    assert "doomed" not in [r.id for r in runs.list_runs(runs_dir)]


def test_a_member_whose_directory_is_removed_writes_nothing_more(tiny_cfg, runs_dir):
    """In one process: a writer whose directory is removed between two evaluations ends that run failed,
    and neither its summary nor a checkpoint makes the directory again."""
    from helpers import train_run

    from grok_tui.errors import TrainingError
    from grok_tui.report import Reporter

    path = runs_dir / "gone"

    class RemoveAfterFirst(Reporter):
        def on_eval(self, run_id, row):
            if row["step"] == 10:
                shutil.rmtree(path)

    with pytest.raises(TrainingError, match="was removed while it trained"):
        train_run(tiny_cfg, path, reporters=[RemoveAfterFirst()])
    assert not os.path.lexists(path)


# --- 9: a second Ctrl-C ----------------------------------------------------------------------------

def test_a_second_ctrl_c_while_stopping_exits_130_without_a_traceback(runs_dir):
    path = runs_dir / "twice"
    proc = _runner(runs_dir, "twice")
    try:
        _poll_until(lambda: _has_row(path), "the first evaluation row", [proc])
        proc.send_signal(signal.SIGINT)
        _poll_until(lambda: "stopped" in [e.get("event") for e in files.read_jsonl(path / "events.jsonl")],
                    "the stopped event", [proc], every_s=0.005)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(600)
        err = proc.stderr.read()
    finally:
        reap(proc)
    assert code == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    info = runs.open_run(runs_dir, "twice")
    assert info.status == "stopped" and info.summary["status"] == "stopped"


# --- 7: a dead worker, a dead coordinator ----------------------------------------------------------

def _sweep(runs_dir, name, *grid):
    cmd = [sys.executable, "-m", "grok_tui", "sweep", "--preset", "smoke", "--eval-every", "10", "--checkpoint-every",
           "0", "--device", "cpu", "--workers", "2", "--threads", "1", "--runs-dir", str(runs_dir), "--name", name,
           "--json", *grid]
    # a session of its own: its workers are killed with it (reap(group=True)) whatever the test does
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _worker_of(path) -> tuple[int, int] | None:
    """(pid, start time) of the worker process that trains a member, once it has a row and says who it is."""
    rec = control.owner(path)
    if not _has_row(path) or not isinstance(rec.get("pid"), int):
        return None
    return rec["pid"], rec["pid_start"]


def _gone(pid: int, start: int) -> bool:
    return control.proc_start_time(pid) != start


def _kill_if_same(pid: int, start: int) -> None:
    if not _gone(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_costs_only_its_own_members(runs_dir):
    proc = _sweep(runs_dir, "dw", "--steps", "150,100000")  # dw-000 ends soon, dw-001 trains until killed
    victim = None
    try:
        _poll_until(lambda: _worker_of(runs_dir / "dw-001") is not None, "dw-001's first row", [proc])
        victim = _worker_of(runs_dir / "dw-001")
        assert victim[0] != proc.pid
        os.kill(victim[0], signal.SIGKILL)
        code = proc.wait(600)
        err = proc.stderr.read()
    finally:
        reap(proc, group=True)
    assert code == 1, err
    assert "1 of 2 runs failed" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    ok, dead = runs.open_run(runs_dir, "dw-000"), runs.open_run(runs_dir, "dw-001")
    assert ok.status == "finished" and ok.summary["steps_run"] == 150
    assert dead.status == "failed" and "its worker process died (killed by signal 9" in dead.error
    assert dead.events()[-1]["event"] == "failed" and dead.summary["steps_run"] >= 10
    summary = json.loads((runs_dir / "sweeps" / "dw.json").read_text())
    assert summary["complete"] and [m["status"] for m in summary["members"]] == ["finished", "failed"]


def test_a_killed_coordinator_stops_its_workers_members_and_leaves_no_process(runs_dir):
    from grok_tui.sweep.workers import COORDINATOR_DIED

    proc = _sweep(runs_dir, "dc", "--steps", "100000", "--seed", "0..1")
    paths = [runs_dir / "dc-000", runs_dir / "dc-001"]
    workers: list[tuple[int, int]] = []
    try:
        _poll_until(lambda: all(_worker_of(p) is not None for p in paths), "both members' first rows", [proc])
        workers = [_worker_of(p) for p in paths]
        assert len({w[0] for w in workers}) == 2 and proc.pid not in {w[0] for w in workers}
        proc.kill()
        proc.wait()
        _poll_until(lambda: all(_gone(*w) for w in workers), "the workers' end", every_s=0.05)
    finally:
        reap(proc, group=True)
        for w in workers:
            _kill_if_same(*w)
    for p in paths:
        info = runs.open_run(runs_dir, p.name)
        assert info.status == "stopped" and info.error == COORDINATOR_DIED, (info.status, info.error)
        step, last = info.checkpoints()[-1]
        assert step == info.summary["steps_run"] > 0
        assert "final" in json.loads(last.with_suffix(".json").read_text())["tags"]


# --- 15: names printed literally -----------------------------------------------------------------

def test_a_name_with_rich_markup_is_printed_literally_everywhere(runs_dir, monkeypatch):
    from typer.testing import CliRunner

    from grok_tui.cli.main import app

    cli, name, where = CliRunner(), "lr[high]", ["--runs-dir", str(runs_dir)]
    short = ["--preset", "smoke", "--steps", "20", "--eval-every", "10", "--checkpoint-every", "0", "--device", "cpu",
             "--threads", "1"]
    r = cli.invoke(app, ["run", *short, "--name", name, *where])
    assert r.exit_code == 0, r.output
    assert f"run {name} on cpu" in r.output  # the start line
    assert any(line.startswith(f"{name} ") and "20/20" in line for line in r.output.splitlines()), r.output  # the bar
    r = cli.invoke(app, ["runs", *where])
    assert r.exit_code == 0 and any(line.startswith(f"{name} ") for line in r.output.splitlines()), r.output
    r = cli.invoke(app, ["runs", "show", name, *where])
    assert r.exit_code == 0 and r.output.startswith(f"{name}  finished"), r.output
    assert f"({runs_dir / name})" in "".join(r.output.split()), r.output
    r = cli.invoke(app, ["stop", name, *where])
    assert r.exit_code == 2 and f"run '{name}' is not training" in r.output, r.output

    # control of a run being written by this process (announced), its pause signal taken by a handler here
    got: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    w = runs.RunWriter(runs_dir / "ctl[x]", config.apply_overrides(preset("smoke"), {"device": "cpu"}))
    try:
        w.write_summary(status="running")
        w.announce()
        r = cli.invoke(app, ["pause", "ctl[x]", *where])
        assert r.exit_code == 0 and r.output.startswith(f"asked ctl[x] (pid {os.getpid()}) to pause"), r.output
    finally:
        w.close()
        signal.signal(signal.SIGUSR1, old)
    assert got == [signal.SIGUSR1]

    r = cli.invoke(app, ["sweep", *short, "--seed", "0..1", "--workers", "1", "--name", "sw[b]", *where, "--dry-run"])
    assert r.exit_code == 0 and "sweep sw[b]: 2 runs" in r.output and "sw[b]-000  seed=0" in r.output, r.output
    r = cli.invoke(app, ["sweep", *short, "--seed", "0..1", "--workers", "1", "--name", "sw[b]", *where])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())
    assert "sweep sw[b]: 2 runs" in flat and "sweep sw[b]: steps to memorize" in flat, r.output
    assert "sweeps/sw[b].json" in "".join(r.output.split())


# --- 11: the Ray backend's control (Ray is not installed here: a stand-in of its API) ------------------

class _FakeRay:
    """The part of Ray's API the backend uses. Task 0 comes back at once with an empty tar; the others
    never do, until cancelled."""

    def __init__(self, on_first=None):
        self.cancelled, self.on_first, self.started = [], on_first, False
        self.refs: list[int] = []

    def is_initialized(self):
        return self.started

    def init(self, **kw):
        self.started = True

    def shutdown(self):
        self.started = False

    def cluster_resources(self):
        return {"CPU": 2}

    def remote(self, fn):
        fake = self

        class Task:
            def options(self, **kw):
                return self

            def remote(self, sweep_id, payload):
                fake.refs.append(len(fake.refs))
                return fake.refs[-1]

        return Task()

    def wait(self, pending, num_returns=1, timeout=None):
        if 0 in pending:
            return [0], [r for r in pending if r != 0]
        if self.on_first is not None:
            self.on_first()
            self.on_first = None
        return [], pending

    def get(self, ref):
        import io
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz"):
            pass
        return {"results": {"ray-000": {"status": "finished", "steps_run": 20}}, "tar": buf.getvalue()}

    def cancel(self, ref, force=False):
        self.cancelled.append(ref)


def test_a_ray_sweep_stops_by_cancelling_its_tasks_and_says_it_cannot_pause(runs_dir, monkeypatch):
    from grok_tui.sweep import plan as sweep_plan
    from grok_tui.sweep import ray_backend
    from grok_tui.sweep.run import run_sweep
    from grok_tui.train.loop import Control

    base = config.apply_overrides(preset("smoke"), {"steps": 20, "device": "cpu"})
    p = sweep_plan.plan(base, {"seed": [0, 1, 2]}, runs_dir, name="ray", chunk=1)
    assert len(p.groups) == 3
    ctl = Control()
    ctl.pause.set()  # asked to pause before it starts: said, dropped
    fake = _FakeRay(on_first=ctl.stop.set)  # stopped once the first task came back
    monkeypatch.setitem(sys.modules, "ray", fake)
    notes: list[str] = []
    s = run_sweep(p, runs_dir, "ray", control=ctl, note=notes.append)
    assert ray_backend.CANNOT_PAUSE in notes and notes.count(ray_backend.CANNOT_PAUSE) == 2 and not ctl.pause.is_set()
    assert sorted(fake.cancelled) == [1, 2] and not fake.started
    statuses = {m["run_id"]: m["status"] for m in s["members"]}
    assert statuses == {"ray-000": "finished", "ray-001": "stopped", "ray-002": "stopped"} and s["complete"]
