"""Who writes a run directory, and control of its runner through it (no torch).

One writer per run: the training process holds an exclusive ``flock`` on ``<run>/lock`` for as long as
it writes the directory (the kernel drops it when the process dies, however it dies). Once its signal
handlers are installed, the runner records in the lock file who it is: its pid and that process's start
time (``/proc/<pid>/stat`` field 22, Linux), and for a sweep's member the process its control signals go
to. Readers ask ``runner_alive`` (is the lock held?) and ``owner`` (who holds it?), and control the runner
with signals sent through a pidfd opened on the recorded pid and checked against the recorded start
time, so a pid the kernel has given to another process is never signalled nor taken as running. A run
whose lock is held but whose owner is not recorded yet is starting: it is not signalled (its handlers
may not be installed). Runs written before lock files existed fall back on summary.json's pid, and only
with a recorded start time.

Signals (the runner's protocol): SIGUSR1 pause, SIGUSR2 resume, SIGTERM stop with a final checkpoint.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

from grok_tui.errors import ConfigError
from grok_tui.store.files import read_json

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, the pid alone
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "lock"
SIGNALS = {"pause": getattr(signal, "SIGUSR1", None), "resume": getattr(signal, "SIGUSR2", None),
           "stop": signal.SIGTERM}


class RunLocked(ConfigError):
    """Another process writes this run directory."""


def proc_start_time(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot (/proc/<pid>/stat field 22); None when
    there is no such process or no /proc."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_bytes()
    except (OSError, ValueError):
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def identity() -> dict:
    """What a runner records about itself in summary.json: pid and start time (None without /proc)."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": proc_start_time(pid)}


def owner(run_path: Path) -> dict:
    """Who holds a run's lock, as its runner recorded it there ({} when nobody recorded: no lock file, a
    free lock of an ended run that recorded nothing, or a runner still starting)."""
    return read_json(Path(run_path) / LOCK_NAME)


class RunLock:
    """The exclusive lock of one run directory, held from acquire() to release() (or the process's end)."""

    def __init__(self, run_path: Path):
        self.path = Path(run_path) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, wait_s: float = 1.0) -> None:
        """Take the lock or raise RunLocked with one sentence. Retries for wait_s: a reader's probe
        (runner_alive) holds a shared lock for a few microseconds."""
        if fcntl is None:  # pragma: no cover
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)  # less the umask
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    pid = read_json(self.path.parent / "summary.json").get("pid")
                    raise RunLocked(f"run '{self.path.parent.name}' is being written by another process"
                                    f"{f' (pid {pid})' if isinstance(pid, int) else ''}; stop it first.") from None
                time.sleep(0.02)
        self._fd = fd
        os.ftruncate(fd, 0)  # the last holder's record goes: this one is starting until it records itself
        holder = self._live_writer()
        if holder is not None:  # its lock file was removed, so this lock is a new file: it must not count
            self.release()
            raise RunLocked(f"run '{self.path.parent.name}' is being written by another process (pid {holder}), "
                            "whose lock file was removed; stop it first.")

    def _live_writer(self) -> int | None:
        """The pid of another process that says it writes this run (summary.json, status running or
        paused) and is alive with its recorded start time; None when there is none."""
        rec = read_json(self.path.parent / "summary.json")
        pid = rec.get("pid")
        if rec.get("status") not in ("running", "paused") or pid == os.getpid():
            return None
        return pid if _same_process(pid, rec.get("pid_start")) else None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def record(self, **fields: object) -> None:
        """Write who holds the lock into it: this process's identity and `fields` (e.g. a sweep's control
        pid). Call it once the process answers the control signals (its handlers installed)."""
        if self._fd is None:
            return
        data = json.dumps({**identity(), **fields}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)  # closing the descriptor drops the flock
            finally:
                self._fd = None


def lock_held(run_path: Path) -> bool | None:
    """True when a process holds the run's lock, False when none does, None when the run has no lock
    file (written before locks existed, or on a system without flock)."""
    path = Path(run_path) / LOCK_NAME
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the probe's shared lock at once
    return False


def _same_process(pid: object, start: object) -> bool | None:
    """Is `pid` alive and the process that recorded `start`? None when it cannot be told (no /proc)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False
    now = proc_start_time(pid)
    if now is None:
        if Path("/proc/self/stat").exists():
            return False  # /proc works, and this pid has no entry: gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return None
    if isinstance(start, int):
        return now == start
    return None  # recorded by a runner without a start time: alive, identity unknown


def runner_alive(run_path: Path, summary: dict | None = None) -> bool:
    """Is a process training this run now? The lock decides when there is one; else the recorded pid,
    checked against its recorded start time."""
    held = lock_held(run_path)
    if held is not None:
        return held
    summary = read_json(Path(run_path) / "summary.json") if summary is None else summary
    same = _same_process(summary.get("pid"), summary.get("pid_start"))
    return bool(same) if same is not None else True


def control_target(run_path: Path, summary: dict | None = None) -> tuple[object, object]:
    """(pid, start time) of the process a run's control signals go to: its lock's owner (a sweep member's
    coordinator where it records one), else, for a run without a lock file, its summary's."""
    rec = owner(run_path)
    if not rec and lock_held(run_path) is None:  # a run from before lock files
        rec = read_json(Path(run_path) / "summary.json") if summary is None else summary
    return rec.get("control_pid", rec.get("pid")), rec.get("control_pid_start", rec.get("pid_start"))


def _send(pid: int, sig: int, start: object) -> None:
    """Signal `pid` through a pidfd (Linux >= 5.3) after checking, with the fd held, that it is still the
    process that started at `start`; os.kill where pidfds do not exist. OSErrors as os.kill raises them."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError) as e:
        if isinstance(e, ProcessLookupError):
            raise
        os.kill(pid, sig)
        return
    try:
        if isinstance(start, int) and proc_start_time(pid) != start:
            raise ProcessLookupError(errno.ESRCH, "the pid belongs to another process now")
        signal.pidfd_send_signal(fd, sig)
    finally:
        os.close(fd)


def signal_run(run_path: Path, what: str) -> int:
    """Send the runner of a run `what` (pause, resume, stop); returns the pid signalled.

    Raises ConfigError with one sentence when the run is not training, is still starting, or its
    recorded pid is not the process that holds it."""
    run_path = Path(run_path)
    sig = SIGNALS.get(what)
    if sig is None:
        raise ConfigError(f"cannot {what} a run on this system.")
    summary = read_json(run_path / "summary.json")
    name = run_path.name
    status = summary.get("status", "unknown")
    if not runner_alive(run_path, summary):
        if status in ("running", "paused"):
            raise ConfigError(f"run '{name}' is not training: its process is gone (it was interrupted; "
                              f"grok-tui run --resume {name} continues it from its last checkpoint).")
        raise ConfigError(f"run '{name}' is not training (status {status}).")
    pid, start = control_target(run_path, summary)
    if pid is None:
        raise ConfigError(f"run '{name}' is starting (its runner has not said who it is yet); try again in a moment.")
    same = _same_process(pid, start)
    if same is False:
        raise ConfigError(f"run '{name}' is held by a process that is not the one it records (pid {pid}); "
                          "it was not signalled.")
    if same is None and lock_held(run_path) is None:
        raise ConfigError(f"run '{name}' has no lock file and no recorded start time, so pid {pid} may belong "
                          "to another process now; it was not signalled.")
    try:
        _send(pid, sig, start)
    except ProcessLookupError:
        raise ConfigError(f"run '{name}' has just ended.") from None
    except PermissionError:
        raise ConfigError(f"not allowed to signal the runner of '{name}' (pid {pid}).") from None
    return pid


def pause_run(run_path: Path) -> int:
    return signal_run(run_path, "pause")


def resume_run(run_path: Path) -> int:
    return signal_run(run_path, "resume")


def stop_run(run_path: Path) -> int:
    """Stop with a final checkpoint (a paused runner stops too: its pause waits on the stop as well)."""
    return signal_run(run_path, "stop")
