"""Which runs one control signal reaches: a sweep's members share the process that takes their signals,
so a pause, continue or stop of one reaches the others too (no torch)."""

from __future__ import annotations

from pathlib import Path

from grok_tui.errors import GrokError
from grok_tui.store import control
from grok_tui.store.runs import list_runs, open_run


def controlled_with(root: Path, run_id: str) -> list[str]:
    """The other runs being trained now that a pause, continue or stop of `run_id` reaches too: those whose
    signals go to the same process (a sweep's members: its coordinating process, or one worker)."""
    me = open_run(root, run_id)
    mine = control.control_target(me.path, me.summary)
    if mine[0] is None:
        return []
    return sorted(r.id for r in list_runs(root)
                  if r.id != run_id and r.active and control.control_target(r.path, r.summary) == mine)


def controlled_with_text(root: Path, run_id: str, verb: str) -> str | None:
    """'the same process trains 2 other runs (a, b), which pause with it' (verb: pause, continue, stop),
    or None when the signal reaches this run alone or the runs cannot be read."""
    try:
        others = controlled_with(root, run_id)
    except (OSError, ValueError, GrokError):
        return None
    if not others:
        return None
    shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
    return f"the same process trains {len(others)} other run{'s' if len(others) > 1 else ''} ({shown}), " \
           f"which {verb} with it"
