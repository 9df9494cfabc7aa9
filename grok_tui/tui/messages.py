"""Messages the run follower and the dialogs post to the app (small dataclasses; what a handler needs,
never the data itself).

Metric rows are never carried: they live in the followed run (``LiveRun.rows``, one per run for every
view) and a view reads them when `RunUpdated` says that its run changed. The follower posts at most one
`RunUpdated` per run until the app has handled it (what comes meanwhile is added to the next one), so a
busy interface is never flooded.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class RunUpdated(Message, bubble=False):
    """A followed run changed: `rows` new metric rows (all of them again when `restarted`: a resume
    dropped the rows past its checkpoint), `progress` new progress rows (progress.jsonl, likewise), and
    whether its state (starting running paused stopping finished stopped failed interrupted) or error
    changed. The app hands it on to the screen shown."""

    run_id: str
    rows: int
    state_changed: bool
    restarted: bool = False
    progress: int = 0


@dataclass
class RunEvent(Message):
    """A milestone, pause, resume or end event from a followed run's events.jsonl."""

    run_id: str
    event: dict


@dataclass
class RunEnded(Message):
    """A followed run left the active states. status: finished, stopped, failed or interrupted."""

    run_id: str
    status: str
    error: str | None


@dataclass
class ExportDone(Message):
    """Files written by an export, and the problem with the rest, if any."""

    paths: list[str]
    error: str | None
