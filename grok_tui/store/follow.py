"""Following one run through its directory alone, whoever started it (no torch, no UI).

``RunFollower.poll()`` reads what changed since the last call, and only that: a file whose size, mtime
and inode are the ones seen last time is not opened. Rows and events are tailed (``JsonlTail``: a torn
last line waits for the next read; a file a resume rewrote is read again, and the rows it dropped
leave the followed rows), the summary is re-read when it was rewritten, and the lock is probed only
while the summary says the run trains. A finished run costs a few ``stat`` calls per poll after its
first read. Every view that follows a run (the Train view, the Runs view's chart, attach) reads one
follower per run; a front end calls `poll()` from one thread and tells its UI what changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from grok_tui.spec.config import MILESTONES
from grok_tui.store import control
from grok_tui.store.files import JsonlTail, read_json

ACTIVE = ("starting", "running", "paused", "stopping")


@dataclass
class Polled:
    rows: int  # new rows (or, after a resume rewrote the file, every row read again)
    state_changed: bool
    events: list[dict]
    restarted: bool = False  # the rows were replaced: a resume dropped the rows past its checkpoint

    @property
    def changed(self) -> bool:
        return bool(self.rows or self.state_changed or self.events or self.restarted)


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class RunFollower:
    """What is known of one run so far: rows by step, events, milestones, status, the last summary.

    `rows` is the list of rows by step. New rows past the last step are appended to it in place; when
    rows must be re-ordered or dropped (a resume rewrote metrics.jsonl) a new list replaces it and
    `epoch` grows, so a reader on another thread sees a whole list, and a reader that keeps something
    derived from the rows (a chart's columns) knows when to start over."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._metrics = JsonlTail(self.path / "metrics.jsonl")
        self._events = JsonlTail(self.path / "events.jsonl")
        self._by_step: dict[int, dict] = {}
        self._rows: tuple[int, list[dict]] = (0, [])  # (epoch, rows): replaced together
        self.events: list[dict] = []
        self.milestones: dict[str, int] = {}
        self.summary: dict = {}
        self.status = "starting"
        self._stats: dict[str, tuple | None] = {}
        self.reads = 0  # files opened and read so far (an unchanged file is not read again)
        self.version = 0  # grows whenever a poll changed rows, events or the state

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def exists(self) -> bool:
        return (self.path / "summary.json").is_file()

    @property
    def rows(self) -> list[dict]:
        return self._rows[1]

    @property
    def epoch(self) -> int:
        return self._rows[0]

    def rows_and_epoch(self) -> tuple[int, list[dict]]:
        """The rows and their epoch, read together (the follower thread may replace both)."""
        return self._rows

    def _changed(self, name: str) -> bool:
        key = _stat_key(self.path / name)
        if name in self._stats and self._stats[name] == key:
            return False
        self._stats[name] = key
        return key is not None

    def _read_rows(self) -> tuple[int, bool]:
        new = self._metrics.read()
        self.reads += 1
        restarted = self._metrics.restarted
        epoch, rows = self._rows
        rebuild = restarted
        if restarted:  # a resume rewrote the file: rows past its checkpoint are gone
            self._by_step = {}
        last = rows[-1]["step"] if rows and not restarted else None
        appended = []
        for r in new:
            s = r.get("step")
            if not isinstance(s, int) or isinstance(s, bool):
                continue
            if s in self._by_step or (last is not None and s <= last):
                rebuild = True  # a step written again or out of order: sort once below
            self._by_step[s] = r
            appended.append(r)
            last = s if last is None or s > last else last
        if rebuild:
            self._rows = (epoch + 1, [self._by_step[s] for s in sorted(self._by_step)])
        elif appended:
            rows.extend(appended)  # in place: a reader holding the list sees it grow, never torn
        return len(appended), restarted

    def poll(self) -> Polled:
        n, restarted = 0, False
        if self._changed("metrics.jsonl"):
            n, restarted = self._read_rows()
        evs: list[dict] = []
        if self._changed("events.jsonl"):
            evs = self._events.read()
            self.reads += 1
            if self._events.restarted:
                self.events, self.milestones = [], {}
            if evs:
                self.events = self.events + evs
                for e in evs:
                    if e.get("event") in MILESTONES and isinstance(e.get("step"), int):
                        self.milestones.setdefault(e["event"], e["step"])
        before = (self.status, self.summary.get("error"))
        if self._changed("summary.json"):
            summary = read_json(self.path / "summary.json")
            self.reads += 1
            if summary:
                self.summary = summary
                for name in MILESTONES:  # a resume drops events past its checkpoint; the summary has them
                    v = summary.get(f"{name}_step")
                    if isinstance(v, int):
                        self.milestones.setdefault(name, v)
        if self.summary:
            status = self.summary.get("status", "unknown")
            # the lock is probed only while the summary says a process trains it (it may have died)
            if status in ("running", "paused") and not control.runner_alive(self.path, self.summary):
                status = "interrupted"
            self.status = status
        polled = Polled(n, (self.status, self.summary.get("error")) != before, evs, restarted)
        if polled.changed:
            self.version += 1
        return polled

    # -- what a status line shows -----------------------------------------------------------------
    @property
    def total_steps(self) -> int | None:
        v = self.summary.get("total_steps")
        return v if isinstance(v, int) else None

    @property
    def device(self) -> str:
        return str(self.summary.get("device", "?"))

    @property
    def gpu(self) -> str | None:
        """The GPU's name from the newest `started` event (CUDA runs), else None."""
        for e in reversed(self.events):
            if e.get("event") == "started":
                return str(e["gpu"]) if e.get("gpu") else None
        return None

    @property
    def error(self) -> str | None:
        e = self.summary.get("error")
        return str(e) if e else None

    @property
    def last(self) -> dict:
        rows = self.rows
        return rows[-1] if rows else {}

    def steps_per_s(self, window: int = 10) -> float | None:
        rows = self.rows[-window:]
        if len(rows) < 2:
            return None
        ds = rows[-1]["step"] - rows[0]["step"]
        dt = rows[-1].get("wall_s", 0.0) - rows[0].get("wall_s", 0.0)
        return ds / dt if isinstance(dt, (int, float)) and dt > 0 else None
