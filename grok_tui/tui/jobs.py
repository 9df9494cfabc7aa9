"""Connectivity and landscape jobs the app runs as child processes, followed through files.

A job is `python -m grok_tui connect|landscape ... --progress-file F`, a process of its own session
(tensor math never runs in the interface's process, so an out-of-memory there cannot take it down). Its
stdout and stderr go to a log file beside F, never to a pipe the app holds. The app reads F's new lines
(`store.files.JsonlTail`): progress with done/total and an ETA, then the outcome (the result's path, or
the sentence saying why not). Cancelling sends SIGTERM; the child stops between two steps, writes
`{"status": "cancelled"}` and exits 130. No textual and no torch here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from grok_tui.store.files import JsonlTail
from grok_tui.store.logs import error_line

JOBS_DIR = ".jobs"  # <run>/connect/.jobs/<id>.progress.jsonl and <id>.log, removed when read


class ConnectJob:
    """One child job: `args` after `python -m grok_tui` (connect/landscape and its flags)."""

    def __init__(self, args: list[str], directory: Path, job_id: str, python: str | None = None,
                 label: str = ""):
        self.label = label or args[0]
        self.dir = Path(directory) / JOBS_DIR
        self.progress_file = self.dir / f"{job_id}.progress.jsonl"
        self.log_file = self.dir / f"{job_id}.log"
        self.argv = [python or sys.executable, "-m", "grok_tui", *args, "--progress-file", str(self.progress_file)]
        self.proc: subprocess.Popen | None = None
        self.outcome: dict | None = None  # the progress file's last line: {"status": ..., ...}
        self._tail = JsonlTail(self.progress_file)
        self._signalled = False

    def start(self) -> None:
        """Start the child (OSError: the results directory cannot be written, or no python)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200")
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True, close_fds=True)

    def read(self) -> list[dict]:
        """The progress lines written since the last call (the outcome is kept in `outcome`)."""
        out = []
        for row in self._tail.read():
            if "status" in row:
                self.outcome = row
            else:
                out.append(row)
        return out

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def cancel(self) -> None:
        """Ask the child to stop (SIGTERM, once); it ends with status cancelled."""
        if self.proc is None or self._signalled or self.proc.poll() is not None:
            return
        self._signalled = True
        try:
            self.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    @property
    def signalled(self) -> bool:
        """Whether `cancel` signalled the child."""
        return self._signalled

    def error(self) -> str:
        """Why the job did not finish: its outcome's sentence, else the child's last line of output."""
        if self.outcome and self.outcome.get("error"):
            return str(self.outcome["error"])
        return error_line(self.log_file) or f"the {self.label} process exited with code {self.poll()}."

    def cleanup(self) -> None:
        for p in (self.progress_file, self.log_file):
            try:
                p.unlink()
            except OSError:
                pass
        try:
            self.dir.rmdir()  # only when no other job is using it
        except OSError:
            pass


def eta_text(seconds: float | None) -> str:
    """'1:05 left', '2:03:10 left', or '' when not known yet."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return (f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}") + " left"


def new_job_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
