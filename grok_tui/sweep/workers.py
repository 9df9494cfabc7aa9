"""The local backend with worker processes: groups (ensemble chunks) trained side by side.

On a CPU one process cannot keep several cores busy with the small operations of these models:
every operation pays an OpenMP fork/join, and most are too small to split. N single-threaded worker
processes, each training its own chunk of the sweep, can. Each worker writes its members' run
directories itself (same machine, same contract as in-process training); its reports travel to
this process through a queue, so the progress display and ``--json`` lines are the same as with one
process. Stop and pause are shared events that every worker's training loop reads between steps.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from grok_tui.errors import GrokError, TrainingError, sentence
from grok_tui.host import usable_cpus
from grok_tui.report import HOOKS, Reporter
from grok_tui.sweep.group import run_group
from grok_tui.sweep.plan import Member, Plan, group_info
from grok_tui.train.loop import Control

_WORKER: dict[str, Any] = {}


class _QueueReporter(Reporter):
    """A worker's reports, carried to the parent's reporters as (hook, args) tuples (the transport of
    the one Reporter protocol across processes, not another protocol)."""

    def __init__(self, q) -> None:
        self.q = q

    def __getattribute__(self, hook: str):
        if hook in HOOKS:
            q = object.__getattribute__(self, "q")
            return lambda *args: q.put((hook, args))
        return object.__getattribute__(self, hook)


def _init(threads: int, q, stop, pause) -> None:
    import torch

    from grok_tui.store.control import proc_start_time
    from grok_tui.train import malloc

    malloc.keep_freed_memory()  # spawned, not started through the CLI's main
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which sets `stop`
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal never stops a run
    ppid = os.getppid()  # the sweep process: its signal handlers pause, resume and stop every worker
    signals_to = {"control_pid": ppid, "control_pid_start": proc_start_time(ppid)}
    _WORKER.update(q=q, control=Control(stop=stop, pause=pause, signals_to=signals_to))


def _run(index: int, sweep_id: str, runs_dir: str, payload: list[dict], group: dict) -> dict[str, dict]:
    control: Control = _WORKER["control"]
    if control.stop.is_set():
        return {}
    cb = _QueueReporter(_WORKER["q"])
    cb.on_group_start(index, group)
    members = [Member.from_payload(d) for d in payload]
    return run_group(members, Path(runs_dir), sweep_id, [cb], control, index)


def _drain(q, reporters) -> None:
    while True:
        try:
            hook, args = q.get_nowait()
        except queue_mod.Empty:
            return
        for rep in reporters:
            getattr(rep, hook)(*args)


def run_workers(p: Plan, runs_dir: Path, reporters: list[Reporter] | tuple = (), control: Control | None = None,
                on_result=None) -> dict[str, dict]:
    """Train the plan's groups in p.workers processes; returns member summaries by run id.
    on_result(results) is called after each group (the caller saves the sweep summary).

    A worker's exception stops the sweep at once: the other workers stop at their next step (their
    members end "stopped" with a final checkpoint), the groups not begun are cancelled, and the
    exception is raised with its reason (a GrokError as it is, anything else as a TrainingError that
    names it). A Ctrl-C stops the same way, and a second one while the workers stop changes nothing:
    the stop is already under way and every member's end gets written."""
    control = control or Control()
    ctx = mp.get_context("spawn")  # no fork of a process that holds torch's threads
    q, stop, pause = ctx.Queue(), ctx.Event(), ctx.Event()
    threads = max(1, usable_cpus() // p.workers)
    results: dict[str, dict] = {}
    with ProcessPoolExecutor(p.workers, mp_context=ctx, initializer=_init,
                             initargs=(threads, q, stop, pause)) as pool:
        futures: dict[Future, int] = {}
        for i, g in enumerate(p.groups):
            payload = [m.payload() for m in g]
            futures[pool.submit(_run, i, p.sweep_id, str(runs_dir), payload, group_info(g))] = i
        pending = set(futures)
        failure: BaseException | None = None
        while pending:
            try:
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                if control.stop.is_set():
                    stop.set()
                (pause.set if control.pause.is_set() else pause.clear)()
                if stop.is_set():
                    for f in pending:
                        f.cancel()
                _drain(q, reporters)
                for f in done:
                    if f.cancelled():
                        continue
                    try:
                        results.update(f.result())
                    except BrokenProcessPool:
                        stop.set()
                        failure = failure or TrainingError("a sweep worker process died (out of memory?); the "
                                                           "runs it wrote so far are kept.")
                        continue
                    except Exception as e:  # any worker's exception stops the sweep with its reason
                        stop.set()
                        failure = failure or (e if isinstance(e, GrokError) else TrainingError(
                            f"a sweep worker failed ({sentence(e)}); the sweep stopped, the runs written so far "
                            "are kept."))
                        continue
                    if on_result:
                        on_result(results)
            except KeyboardInterrupt:  # a Ctrl-C the signal handler did not take: stop, and wait for the ends
                control.stop.set()
                stop.set()
        _drain(q, reporters)
    if failure is not None:
        raise failure
    return results
