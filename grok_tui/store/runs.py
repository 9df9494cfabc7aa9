"""The run directory (the contract between the parts) and the one store API every view reads through.

runs/<run-id>/config.toml, metrics.jsonl, events.jsonl, checkpoints/, summary.json, lock (docs/architecture.md, "The run directory").
Lines are appended and flushed as they are written, so a run killed with SIGKILL leaves every
complete line readable; a torn last line is ignored by the readers.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grok_tui.errors import ConfigError, GrokError
from grok_tui.spec.config import Config
from grok_tui.spec.tomlfile import load_toml
from grok_tui.store import control, files
from grok_tui.store.files import read_json, read_jsonl
from grok_tui.store.ids import START_DIR, new_run_id  # noqa: F401 - START_DIR: where it was
from grok_tui.store.index import ConfigIndex
from grok_tui.store.names import name_error
from grok_tui.store.progress import PROGRESS_FILE

RUNS_DIR_ENV = "GROK_TUI_RUNS_DIR"
_ENDS = ("failed", "stopped", "finished")  # the events that end a run (the loop's last event)


# --- writing -----------------------------------------------------------------------------------

def claim_start_file(root: Path, cfg: Config, run_id: str | None = None, attempts: int = 1000) -> str:
    """Claim ``<root>/.start/<id>.toml`` for a run the app launches and write cfg into it; returns the id.

    The file is created with O_EXCL, never overwritten: `run_id` when it is free (no run directory, no
    start file), else the next free one (`-2`, `-3`, ... as new_id counts), so two starts in the same
    second get two ids and two intact configs. With run_id None the id is generated (new_run_id).
    OSError when the runs directory cannot be written."""
    root = Path(root)
    start = root / START_DIR
    start.mkdir(parents=True, exist_ok=True)
    base = run_id if run_id is not None else new_run_id(root, cfg)
    data = cfg.to_toml().encode()
    for n in range(1, attempts + 1):
        cand = base if n == 1 else f"{base}-{n}"
        if os.path.lexists(root / cand):
            continue
        try:
            fd = os.open(start / f"{cand}.toml", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        try:
            while data:
                data = data[os.write(fd, data):]
        except BaseException:
            os.close(fd)
            os.unlink(start / f"{cand}.toml")
            raise
        os.close(fd)
        return cand
    raise ConfigError(f"no free run id under {root} after {attempts} tries.")


class RunExists(ConfigError):
    """A new run's directory exists already."""


class RunRemoved(OSError):
    """The run directory a writer writes was removed (or replaced) under it; str(e) is the sentence."""


def _step_at_most(step: int) -> Callable[[dict], bool]:
    def keep(obj: dict) -> bool:
        s = obj.get("step")
        return not isinstance(s, int) or s <= step
    return keep


# Failures of the machine, not of the input (exit 1): a full disk or quota, an I/O error, no file
# descriptor or memory left.
_MACHINE_ERRNOS = (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM)


class RunWriter:
    """Appends rows and events, writes checkpoints and the summary of one run directory.

    It holds the run's lock (store/control.py) from its creation to close(): a second writer of the same
    run, in this process or another, is refused with one sentence. The lock is the only file it keeps
    open: rows and events are appended with the file opened for each write. On a resume from step `resume_step`
    the rows and events past that step are dropped (the run writes them again) and a torn last line is
    repaired before anything is appended.
    """

    def __init__(self, path: Path, cfg: Config, resume: bool = False, resume_step: int | None = None):
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"
        self.lock = control.RunLock(self.path)
        created = False
        try:
            if not resume:
                created = _make_run_dir(self.path)
            self.lock.acquire()
            if not resume and (self.path / "config.toml").exists():
                raise FileExistsError(self.path)  # another writer claimed the empty directory first
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            if not resume:
                files.atomic_write_text(self.path / "config.toml", cfg.to_toml())
            else:
                keep = _step_at_most(resume_step) if resume_step is not None else (lambda obj: True)
                for name in ("metrics.jsonl", "events.jsonl", PROGRESS_FILE):
                    files.rewrite_jsonl(self.path / name, keep)
            files.remove_temp_files(self.path)
            self._metrics, self._events = self.path / "metrics.jsonl", self.path / "events.jsonl"
            for f in (self._metrics, self._events):
                os.close(os.open(f, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except FileExistsError:
            self.lock.release()
            raise RunExists(f"run directory {self.path} already exists (choose another --name or --resume it).") from None
        except control.RunLocked:
            raise
        except OSError as e:
            self.lock.release()
            if created:  # what this writer made and nothing else: the name stays free
                shutil.rmtree(self.path, ignore_errors=True)
            why = f"cannot {'open' if resume else 'create'} the run directory {self.path}: {e.strerror or e}."
            if e.errno in _MACHINE_ERRNOS:
                raise GrokError(why) from None  # a failure of the machine (exit 1), not of the input
            raise ConfigError(why) from None
        self._ident = _dir_ident(self.path)
        self.summary: dict[str, Any] = read_json(self.path / "summary.json") if resume else {}
        for stale in ("error", "finished_at", "control_pid", "control_pid_start"):  # a resume answers itself
            self.summary.pop(stale, None)
        self.summary.update({**control.identity(), "host": socket.gethostname()})
        self._last_summary = 0.0

    @property
    def run_id(self) -> str:
        return self.path.name

    def removed(self) -> RunRemoved | None:
        """The error to end with when this writer's directory was removed (or replaced by another of its
        name) since the writer opened it; None while it is there. One stat of the directory."""
        if self._ident is None or _dir_ident(self.path) == self._ident:
            return None
        return RunRemoved(f"the run directory {self.path} was removed while it trained.")

    def check_present(self) -> None:
        """Raise RunRemoved when the directory was removed: called at each evaluation and before every
        checkpoint and summary write, so nothing of a removed run is made again."""
        gone = self.removed()
        if gone is not None:
            raise gone

    def _append(self, path: Path, obj: dict) -> None:
        """One line appended with one write, the file opened for it alone: a writer holds no descriptor
        but its lock's between writes, so an ensemble of many members fits the open-file limit."""
        data = (json.dumps(obj, allow_nan=True) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
        try:
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    def metrics(self, row: dict) -> None:
        self._append(self._metrics, row)

    def event(self, event: dict) -> None:
        self._append(self._events, event)

    def progress(self, row: dict) -> None:
        """One row of progress.jsonl (store/progress.py)."""
        self._append(self.path / PROGRESS_FILE, row)

    def announce(self, signals_to: dict | None = None) -> None:
        """Record in the run's lock who holds it and where its control signals go (`signals_to`: a sweep
        worker's coordinator; else this process). Call it once this process answers those signals."""
        self.lock.record(**(signals_to or {}))

    def write_summary(self, force: bool = True, **fields: Any) -> None:
        self.summary.update(fields)
        now = time.monotonic()
        if force or now - self._last_summary > 1.0:
            self._last_summary = now
            self.summary["updated_at"] = time.time()
            text = json.dumps(self.summary, indent=1)
            self.check_present()
            try:
                files.atomic_write_text(self.path / "summary.json", text, make_dirs=False)
            except OSError as e:
                if (gone := self.removed()) is not None:
                    raise gone from None
                # A full disk has no room for the temp file; the old summary's own blocks still
                # hold the new one (a few hundred bytes), so a final status is not lost.
                if e.errno != errno.ENOSPC or not files.overwrite_in_place(self.path / "summary.json", text):
                    raise

    def close(self) -> None:
        self.lock.release()


def drop_start_files(root: Path, run_id: str, config_file: Path | None) -> None:
    """Remove `<root>/.start/<run_id>.toml` and `.log` when this run was launched from them (its config
    file is that .toml): from here on its run directory holds its config and output. Files of other
    runs, and a config file elsewhere, are left alone; a file already gone is fine."""
    start = Path(root) / START_DIR
    own = start / f"{run_id}.toml"
    try:
        if config_file is None or Path(config_file).resolve() != own.resolve():
            return
    except OSError:
        return
    for p in (own, start / f"{run_id}.log"):
        try:
            p.unlink()
        except OSError:
            pass


def create_writer(root: Path, cfg: Config, name: str | None = None, attempts: int = 1000) -> RunWriter:
    """The writer of a new run: `name`, or the first free generated id. Creating the directory is the
    claim, so runs started in the same second by several processes get distinct ids."""
    for _ in range(1 if name else attempts):
        try:
            return RunWriter(Path(root) / new_run_id(root, cfg, name), cfg)
        except (RunExists, control.RunLocked):  # another start took this id a moment ago
            if name:
                raise
    raise ConfigError(f"no free run id under {root} after {attempts} tries; give --name.")


def end_abandoned(path: Path, error: str) -> dict | None:
    """Write the end of a run whose writer died without writing it (a sweep's worker process killed):
    status failed with `error` and a failed event, under the run's lock (free once its writer is dead).
    Returns the run's summary as it now stands (its own, when it had ended already), or None when there is
    no run directory. RunLocked when a live process still writes it; OSError when it cannot be written."""
    path = Path(path)
    if not (path / "config.toml").is_file():
        return None
    lock = control.RunLock(path)
    lock.acquire()
    try:
        summary = read_json(path / "summary.json")
        if summary.get("status") in _ENDS:
            return summary
        now = time.time()
        step = summary.get("steps_run") if isinstance(summary.get("steps_run"), int) else 0
        rows = read_jsonl(path / "metrics.jsonl")
        if rows and isinstance(rows[-1].get("step"), int):
            step = max(step, rows[-1]["step"])
        event = {"event": "failed", "step": step, "error": error, "time": now}
        fd = os.open(path / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o666)
        try:
            os.write(fd, (json.dumps(event) + "\n").encode())
        finally:
            os.close(fd)
        summary.update(status="failed", error=error, steps_run=step, finished_at=now, updated_at=now)
        files.atomic_write_text(path / "summary.json", json.dumps(summary, indent=1), make_dirs=False)
        return summary
    finally:
        lock.release()


def check_runs_dir(root: Path) -> None:
    """Make sure the runs directory exists and can be written (ConfigError, exit 2, when not)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"the runs directory {root} is not a directory.")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the runs directory {root}: {e.strerror or e}.") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigError(f"the runs directory {root} is not writable.")


def _dir_ident(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a directory; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _make_run_dir(path: Path) -> bool:
    """Create a new run directory (True), or take over an empty one left by a start that failed (False;
    the caller's lock decides between two takers)."""
    try:
        path.mkdir(parents=True, exist_ok=False)
        return True
    except FileExistsError:
        if not path.is_dir() or any(p.name != control.LOCK_NAME for p in path.iterdir()):
            raise
        return False


# --- reading -----------------------------------------------------------------------------------

def dedupe_steps(rows: list[dict]) -> list[dict]:
    """Rows ordered by step, the last written row winning (a resumed run re-writes some steps)."""
    by_step: dict[int, dict] = {}
    for r in rows:  # a row without a whole-number step (a hand-edited file) is not a row
        step = r.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            by_step[step] = r
    return [by_step[s] for s in sorted(by_step)]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class RunInfo:
    id: str
    path: Path
    config: Config | None
    summary: dict = field(default_factory=dict)
    _steps_and_best: tuple[Any, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def status(self) -> str:
        """The summary's status; a run that says running (or paused) with no process writing it (its
        lock free, or its pid gone or reused by another process) ended as its last event says (failed,
        stopped, finished: the summary could not be written, e.g. a read-only directory), else it is
        "interrupted"."""
        s = self.summary.get("status", "unknown")
        if s in ("running", "paused") and self.summary.get("host") in (None, socket.gethostname()):
            if not control.runner_alive(self.path, self.summary):
                end = self.end_event()
                return end["event"] if end is not None else "interrupted"
        return s

    @property
    def error(self) -> str | None:
        """Why the run failed: the summary's error, or that of its last event when the summary could not
        be written."""
        if self.summary.get("error"):
            return self.summary["error"]
        end = self.end_event() if self.status in _ENDS else None
        return end.get("error") if end is not None else None

    def end_event(self) -> dict | None:
        """The run's last event when it is an end (failed, stopped, finished) written after the summary's
        last update (an end of an earlier session, before a resume that rewrote the summary, is not this
        session's end), else None."""
        events = self.events()
        last = events[-1] if events else None
        if not isinstance(last, dict) or last.get("event") not in _ENDS:
            return None
        written, updated = last.get("time"), self.summary.get("updated_at")
        if _number(written) and _number(updated) and written < updated:
            return None
        return last

    @property
    def active(self) -> bool:
        return self.status in ("running", "paused")

    def metrics(self) -> list[dict]:
        return dedupe_steps(read_jsonl(self.path / "metrics.jsonl"))

    def events(self) -> list[dict]:
        return read_jsonl(self.path / "events.jsonl")

    def checkpoints(self) -> list[tuple[int, Path]]:
        return files.checkpoints(self.path / "checkpoints")

    def steps_and_best(self) -> tuple[Any, Any]:
        """Steps run and best validation accuracy: the summary's, or for an interrupted run the newer of
        those and its metric rows (a running summary is rewritten at most once a second, so a killed
        run's can lag its last evaluations). Read once per RunInfo (the runs view reads it in its scan worker)."""
        if self._steps_and_best is None:
            steps, best = self.summary.get("steps_run"), self.summary.get("best_val_acc")
            if self.status == "interrupted":
                rows = self.metrics()
                if rows:
                    steps = max(steps, rows[-1]["step"]) if _number(steps) else rows[-1]["step"]
                    vals = [v for r in rows if _number(v := r.get("val_acc")) and math.isfinite(v)]
                    if _number(best):
                        vals.append(best)
                    best = max(vals) if vals else best
            self._steps_and_best = (steps, best)
        return self._steps_and_best

    def row(self) -> dict[str, Any]:
        """The headline of a run, as the runs tables show it (raw values; None where unknown)."""
        c, s = self.config, self.summary
        steps, best = self.steps_and_best()
        return {"run": self.id, "op": c.data.op if c else None, "p": c.data.p if c else None,
                "ratio": c.data.train_frac if c else None, "opt": c.optim.optimizer if c else None,
                "lr": c.optim.lr if c else None, "wd": c.optim.weight_decay if c else None,
                "steps": f"{steps if steps is not None else 0}/{c.train.steps if c else '?'}",
                "mem": s.get("memorized_step"), "grok": s.get("grokked_step"),
                "best_val": best, "status": self.status}

    def milestone_step(self, name: str) -> int | None:
        v = self.summary.get(f"{name}_step")
        if isinstance(v, int):
            return v
        for e in self.events():
            if e.get("event") == name and isinstance(e.get("step"), int):
                return e["step"]
        return None


def open_run(root: Path, run_id: str) -> RunInfo:
    bad = name_error("run", run_id)
    if bad:
        raise ConfigError(f"no run '{run_id}' in {root}: {bad}")
    path = Path(root) / run_id
    if not (path / "config.toml").is_file() and not (path / "summary.json").is_file():
        raise ConfigError(f"no run '{run_id}' in {root}.")
    cfg = None
    try:
        cfg = load_toml(path / "config.toml")
    except GrokError:
        pass
    return RunInfo(run_id, path, cfg, read_json(path / "summary.json"))


def list_runs(root: Path) -> list[RunInfo]:
    """Every run under root, by id. Configs come from the runs' derived index where it is current
    (store/index.py), so a listing parses only the configs that changed since the last one."""
    root = Path(root)
    try:
        entries = sorted(e.name for e in os.scandir(root) if e.is_dir())
    except OSError:
        return []
    index = ConfigIndex(root)
    runs = []
    for name in entries:
        if name_error("run", name) is not None:
            continue
        path = root / name
        if not (path / "config.toml").is_file():
            continue
        runs.append(read_run(path, index))
    index.save()
    return runs


def read_run(path: Path, index: ConfigIndex) -> RunInfo:
    """A run directory as read for a listing: its config through the derived index, its summary."""
    return RunInfo(path.name, path, index.config(path), read_json(path / "summary.json"))


def active_run_ids(root: Path) -> list[str]:
    """The runs some process is training now, the most recently started first. Only summaries are read
    (and the locks of runs whose summary says they train): no config is parsed."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for d in sorted(root.iterdir()):
        if d.is_dir() and name_error("run", d.name) is None and (d / "config.toml").is_file():
            summary = read_json(d / "summary.json")
            if summary.get("status") in ("running", "paused"):
                runs.append(RunInfo(d.name, d, None, summary))
    runs = [r for r in runs if r.active]
    runs.sort(key=lambda r: r.summary.get("started_at") or 0, reverse=True)
    return [r.id for r in runs]


