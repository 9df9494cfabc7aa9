"""A training run in a child process: `python -m grok_tui run --json ...`, followed through its stdout.

The app never trains in its own process (shared/DESIGN.md). This module only builds the command,
starts it, signals it (SIGUSR1 pause, SIGUSR2 resume, SIGTERM stop) and parses its JSON lines; the
app reads them in a thread worker. No textual and no torch here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grok_tui.spec.config import Config, field_specs

ACTIVE = ("starting", "running", "paused", "stopping")


def config_flags(cfg: Config) -> list[str]:
    """Every field of cfg as a `grok-tui run` flag (`--name=value`, `--flag/--no-flag`)."""
    flags = []
    flat = cfg.flat()
    for name, spec in field_specs().items():
        value = flat.get(name)
        flag = name.replace("_", "-")
        if value is None:
            continue
        if spec.type is bool:
            flags.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            flags.append(f"--{flag}={value!r}" if spec.type is float else f"--{flag}={value}")
    return flags


def leave_a_core(cfg: Config) -> Config:
    """The config with `threads` set to one fewer than the CPU cores when it says 0 (torch's default, one
    per core): the interface keeps a core, so its redraws never stall the child's threads, which all wait
    for the slowest at the end of every parallel operation. Saved with the run, so it is reproducible."""
    if cfg.train.threads:
        return cfg
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=max(1, cores - 1)))


class ChildRun:
    """One runner process and what it has reported so far (rows, events, state)."""

    def __init__(self, runs_dir: Path, run_id: str, cfg: Config, python: str = sys.executable):
        self.runs_dir = Path(runs_dir)
        self.run_id = run_id
        cfg = leave_a_core(cfg)
        self.cfg = cfg
        self.argv = [python, "-m", "grok_tui", "run", "--json", "--runs-dir", str(self.runs_dir),
                     "--name", run_id, *config_flags(cfg)]
        self.total_steps = cfg.train.steps
        self.state = "starting"  # starting running paused stopping finished stopped failed
        self.device = "?"
        self.rows: list[dict] = []  # appended by the follower thread, read by the UI timer
        self.events: list[dict] = []
        self.milestones: dict[str, int] = {}
        self.error: str | None = None
        self.returncode: int | None = None
        self.proc: subprocess.Popen | None = None
        self._stderr = None
        self.started = time.monotonic()

    @property
    def path(self) -> Path:
        return self.runs_dir / self.run_id

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def start(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    # -- following --------------------------------------------------------------------------
    def handle(self, msg: dict[str, Any]) -> str | None:
        """Apply one JSON line; returns its kind (start, eval, event, end) or None."""
        kind = msg.get("type")
        if kind == "start":
            self.device = str(msg.get("device", "?"))
            self.total_steps = int(msg.get("steps", self.total_steps))
            if self.state == "starting":
                self.state = "running"
        elif kind == "eval":
            row = {k: v for k, v in msg.items() if k != "type"}
            self.rows.append(row)
        elif kind == "event":
            ev = {k: v for k, v in msg.items() if k != "type"}
            self.events.append(ev)
            name = ev.get("event")
            if name in ("memorized", "grokked") and isinstance(ev.get("step"), int):
                self.milestones.setdefault(name, ev["step"])
            elif name == "paused":
                self.state = "paused"
            elif name == "resumed" and self.state == "paused":
                self.state = "running"
        return kind if isinstance(kind, str) else None

    def follow(self, on_message: Callable[[str, dict], None]) -> None:
        """Read the child's stdout to its end (blocking; run in a thread), then record how it ended."""
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if isinstance(msg, dict):
                kind = self.handle(msg)
                if kind is not None:
                    on_message(kind, msg)
        self.returncode = self.proc.wait()
        self.error = self._error_line()
        if self.returncode == 0:
            self.state = "finished"
        elif self.returncode == 130 or (self.state == "stopping" and self.returncode < 0):
            self.state = "stopped"
        else:
            self.state = "failed"
            if self.error is None:
                self.error = f"the training process exited with code {self.returncode}."

    def _error_line(self) -> str | None:
        if self._stderr is None:
            return None
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace")
            self._stderr.close()
        except (OSError, ValueError):
            return None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for ln in reversed(lines):
            if ln.startswith("error:"):
                return ln[len("error:"):].strip()
        return lines[-1] if lines and self.returncode not in (0, 130) else None

    # -- control ----------------------------------------------------------------------------
    def _signal(self, sig: int) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def pause(self) -> bool:
        # Only once the runner has reported "start": its handlers are installed by then.
        return self.state == "running" and self._signal(signal.SIGUSR1)

    def resume(self) -> bool:
        return self.state == "paused" and self._signal(signal.SIGUSR2)

    def stop(self) -> bool:
        if self.state not in ("starting", "running", "paused"):
            return False
        was = self.state
        self.state = "stopping"
        if was == "paused":
            self._signal(signal.SIGUSR2)
        return self._signal(signal.SIGTERM)

    def wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    # -- what the status line shows -----------------------------------------------------------
    def steps_per_s(self, window: int = 10) -> float | None:
        rows = self.rows[-window:]
        if len(rows) < 2:
            return None
        ds = rows[-1]["step"] - rows[0]["step"]
        dt = rows[-1].get("wall_s", 0.0) - rows[0].get("wall_s", 0.0)
        return ds / dt if dt > 0 else None

    @property
    def last(self) -> dict:
        return self.rows[-1] if self.rows else {}
