"""`grok-tui pause|continue|stop RUN`: control a training run from any terminal, through its run directory.

The signals go to the pid the runner records, only while it holds the run's lock and is the process
that recorded it (store/control.py). No torch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from grok_tui.cli.common import RunsDir, console, user_errors
from grok_tui.store import control, control_groups
from grok_tui.store import runs as store

RunArg = Annotated[str, typer.Argument(metavar="RUN", help="run id under the runs directory")]


def _with_others(runs_dir: Path, run_id: str, verb: str) -> str:
    """'' or '; the same process trains N other runs (a, b, ...), which VERB with it'."""
    text = control_groups.controlled_with_text(runs_dir, run_id, verb)
    return f"; {text}" if text else ""


def pause_cmd(run_id: RunArg, runs_dir: RunsDir = Path("runs")) -> None:
    """Pause a training run (it keeps its place; `grok-tui continue RUN` goes on)."""
    with user_errors():
        info = store.open_run(runs_dir, run_id)
        pid = control.pause_run(info.path)
    console.print(escape(f"asked {run_id} (pid {pid}) to pause{_with_others(runs_dir, run_id, 'pause')}"))


def continue_cmd(run_id: RunArg, runs_dir: RunsDir = Path("runs")) -> None:
    """Continue a paused run."""
    with user_errors():
        info = store.open_run(runs_dir, run_id)
        pid = control.resume_run(info.path)
    console.print(escape(f"asked {run_id} (pid {pid}) to continue{_with_others(runs_dir, run_id, 'continue')}"))


def stop_cmd(run_id: RunArg, runs_dir: RunsDir = Path("runs"),
             wait: Annotated[float, typer.Option("--wait", help="seconds to wait for the runner to end "
                                                            "(0: do not wait)")] = 120.0) -> None:
    """Stop a run with a final checkpoint (resumable with `grok-tui run --resume RUN`)."""
    with user_errors():
        info = store.open_run(runs_dir, run_id)
        others = _with_others(runs_dir, run_id, "stop")
        pid = control.stop_run(info.path)
    console.print(escape(f"asked {run_id} (pid {pid}) to stop{others}"))
    deadline = time.monotonic() + wait
    while wait and control.runner_alive(info.path):
        if time.monotonic() > deadline:
            console.print(escape(f"{run_id} is still writing its final checkpoint after {wait:g} s"))
            raise typer.Exit(1)
        time.sleep(0.2)
    if wait:
        info = store.open_run(runs_dir, run_id)
        console.print(escape(f"{run_id} {info.status} at step {info.summary.get('steps_run', '?')}"))
