"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from grok_tui.spec.config import Config
from grok_tui.store import runs
from grok_tui.train import trainer


def train_run(cfg: Config, path: Path, *, resume: bool = False, **kw: Any) -> dict:
    """Train `cfg` in this process into the run directory `path` (a new run, or with resume=True the run
    there), as `grok-tui run` does; the writer is closed however training ends. `kw` goes to
    trainer.run_training (reporters, control, resume_from, ...); its summary is returned."""
    writer = runs.RunWriter(path, cfg, resume=resume)
    try:
        return trainer.run_training(cfg, writer, **kw)
    finally:
        writer.close()


def reap(proc: subprocess.Popen, group: bool = False) -> None:
    """End a child a test started, whatever happened to the test: SIGKILL if it still runs (with group=True
    its whole process group, for a child started with start_new_session=True and its own children), then
    wait for it. For a `finally:` or a fixture's teardown."""
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group outlives a leader that has exited
    elif proc.poll() is None:
        proc.kill()
    proc.wait()
