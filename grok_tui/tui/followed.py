"""Runs the app follows: any run, through its run directory alone, and the runs it launches.

A run the app starts is `python -m grok_tui run --config FILE --name ID --log`, a process of its own
session whose output goes to a file (``<runs>/.start/ID.log`` until the run directory exists, then
``<run>/runner.log``), never to a pipe the app holds: closing the terminal, a dropped connection or a
``kill -9`` of the app leaves it training (a run lives on its own; only its files tie it to the app).
The app follows it like any other run, through one ``store.follow.RunFollower`` per run that every
view reads, and controls it through ``store.control``. No textual and no torch here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from grok_tui.errors import GrokError
from grok_tui.figures.series import Series, series
from grok_tui.spec.config import Config
from grok_tui.spec.tomlfile import load_toml
from grok_tui.store import control
from grok_tui.store.files import atomic_write_text
from grok_tui.store.follow import ACTIVE, Polled, RunFollower
from grok_tui.store.ids import START_DIR, new_run_id
from grok_tui.store.logs import error_line
from grok_tui.store.runs import claim_start_file


class Launch:
    """A detached runner process started by the app.

    Its id is claimed when it is made: ``<runs>/.start/<id>.toml`` is created with O_EXCL and the config
    written into it, never over another launch's file; a taken id (a run directory or another start file
    of that name) moves on to `-2`, `-3`, ... so `run_id` may differ from the id asked for, and two starts
    in the same second get two ids. `run_id` None generates one (store.ids.new_run_id). Where the runs
    directory cannot be written the claim is made again by start(), which raises the OSError."""

    def __init__(self, runs_dir: Path, run_id: str | None, cfg: Config, python: str = sys.executable):
        self.runs_dir = Path(runs_dir)
        self.cfg = cfg
        self.python = python
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.claimed = False
        self._set_id(run_id if run_id is not None else new_run_id(self.runs_dir, cfg))
        try:
            self.claim()
        except OSError:  # the runs directory cannot be written: start() says so
            pass

    def _set_id(self, run_id: str) -> None:
        self.run_id = run_id
        start = self.runs_dir / START_DIR
        self.config_file = start / f"{run_id}.toml"
        self.log_file = start / f"{run_id}.log"
        self.argv = [self.python, "-m", "grok_tui", "run", "--config", str(self.config_file), "--name", run_id,
                     "--runs-dir", str(self.runs_dir), "--log"]

    def claim(self) -> None:
        """Claim the start file (once): this launch's id and config (OSError: the runs directory cannot
        be written)."""
        if not self.claimed:
            self._set_id(claim_start_file(self.runs_dir, self.cfg, self.run_id))
            self.claimed = True

    def write_config(self) -> None:
        """The config into this launch's own start file (claimed first)."""
        if not self.claimed:
            self.claim()
            return
        atomic_write_text(self.config_file, self.cfg.to_toml())

    def start(self) -> None:
        """Claim the start file and start the runner (OSError: the runs directory cannot be written)."""
        self.claim()
        env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1")
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True, close_fds=True)

    def poll(self) -> int | None:
        if self.proc is not None and self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    def error_line(self) -> str | None:
        """The runner's one-sentence error, if it failed before its run directory existed."""
        return error_line(self.log_file)

    def cleanup(self) -> None:
        """Remove this launch's start files (only its own: nothing when it claimed none)."""
        if not self.claimed:
            return
        for p in (self.config_file, self.log_file):
            try:
                p.unlink()
            except OSError:
                pass


class LiveRun:
    """One run as every view shows it: what its directory says, plus the launch when the app started it.

    `update()` runs in the app's follower thread; the UI reads the attributes (whole values, replaced
    rather than mutated; the rows list grows in place) and the series of a metric through `series()`,
    which keeps the columns it extracted and extends them with the new rows only."""

    def __init__(self, path: Path, launch: Launch | None = None):
        self.follower = RunFollower(path)
        self.launch = launch
        self.state = "starting"
        self.error: str | None = None
        self.seen = False  # read once by the follower thread (its first events are history, not news)
        self._stopping = False
        self._cleaned = False  # the launch's start files are removed (they are the app's to remove once)
        # the run's config: the launch's, else read once from its config.toml by the follower thread
        self._config: Config | None = launch.cfg if launch is not None else None
        self._config_read = launch is not None
        self._columns: dict[str, tuple[int, int, Series]] = {}  # metric -> (epoch, rows used, series)

    @property
    def run_id(self) -> str:
        return self.follower.run_id

    @property
    def path(self) -> Path:
        return self.follower.path

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def rows(self) -> list[dict]:
        return self.follower.rows

    @property
    def progress(self) -> list[dict]:
        """The progress rows so far (store/progress.py; [] for a run without them)."""
        return self.follower.progress

    @property
    def milestones(self) -> dict[str, int]:
        return self.follower.milestones

    @property
    def last(self) -> dict:
        return self.follower.last

    @property
    def step(self) -> int:
        """The step to show: the last evaluation's while it trains; once paused or ended, the step it
        stopped at (its last event's or its summary's, after the last evaluation)."""
        s = self.last.get("step", 0)
        if self.state != "running":
            f = self.follower
            for v in (f.events[-1].get("step") if f.events else None, f.summary.get("steps_run")):
                if isinstance(v, int) and not isinstance(v, bool) and v > s:
                    s = v
        return s

    @property
    def compiling(self) -> bool:
        """Running a compiled step that has made no evaluation since it started: the first steps wait
        for torch.compile (half a minute on a CPU with a cold cache)."""
        if self.state != "running":
            return False
        started = next((e for e in reversed(self.follower.events) if e.get("event") == "started"), None)
        if started is None or not started.get("compile"):
            return False
        rows = self.rows
        return not rows or rows[-1].get("step", 0) <= started.get("step", 0)

    @property
    def device(self) -> str:
        return self.follower.device

    @property
    def gpu(self) -> str | None:
        return self.follower.gpu

    @property
    def config(self) -> Config | None:
        """The run's config (its config.toml, read once by the follower thread; the launch's for a run the
        app started); None until read, or when this version cannot read it."""
        return self._config

    @property
    def threads(self) -> int | None:
        """The run's `threads` setting as saved in its config.toml (0: one per core), None until known."""
        return self._config.train.threads if self._config is not None else None

    @property
    def total_steps(self) -> int | str:
        t = self.follower.total_steps
        if t is None and self.launch is not None:
            return self.launch.cfg.train.steps
        return t if t is not None else "?"

    @property
    def returncode(self) -> int | None:
        return self.launch.returncode if self.launch is not None else None

    @property
    def version(self) -> int:
        """Grows whenever the follower read something new (rows, events, state)."""
        return self.follower.version

    def steps_per_s(self) -> float | None:
        return self.follower.steps_per_s()

    def series(self, key: str) -> Series:
        """The (step, value) points of one metric over every row so far (figures.series.series of the
        rows), extended by the rows that came since the last call; started over when the rows were
        replaced (a resume dropped some). Call it from one thread (the UI's). The series is shared:
        copy it before changing it."""
        epoch, rows = self.follower.rows_and_epoch()
        got = self._columns.get(key)
        if got is None or got[0] != epoch or got[1] > len(rows):
            got = (epoch, 0, Series(key, [], []))
        _, used, s = got
        n = len(rows)
        if n > used:
            new = series(rows[used:n], key)
            s.x.extend(new.x)
            s.y.extend(new.y)
        self._columns[key] = (epoch, n, s)
        return s

    def update(self) -> Polled:
        """Read what is new (the follower's Polled, with state_changed as this view of the run says it)."""
        before = (self.state, self.error)
        rc = self.launch.poll() if self.launch is not None else None
        polled = self.follower.poll()
        f = self.follower
        if not self._config_read and f.summary:
            self._config_read = True
            try:
                self._config = load_toml(self.path / "config.toml")
            except (GrokError, OSError):  # no config, or one this version cannot read: not shown
                self._config = None
        if f.summary:
            state = f.status
            if state in ("running", "paused") and self._stopping:
                state = "stopping"
            if state in ("running", "paused", "interrupted") and rc is not None:
                state = "interrupted" if rc not in (0, 130) else state  # its process is gone
            self.state, self.error = state, f.error
            if self.launch is not None and not self._cleaned and (self.path / "runner.log").exists():
                self.launch.cleanup()
                self._cleaned = True
        elif rc is not None and not self._cleaned:  # the runner ended before its run directory existed
            self.state = "failed"
            self.error = (self.launch.error_line() if self.launch else None) or f"the runner exited with code {rc}."
            self.launch.cleanup()
            self._cleaned = True
        counted = polled.changed  # the follower's version already counts this poll
        polled.state_changed = (self.state, self.error) != before
        if polled.state_changed and not counted:
            self.follower.version += 1
        return polled

    # -- control: signals through the run directory (store/control.py) ---------------------------
    def pause(self) -> None:
        control.pause_run(self.path)

    def resume(self) -> None:
        control.resume_run(self.path)

    def stop(self) -> None:
        control.stop_run(self.path)
        self._stopping = True
        self.state = "stopping"


def try_control(run: LiveRun, what: str) -> str | None:
    """Pause, resume or stop `run`; the sentence saying why not, or None when the signal went."""
    try:
        getattr(run, what)()
    except GrokError as e:
        return str(e)
    return None
