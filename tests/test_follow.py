"""Following a run's files with work proportional to what changed (store/follow.py, store/scan.py), deleting
a run under its lock (store/delete.py), the error line of a child's log (store/logs.py) and the chart's
min/max downsampler (figures/export.py). Mechanisms are checked by counting reads, never by timing."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from grok_tui.figures.series import minmax_downsample
from grok_tui.store import control, files, scan
from grok_tui.store.delete import DeleteError, delete_run
from grok_tui.store.follow import RunFollower
from grok_tui.store.logs import error_line
from grok_tui.store.runs import RunInfo

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    d = tmp_path / "runs"
    shutil.copytree(FIXTURES, d)
    return d


def _rows(steps) -> str:
    return "".join(json.dumps({"step": s, "val_acc": s / 100, "wall_s": s / 10}) + "\n" for s in steps)


def _counting(monkeypatch):
    """Count JsonlTail.read and read_json calls made by the follower."""
    counts = {"tail": 0, "json": 0}
    real_tail, real_json = files.JsonlTail.read, files.read_json

    def tail(self):
        counts["tail"] += 1
        return real_tail(self)

    def rj(path):
        counts["json"] += 1
        return real_json(path)

    monkeypatch.setattr(files.JsonlTail, "read", tail)
    monkeypatch.setattr("grok_tui.store.follow.read_json", rj)
    return counts


def test_a_finished_run_is_read_once(runs_dir, monkeypatch):
    counts = _counting(monkeypatch)
    f = RunFollower(runs_dir / "smoke-lr2e-3")
    first = f.poll()
    assert first.rows == 175 and f.status == "finished" and f.milestones
    after_first = dict(counts)
    assert after_first == {"tail": 2, "json": 1}  # metrics, events, summary
    version = f.version
    for _ in range(20):
        p = f.poll()
        assert not p.changed
    assert counts == after_first and f.version == version  # twenty polls: no file opened


def test_appended_rows_are_tailed_in_place_and_a_resume_drops_its_rows(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text(_rows(range(10, 110, 10)))
    f = RunFollower(run)
    assert f.poll().rows == 10
    rows, epoch = f.rows, f.epoch
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(_rows([110, 120]) + '{"step": 13')  # a torn last line waits
    assert f.poll().rows == 2
    assert f.rows is rows and f.epoch == epoch  # appended to the same list, not rebuilt
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write("0}\n")
    assert f.poll().rows == 1 and [r["step"] for r in f.rows][-3:] == [110, 120, 130]
    # a resume from step 50 rewrites the file (atomically) without the rows past 50, then goes on
    files.atomic_write_text(run / "metrics.jsonl", _rows(range(10, 60, 10)) + _rows([60]))
    p = f.poll()
    assert p.restarted and p.changed
    assert [r["step"] for r in f.rows] == [10, 20, 30, 40, 50, 60] and f.epoch == epoch + 1


def test_a_step_written_again_is_sorted_in_once(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text(_rows([10, 20, 30]))
    f = RunFollower(run)
    f.poll()
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 20, "val_acc": 0.9}) + "\n" + _rows([40]))
    f.poll()
    assert [r["step"] for r in f.rows] == [10, 20, 30, 40] and f.rows[1]["val_acc"] == 0.9


def test_the_followed_series_drops_a_resumes_rows(tmp_path):
    from grok_tui.tui.followed import LiveRun

    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text(_rows(range(10, 110, 10)))
    live = LiveRun(run)
    live.update()
    s = live.series("val_acc")
    assert s.x[-1] == 100 and len(s.x) == 10
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(_rows([110]))
    live.update()
    assert live.series("val_acc") is s and len(s.x) == 11  # extended, not rebuilt
    files.atomic_write_text(run / "metrics.jsonl", _rows(range(10, 60, 10)))  # resumed at 50
    live.update()
    again = live.series("val_acc")
    assert again.x == [10.0, 20.0, 30.0, 40.0, 50.0]  # the dropped rows are gone from the view


def test_the_scanner_reads_only_runs_whose_files_changed(runs_dir, monkeypatch):
    opened: list[str] = []
    real = scan.read_run

    def counting(path, index):
        opened.append(path.name)
        return real(path, index)

    monkeypatch.setattr(scan, "read_run", counting)
    s = scan.RunScanner(runs_dir)
    runs, changed = s.scan()
    assert changed and sorted(opened) == ["diverged-lr1e4", "smoke-lr2e-3", "smoke-wd0.3"]
    opened.clear()
    again, changed = s.scan()
    assert not changed and opened == [] and all(a is b for a, b in zip(runs, again, strict=True))
    summary = json.loads((runs_dir / "smoke-wd0.3" / "summary.json").read_text())
    files.atomic_write_text(runs_dir / "smoke-wd0.3" / "summary.json", json.dumps({**summary, "best_val_acc": 0.5}))
    third, changed = s.scan()
    assert changed and opened == ["smoke-wd0.3"]
    assert third[0] is runs[0] and third[2].summary["best_val_acc"] == 0.5
    opened.clear()
    shutil.rmtree(runs_dir / "diverged-lr1e4")
    fourth, changed = s.scan()
    assert changed and opened == [] and [r.id for r in fourth] == ["smoke-lr2e-3", "smoke-wd0.3"]


def test_the_scanner_sees_a_training_run_die_without_a_file_changing(runs_dir):
    path = runs_dir / "smoke-wd0.3"
    summary = json.loads((path / "summary.json").read_text())
    lock = control.RunLock(path)
    lock.acquire()
    try:
        (path / "summary.json").write_text(json.dumps({**summary, "status": "running", **control.identity()}))
        s = scan.RunScanner(runs_dir)
        runs, _ = s.scan()
        assert {r.id: r.status for r in runs}["smoke-wd0.3"] == "running"
        assert s.scan()[1] is False
    finally:
        lock.release()  # the process is gone: no file changed
    runs, changed = s.scan()
    assert changed and {r.id: r.status for r in runs}["smoke-wd0.3"] == "interrupted"


def test_a_first_scan_can_come_in_batches(runs_dir):
    s = scan.RunScanner(runs_dir)
    runs, changed = s.scan(limit=1)
    assert changed and not s.complete and [r.id for r in runs] == ["diverged-lr1e4"]
    runs, changed = s.scan(limit=1)
    assert [r.id for r in runs] == ["diverged-lr1e4", "smoke-lr2e-3"]
    runs, changed = s.scan(limit=5)
    assert s.complete and len(runs) == 3


def test_delete_refuses_a_run_another_process_writes(runs_dir):
    path = runs_dir / "smoke-wd0.3"
    lock = control.RunLock(path)  # a second descriptor's flock conflicts like another process's
    lock.acquire()
    try:
        with pytest.raises(DeleteError, match="being written by another process"):
            delete_run(path)
        assert (path / "metrics.jsonl").is_file()
    finally:
        lock.release()
    delete_run(path)
    assert not path.exists()
    with pytest.raises(DeleteError, match="does not exist"):
        delete_run(path)


def test_error_line_reads_the_last_error_sentence(tmp_path):
    log = tmp_path / "x.log"
    assert error_line(log) is None
    log.write_text("step 10\nerror: p must be prime.\nTraceback?\n\n")
    assert error_line(log) == "p must be prime."
    log.write_text("step 10\nkilled\n")
    assert error_line(log) == "killed"
    log.write_text("\n \n")
    assert error_line(log) is None


def test_minmax_downsample_keeps_extremes_ends_and_milestones():
    n = 1_000_000
    x = [float(i) for i in range(1, n + 1)]
    y = [math.sin(i / 5000) for i in range(n)]
    y[123_457] = 50.0  # a spike between two drawn columns
    y[654_321] = -50.0
    dx, dy = minmax_downsample(x, y, 100, keep=[777_777.0])
    assert len(dx) <= 2 * 100 + 3
    assert dx[0] == 1.0 and dx[-1] == float(n) and 777_777.0 in dx
    assert 50.0 in dy and -50.0 in dy
    assert dx == sorted(dx)
    lx, ly = minmax_downsample([0.0, *x], [1.0, *y], 100, logx=True, logy=True)
    assert len(lx) <= 2 * 100 + 2 and lx[0] >= 1.0 and all(v > 0 for v in ly)  # no x = 0, no y <= 0
    assert minmax_downsample([1.0, 2.0], [3.0, 4.0], 100) == ([1.0, 2.0], [3.0, 4.0])


def test_run_info_of_an_unchanged_run_keeps_what_reached_read(runs_dir, monkeypatch):
    s = scan.RunScanner(runs_dir)
    runs, _ = s.scan()
    for r in runs:
        r.steps_and_best()
    calls = []
    monkeypatch.setattr(RunInfo, "metrics", lambda self: calls.append(self.id) or [])
    again, _ = s.scan()
    for r in again:
        r.steps_and_best()
    assert calls == []
    assert os.path.isdir(runs_dir)


def test_active_runs_are_found_without_parsing_a_config(runs_dir, monkeypatch):
    from grok_tui.store import runs

    path = runs_dir / "smoke-wd0.3"
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, "status": "running", **control.identity()}))
    lock = control.RunLock(path)
    lock.acquire()
    parsed = []
    monkeypatch.setattr(runs, "load_toml", lambda *a, **k: parsed.append(a))
    try:
        assert runs.active_run_ids(runs_dir) == ["smoke-wd0.3"]
    finally:
        lock.release()
    assert runs.active_run_ids(runs_dir) == [] and parsed == []  # its process gone: interrupted


def _progress(steps, k: int = 3) -> str:
    return "".join(json.dumps({"step": s, "basis": "additive", "spectrum": [float(s % 7 + i) for i in range(k)],
                               "key_freqs": [1], "gini": 0.5, "ipr": 0.4}) + "\n" for s in steps)


def test_progress_rows_are_tailed_like_metrics_and_a_resume_drops_them(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    f = RunFollower(run)
    assert f.poll().progress == 0 and f.progress == []  # no progress.jsonl: nothing, no error
    (run / "progress.jsonl").write_text(_progress([10, 20, 30]) + '{"step": 40, "not": "a progress row"}\n')
    p = f.poll()
    assert p.progress == 3 and p.changed and [r["step"] for r in f.progress] == [10, 20, 30]
    rows, version = f.progress, f.version
    with open(run / "progress.jsonl", "a") as fh:
        fh.write(_progress([40]) + '{"step": 5')  # a torn last line waits
    p = f.poll()
    assert p.progress == 1 and p.rows == 0 and f.progress is rows and f.version == version + 1
    assert not f.poll().changed  # unchanged: not read again
    # a resume from step 20 rewrites the file without the rows past it, then goes on
    files.atomic_write_text(run / "progress.jsonl", _progress([10, 20, 25]))
    p = f.poll()
    assert p.progress_restarted and p.progress == 3
    epoch, rows = f.progress_and_epoch()
    assert [r["step"] for r in rows] == [10, 20, 25] and epoch == 1
