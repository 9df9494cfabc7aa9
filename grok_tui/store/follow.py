"""Following one run through its directory alone, whoever started it (no torch, no UI).

``RunFollower.poll()`` reads the rows and events appended since the last call (``JsonlTail``: a torn
last line waits for the next read; a file a resume rewrote is read again) and the run's state from
summary.json and its lock. Front ends call it from a thread and tell their UI what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grok_tui.store import control
from grok_tui.store.files import JsonlTail, read_json

ACTIVE = ("starting", "running", "paused", "stopping")
MILESTONES = ("memorized", "grokked")


@dataclass
class Polled:
    rows: int  # new rows
    state_changed: bool
    events: list[dict]


class RunFollower:
    """What is known of one run so far: rows by step, events, milestones, status, the last summary."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._metrics = JsonlTail(self.path / "metrics.jsonl")
        self._events = JsonlTail(self.path / "events.jsonl")
        self._by_step: dict[int, dict] = {}
        self.rows: list[dict] = []  # by step; replaced (never mutated) so a reader thread sees a whole list
        self.events: list[dict] = []
        self.milestones: dict[str, int] = {}
        self.summary: dict = {}
        self.status = "starting"

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def exists(self) -> bool:
        return (self.path / "summary.json").is_file()

    def poll(self) -> Polled:
        new = self._metrics.read()
        if self._metrics.restarted:  # a resume rewrote the file: rows past its checkpoint are gone
            self._by_step = {}
        n = 0
        for r in new:
            s = r.get("step")
            if isinstance(s, int) and not isinstance(s, bool):
                self._by_step[s] = r
                n += 1
        if n or self._metrics.restarted:
            self.rows = [self._by_step[s] for s in sorted(self._by_step)]
        evs = self._events.read()
        if self._events.restarted:
            self.events, self.milestones = [], {}
        if evs:
            self.events = self.events + evs
            for e in evs:
                if e.get("event") in MILESTONES and isinstance(e.get("step"), int):
                    self.milestones.setdefault(e["event"], e["step"])
        before = (self.status, self.summary.get("error"))
        summary = read_json(self.path / "summary.json")
        if summary:
            self.summary = summary
            status = summary.get("status", "unknown")
            if status in ("running", "paused") and not control.runner_alive(self.path, summary):
                status = "interrupted"
            self.status = status
            for name in MILESTONES:  # a resume drops events past its checkpoint; the summary has them
                v = summary.get(f"{name}_step")
                if isinstance(v, int):
                    self.milestones.setdefault(name, v)
        return Polled(n, (self.status, self.summary.get("error")) != before, evs)

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
