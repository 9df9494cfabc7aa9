"""The local backend with worker processes: groups (ensemble chunks) trained side by side.

On a CPU one process cannot keep several cores busy with the small operations of these models:
every operation pays an OpenMP fork/join, and most are too small to split. N single-threaded worker
processes, each training its own chunk of the sweep, can. Each worker writes its members' run
directories itself (same machine, same contract as in-process training); its reports travel to
this process through its own pipe, so the progress display and ``--json`` lines are the same as with
one process. Stop and pause are shared flags (no lock) that every worker's training loop reads between steps.

Each worker is a process of its own (multiprocessing.Process, not a pool) with a pipe for its tasks
and one for what it says back, so one dying costs only its own members:

- a worker killed (SIGKILL, the kernel's OOM killer) ends the members it was training as failed, with
  "its worker process died (killed by signal 9)", written into their run directories by this process
  under their locks; the other workers go on and take the groups not begun; the sweep summary records
  every member's status;
- a worker whose coordinator (this process) died stops its members as a stop does (final checkpoint,
  status stopped, reason "the sweep's coordinating process died") and exits: the kernel sends it
  SIGTERM (prctl PR_SET_PDEATHSIG, Linux), a thread watching its parent pid does elsewhere, and nothing
  it sends can block it (a pipe without its reader fails at once).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from grok_tui.errors import GrokError, TrainingError, sentence
from grok_tui.host import usable_cpus
from grok_tui.report import HOOKS, Reporter
from grok_tui.sweep.plan import Member, Plan, group_info
from grok_tui.train.loop import Control

COORDINATOR_DIED = "the sweep's coordinating process died"
_WORKER: dict[str, Any] = {}


class _Flag:
    """A flag shared by the coordinator and its workers without a lock (one byte of shared memory): a
    coordinator killed while it holds a lock must never leave its workers waiting on it."""

    def __init__(self, ctx) -> None:
        self.value = ctx.RawValue("b", 0)

    def is_set(self) -> bool:
        return bool(self.value.value)

    def set(self) -> None:
        self.value.value = 1

    def clear(self) -> None:
        self.value.value = 0


# --- in a worker process ---------------------------------------------------------------------------

class _EitherEvent:
    """The stop a worker's loop reads: the sweep's shared stop, or this worker's own (its coordinator died)."""

    def __init__(self, shared) -> None:
        self.shared, self.own = shared, threading.Event()

    def is_set(self) -> bool:
        return self.own.is_set() or self.shared.is_set()

    def set(self) -> None:
        self.own.set()


class _PipeReporter(Reporter):
    """A worker's reports, carried to the parent's reporters as ("report", hook, args) messages (the
    transport of the one Reporter protocol across processes, not another protocol). Once the parent is
    gone they are dropped."""

    def __init__(self, send) -> None:
        self.send = send

    def __getattribute__(self, hook: str):
        if hook in HOOKS:
            send = object.__getattribute__(self, "send")
            return lambda *args: send(("report", hook, args))
        return object.__getattribute__(self, hook)


def _orphaned(control: Control) -> None:
    """This worker's coordinator is gone: stop its members with that reason, send nothing more."""
    if not control.stop.own.is_set():
        control.stop_error = COORDINATOR_DIED
        control.stop.set()
    _WORKER["orphan"] = True


def _watch_parent(ppid: int, control: Control) -> None:
    """Stop this worker's members when its coordinator dies: PR_SET_PDEATHSIG (Linux) sends SIGTERM at
    once, and a daemon thread compares os.getppid() every half second (where prctl does not exist, or the
    coordinator died before it). The SIGTERM can come while the coordinator's last threads are still
    going (the kernel sends it when the thread that started this worker ends), so the thread decides:
    a parent pid that changes within two seconds is the coordinator's death; else someone asked this
    worker to stop, and its members stop without that reason."""
    term = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: term.set())
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == ppid:
            if term.wait(0.5):
                deadline = time.monotonic() + 2.0
                while os.getppid() == ppid and time.monotonic() < deadline:
                    time.sleep(0.02)
                if os.getppid() == ppid:
                    control.stop.set()
                    return
        _orphaned(control)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_main(threads: int, tasks: Connection, out: Connection, stop, pause, ppid: int) -> None:
    import torch

    from grok_tui.store.control import proc_start_time
    from grok_tui.sweep.group import run_group
    from grok_tui.train import malloc

    malloc.keep_freed_memory()  # spawned, not started through the CLI's main
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which sets `stop`
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal never stops a run
    # the sweep process: its signal handlers pause, resume and stop every worker
    signals_to = {"control_pid": ppid, "control_pid_start": proc_start_time(ppid)}
    control = Control(stop=_EitherEvent(stop), pause=pause, signals_to=signals_to)  # type: ignore[arg-type]
    _WORKER.update(control=control, orphan=False)
    _watch_parent(ppid, control)

    def send(msg: tuple) -> None:
        if _WORKER["orphan"]:
            return
        try:
            out.send(msg)
        except (OSError, EOFError):  # the coordinator is gone: its pipe has no reader
            _orphaned(control)

    reporter = _PipeReporter(send)
    while not _WORKER["orphan"]:
        try:
            if not tasks.poll(0.5):
                continue
            task = tasks.recv()
        except (OSError, EOFError):  # the coordinator is gone
            _orphaned(control)
            break
        if task is None:
            break
        index, sweep_id, runs_dir, payload, group = task
        if control.stop.is_set():
            send(("done", index, {}))
            continue
        try:
            reporter.on_group_start(index, group)
            members = [Member.from_payload(d) for d in payload]
            send(("done", index, run_group(members, Path(runs_dir), sweep_id, [reporter], control, index)))
        except Exception as e:  # noqa: BLE001 - any exception stops the sweep with its reason
            send(("error", index, e if isinstance(e, GrokError) else TrainingError(
                f"a sweep worker failed ({sentence(e)}); the sweep stopped, the runs written so far are kept.")))


# --- in the coordinator ------------------------------------------------------------------------------

@dataclass
class _Worker:
    proc: Any
    tasks: Connection  # to the worker
    out: Connection | None  # from the worker; None once it is closed
    group: int | None = None  # the group it trains now


def _death(code: int | None) -> str:
    if code is None:
        return "its worker process died"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"its worker process died (killed by signal {-code}, {name})"
    return f"its worker process died (exit code {code})"


def _abandon(group: list[Member], runs_dir: Path, reason: str, reporters, results: dict[str, dict]) -> None:
    """The members of a group whose worker died: each one still running ends failed with `reason` (its
    run directory says so); one that had ended keeps its end."""
    from grok_tui.store.runs import end_abandoned

    for m in group:
        if m.run_id in results:
            continue
        try:
            s = end_abandoned(Path(runs_dir) / m.run_id, reason)
        except (OSError, GrokError):
            s = None
        if s is None or s.get("status") in (None, "running", "paused"):
            s = {**(s or {}), "status": "failed", "error": reason, "steps_run": (s or {}).get("steps_run", 0)}
        results[m.run_id] = s
        if s.get("status") == "failed" and s.get("error") == reason:
            for rep in reporters:
                rep.on_event(m.run_id, {"event": "failed", "step": s.get("steps_run", 0), "error": reason})
        for rep in reporters:
            rep.on_member_end(m.run_id, s)


def run_workers(p: Plan, runs_dir: Path, reporters: list[Reporter] | tuple = (), control: Control | None = None,
                on_result=None) -> dict[str, dict]:
    """Train the plan's groups in p.workers processes; returns member summaries by run id.
    on_result(results) is called after each group (the caller saves the sweep summary).

    A worker's exception stops the sweep at once: the other workers stop at their next step (their
    members end "stopped" with a final checkpoint), the groups not begun are not started, and the
    exception is raised with its reason (a GrokError as it is, anything else as a TrainingError that
    names it). A worker that dies costs only the members it was training (failed, with the reason). A
    Ctrl-C stops the same way, and a second one while the workers stop changes nothing: the stop is
    already under way and every member's end gets written."""
    control = control or Control()
    ctx = mp.get_context("spawn")  # no fork of a process that holds torch's threads
    stop, pause = _Flag(ctx), _Flag(ctx)
    threads = max(1, usable_cpus() // p.workers)
    results: dict[str, dict] = {}
    workers: list[_Worker] = []
    todo = deque(range(len(p.groups)))
    failure: BaseException | None = None
    try:
        for _ in range(min(p.workers, len(p.groups))):
            task_r, task_w = ctx.Pipe(duplex=False)
            out_r, out_w = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker_main, args=(threads, task_r, out_w, stop, pause, os.getpid()),
                               daemon=True, name="grok-tui sweep worker")
            proc.start()
            task_r.close()  # this process keeps only its own ends: a worker's death is an EOF here
            out_w.close()
            workers.append(_Worker(proc, task_w, out_r))

        def end_of(w: _Worker) -> None:
            """A worker whose pipe closed: it died (or exited); its group's members end with the reason."""
            nonlocal failure
            if w.out is not None:
                w.out.close()
                w.out = None
            w.proc.join(5)
            if w.group is not None:
                _abandon(p.groups[w.group], runs_dir, _death(w.proc.exitcode), reporters, results)
                w.group = None
                if on_result:
                    on_result(results)

        while True:
            try:
                if control.stop.is_set():
                    stop.set()
                (pause.set if control.pause.is_set() else pause.clear)()
                for w in workers:  # a group to every idle live worker
                    if w.out is not None and w.group is None and todo and not stop.is_set():
                        i = todo.popleft()
                        try:
                            w.tasks.send((i, p.sweep_id, str(runs_dir), [m.payload() for m in p.groups[i]],
                                          group_info(p.groups[i])))
                            w.group = i
                        except OSError:  # it died: the group goes to another
                            todo.appendleft(i)
                            end_of(w)
                live = [w for w in workers if w.out is not None]
                if not any(w.group is not None for w in live) and (not todo or stop.is_set() or not live):
                    break
                ready = wait([w.out for w in live], timeout=0.1)
                for w in live:
                    if w.out not in ready:
                        continue
                    try:
                        while w.out is not None and w.out.poll():
                            msg = w.out.recv()
                            if msg[0] == "report":
                                for rep in reporters:
                                    getattr(rep, msg[1])(*msg[2])
                                continue
                            w.group = None
                            if msg[0] == "error":  # any worker's exception stops the sweep with its reason
                                stop.set()
                                failure = failure or msg[2]
                                continue
                            results.update(msg[2])
                            if on_result:
                                on_result(results)
                    except (EOFError, OSError):
                        end_of(w)
            except KeyboardInterrupt:  # a Ctrl-C the signal handler did not take: stop, and wait for the ends
                control.stop.set()
                stop.set()
        if todo and not stop.is_set():  # every worker died: nobody is left to train these
            reason = "no sweep worker process was left to train it (they died)"
            for i in todo:
                _abandon(p.groups[i], runs_dir, reason, reporters, results)
    except BaseException:  # a bug here: the workers stop their members rather than train on unheard
        stop.set()
        raise
    finally:
        for w in workers:
            if w.out is not None:  # nothing more is read: a worker still sending fails at once, never blocks
                w.out.close()
                w.out = None
            try:
                w.tasks.send(None)
            except OSError:
                pass
        for w in workers:
            w.proc.join(60)
            if w.proc.is_alive():  # pragma: no cover - a worker that does not end on its own
                w.proc.kill()
                w.proc.join()
            w.tasks.close()
    if failure is not None:
        raise failure
    return results
