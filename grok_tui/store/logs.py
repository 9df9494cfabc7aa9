"""What a child process's log says about how it ended (no torch).

A runner or a job prints its one-sentence error as ``error: ...`` (cli/common.py); the app reads it
from the log file the child wrote (a launched run's start log, a connectivity job's log).
"""

from __future__ import annotations

from pathlib import Path

ERROR_PREFIX = "error:"


def error_line(path: Path) -> str | None:
    """The sentence of the log's last ``error:`` line, else its last non-blank line; None when the file
    is missing, unreadable or blank."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(ERROR_PREFIX):
            return ln[len(ERROR_PREFIX):].strip()
    return lines[-1] if lines else None
