"""Messages the run follower and the dialogs post to the app (small dataclasses, shared/STYLE.md §7).

Metric rows are never carried: they live in the followed run (``LiveRun.rows``) and the charts read
them on their own timer; `RowsAppended` only says how many came. Only the state is coalesced.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class RowsAppended(Message):
    """`count` new metric rows of a followed run."""

    run_id: str
    count: int


@dataclass
class RunStateChanged(Message):
    """A followed run's state (starting running paused stopping finished stopped failed interrupted)."""

    run_id: str
    state: str
    error: str | None

    def can_replace(self, message: Message) -> bool:  # the latest state of the same run wins
        return isinstance(message, RunStateChanged) and message.run_id == self.run_id


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
class ActiveRuns(Message):
    """The runs training now under the runs directory (a scan off the UI thread), newest first."""

    run_ids: list[str]


@dataclass
class ExportDone(Message):
    """Files written by an export, and the problem with the rest, if any."""

    paths: list[str]
    error: str | None
