"""Messages that the child-run follower and the dialogs post to the app (small dataclasses).

Metric rows are never carried: they live in the run (``ChildRun.rows`` / the run store) and the
charts read them on their own timer.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class ChildEvent(Message):
    """A milestone, checkpoint, pause, resume or end event from the runner's event stream."""

    run_id: str
    event: dict


@dataclass
class ChildEnded(Message):
    """The runner exited. status: finished, stopped or failed; error: its one-sentence error."""

    run_id: str
    status: str
    returncode: int
    error: str | None


@dataclass
class ExportDone(Message):
    """Files written by an export, and the problem with the rest, if any."""

    paths: list[str]
    error: str | None
