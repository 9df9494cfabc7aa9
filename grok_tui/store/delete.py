"""Deleting a run directory, never one a process is writing (no torch).

`delete_run(path)` takes the run's lock first (store/control.py: the one a runner holds for as long
as it writes the directory), so a run that trains, or one resumed while the user confirmed, is refused
with one sentence, and no runner can start writing it while its files go.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from grok_tui.errors import ConfigError
from grok_tui.store import control


class DeleteError(ConfigError):
    """The run cannot be deleted (one sentence)."""


def delete_run(path: Path) -> None:
    """Remove the run directory `path` and everything in it (DeleteError when another process holds
    its lock, or when it cannot be removed)."""
    path = Path(path)
    if not path.is_dir():
        raise DeleteError(f"run '{path.name}' does not exist in {path.parent}.")
    lock = control.RunLock(path)
    try:
        lock.acquire(wait_s=0.2)
    except control.RunLocked:
        raise DeleteError(f"run '{path.name}' is being written by another process; stop it before deleting it.") \
            from None
    except OSError as e:
        raise DeleteError(f"cannot delete run '{path.name}': {e.strerror or e}.") from None
    try:
        shutil.rmtree(path)
    except OSError as e:
        raise DeleteError(f"cannot delete run '{path.name}': {e.strerror or e}.") from None
    finally:
        lock.release()
