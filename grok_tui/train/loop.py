"""The one training loop: a single run and a K-member ensemble alike.

``run_loop`` drives a ``Stepper`` (``trainer.Trainer`` for one run, ``ensemble.Ensemble`` for K runs
trained as one) and writes each member's run directory through its ``Recorder``. Everything a run
does besides stepping lives here once: pause and stop, the evaluation and checkpoint cadence,
milestones, divergence, summaries, the final checkpoint, out-of-memory and full-disk handling.

Policy for a non-finite loss: that member fails with its sentence and its run directory says so;
the other members go on; so does a member whose run directory cannot be written. Front ends follow
the loop through ``report.Reporter`` (member-aware hooks) and through the run directories; the loop
reads plain Python flags between steps, never the device.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from grok_tui.errors import is_out_of_memory
from grok_tui.report import Reporter
from grok_tui.spec.config import MILESTONES, Config, TrainConfig
from grok_tui.store import progress as progress_store
from grok_tui.store.runs import RunRemoved, RunWriter
from grok_tui.train import checkpoint
from grok_tui.train.device import gpu_status


@dataclass
class Control:
    """Stop and pause requests from a signal handler, a thread or another process's events."""

    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = "stopped"
    stop_error: str | None = None  # why, where the members' ends should say (e.g. a sweep's coordinator died)
    # Where pause/continue/stop signals for these runs go when not to this process: a sweep worker's
    # are its coordinator's ({"control_pid": ..., "control_pid_start": ...}), which forwards them.
    signals_to: dict = field(default_factory=dict)


class Fanout:
    """The reporters of one loop. A reporter whose output fails (a closed pipe, a terminal gone) is
    dropped: it must never pass for a run-directory failure, nor end the run."""

    def __init__(self, reporters: list[Reporter] | tuple = ()):
        self.reporters = list(reporters)

    def call(self, hook: str, *args: Any) -> str | None:
        """Call `hook` of every reporter; a sentence when one was dropped (for the run's events)."""
        dropped = None
        for rep in list(self.reporters):
            try:
                getattr(rep, hook)(*args)
            except OSError as e:
                self.reporters.remove(rep)
                dropped = f"console output stopped ({e.strerror or e}); training goes on."
        return dropped


class Stepper(Protocol):
    """What the loop drives: K members stepped together (K = 1 for a single run)."""

    K: int
    step: int  # optimizer steps taken
    device: torch.device
    warnings: list[str]  # sentences for the members' event streams (e.g. a torch.compile fallback)

    def train_step(self, want_grads: bool = False) -> dict[str, torch.Tensor]: ...
    def eval_rows(self, grads: dict[str, torch.Tensor], wall: float) -> list[dict[str, Any]]: ...
    def save(self, k: int, directory: Path, row: dict, tags: list[str], extra: dict[str, Any]) -> Path: ...


def diverged_error(loss: float, step: int) -> str:
    return (f"training diverged: the train loss became {loss} by step {step} (try a lower lr); "
            "checkpoints up to then are kept.")


class Recorder:
    """One member's run directory (or none, for a bench run) and its bookkeeping."""

    def __init__(self, writer: RunWriter | None, cfg: Config, info: dict | None = None,
                 milestones: dict[str, int] | None = None, best_val_acc: float = 0.0):
        self.writer, self.cfg = writer, cfg
        self.fan = Fanout()  # the loop's reporters (run_loop sets them)
        self.run_id = writer.run_id if writer is not None else ""
        self.info = dict(info or {})
        self.milestones = dict(milestones or {})
        self.best_val_acc = best_val_acc
        self.status, self.error = "running", None
        self.step = 0
        self.last: dict[str, Any] = {}

    @property
    def active(self) -> bool:
        return self.status == "running"

    def call(self, hook: str, *args: Any) -> None:
        """Call a member hook of every reporter (Fanout: one whose output fails is dropped, with a warning)."""
        dropped = self.fan.call(hook, self.run_id, *args)
        if dropped and self.writer is not None:
            self.writer.event({"event": "warning", "step": self.step, "time": time.time(), "message": dropped})

    def emit(self, event: dict) -> None:
        event = {"event": event.pop("event"), "step": self.step, **event, "time": time.time()}
        if self.writer is not None:
            self.writer.event(event)
        self.call("on_event", event)

    def summary(self, force: bool = True, write: bool = True, **extra: Any) -> dict:
        s = {"status": self.status, "steps_run": self.step, "total_steps": self.cfg.train.steps,
             "memorized_step": self.milestones.get("memorized"), "grokked_step": self.milestones.get("grokked"),
             "best_val_acc": self.best_val_acc, **extra}
        if self.writer is not None and write:
            self.writer.write_summary(force=force, **s)
        return s

    def record(self, row: dict) -> list[str]:
        """Append an evaluation row; returns the milestones it reached first. A row's progress measures
        (the stepper's "progress", store/progress.py) go to progress.jsonl and their scalars to its columns."""
        measured = row.pop("progress", None)
        if measured is not None:
            row.update(progress_store.metric_columns(measured))
            if self.writer is not None:
                self.writer.progress(progress_store.progress_row(row["step"], measured))
        self.best_val_acc = max(self.best_val_acc, row["val_acc"])
        self.last = row
        if self.writer is not None:
            self.writer.metrics(row)
        self.call("on_eval", row)
        tc, new = self.cfg.train, []
        for name, key in MILESTONES.items():
            if name not in self.milestones and row[key] >= getattr(tc, f"{name}_threshold"):
                self.milestones[name] = row["step"]
                new.append(name)
        for name in new:
            self.emit({"event": name, "train_acc": row["train_acc"], "val_acc": row["val_acc"]})
        return new

    def checkpoint(self, stepper: Stepper, k: int, row: dict, tags: list[str]) -> None:
        if self.writer is None:
            return
        self.writer.check_present()  # a removed run directory is not made again by a checkpoint
        extra = {"milestones": self.milestones, "best_val_acc": self.best_val_acc, "wall_s": row.get("wall_s", 0.0)}
        path = stepper.save(k, self.writer.ckpt_dir, row, tags, extra)
        self.emit({"event": "checkpoint", "path": str(path), "tags": tags})

    def finish(self, status: str, error: str | None = None) -> dict:
        """The last event and the final summary (what can be written of them on a full disk: the
        summary is written even when the event cannot be; the hooks get the whole summary)."""
        self.status, self.error = status, error
        try:
            self.emit({"event": status, **({"error": error} if error else {})})
        except OSError:
            pass
        fields = {"error": error, "last": self.last, "finished_at": time.time()}
        try:
            s = self.summary(**fields)
        except OSError as e:  # nothing more can be written; the summary still goes to the hooks
            if isinstance(e, RunRemoved):  # whatever the end was, the run is gone: that is its end
                self.status, self.error = "failed", str(e)
                fields["error"] = str(e)
            s = self.summary(write=False, **fields)
        self.call("on_member_end", s)
        return s


def _failure(e: BaseException, stepper: Stepper) -> str:
    """The sentence a run directory records for an exception that ends the loop (any exception)."""
    if is_out_of_memory(e):
        hint = (f"with {stepper.K} members (try --chunk-size or a smaller --batch-size)" if stepper.K > 1
                else "(try a smaller --batch-size or model)")
        return f"out of memory at step {stepper.step} on {stepper.device} {hint}."
    if isinstance(e, OSError):
        return _io_failure(e)
    return f"{type(e).__name__} at step {stepper.step}: {e}"


def _io_failure(e: OSError) -> str:
    if isinstance(e, RunRemoved):
        return str(e)
    if e.errno == errno.ENOSPC:
        return f"the disk is full ({e.filename or 'run directory'}); what was written before stays."
    return f"cannot write the run directory: {e}."


def run_loop(stepper: Stepper, recorders: list[Recorder], tc: TrainConfig, control: Control | None = None,
             reporters: list[Reporter] | tuple = (), group: int = 0, wall_offset: float = 0.0,
             resumed: bool = False) -> dict[str, dict]:
    """Train every member to tc.steps (or until stopped); returns each member's final summary by run id.

    tc holds what the members share: steps, eval_every, checkpoint_every. `reporters` hear every
    member's hooks and on_progress(group, step) once per evaluation.

    Every way out leaves each member's run directory with its end and reason: a member whose directory
    cannot be written (an OSError of its own files) fails alone, as a member with a non-finite loss
    does; out of memory and any other exception fail every member still running, with the exception's
    type and message, and then an exception that is not out of memory nor an OSError (a bug, a device
    assert) is raised again.
    """
    control = control or Control()
    fan = Fanout(reporters)
    start_step = stepper.step
    gpu = gpu_status(stepper.device)
    out: dict[str, dict] = {}

    def guarded(r: Recorder, fn: Callable[..., Any], *args: Any) -> None:
        """fn(*args) writes member r's directory; its I/O failure ends that member alone."""
        try:
            fn(*args)
        except OSError as e:
            gone = r.writer.removed() if r.writer is not None else None
            out[r.run_id] = r.finish("failed", _io_failure(gone or e))

    for r in recorders:
        r.fan, r.step = fan, start_step
        info = {"run_id": r.run_id or None, "path": str(r.writer.path) if r.writer else None,
                "device": str(stepper.device), **({"gpu": gpu["gpu"]} if gpu else {}),
                "steps": tc.steps, "start_step": start_step, **r.info}
        r.call("on_member_start", info)

        guarded(r, _start, r, str(stepper.device), {**info, **({"resumed_from": start_step} if resumed else {})},
                control.signals_to)

    def active() -> list[tuple[int, Recorder]]:
        return [(k, r) for k, r in enumerate(recorders) if r.active]

    def checkpoint_due() -> bool:
        return bool(tc.checkpoint_every) and stepper.step % tc.checkpoint_every == 0

    t0 = time.perf_counter() - wall_offset
    last_eval = -1
    status, error, reraise = "finished", None, None
    try:
        while stepper.step < tc.steps and active():
            if control.pause.is_set():
                _wait_paused(control, [r for _, r in active()], guarded)
            if control.stop.is_set():
                status, error = control.stop_reason, control.stop_error
                break
            is_eval = (stepper.step + 1) % tc.eval_every == 0 or stepper.step + 1 == tc.steps
            grads = stepper.train_step(want_grads=is_eval)
            for _, r in active():
                r.step = stepper.step
            if not is_eval:
                if checkpoint_due():
                    rows = stepper.eval_rows({}, time.perf_counter() - t0)
                    for k, r in active():
                        if math.isfinite(rows[k]["train_loss"]):
                            guarded(r, r.checkpoint, stepper, k, rows[k], [])
                continue
            rows = stepper.eval_rows(grads, time.perf_counter() - t0)
            last_eval = stepper.step
            if gpu is not None:  # memory and utilisation beside the loss (counters, no device sync)
                now = {k: v for k, v in (gpu_status(stepper.device) or {}).items() if k != "gpu"}
                for row in rows:
                    row.update(now)
            warnings, stepper.warnings[:] = list(stepper.warnings), []
            for k, r in active():
                row = rows[k]
                if not math.isfinite(row["train_loss"]):  # this member fails; the others go on
                    for w in warnings:
                        guarded(r, r.emit, {"event": "warning", "message": w})
                    if r.active:
                        out[r.run_id] = r.finish("failed", diverged_error(row["train_loss"], stepper.step))
                    continue
                guarded(r, _record, stepper, r, k, row, warnings, checkpoint_due())
            fan.call("on_progress", group, stepper.step)
        if active() and (stepper.step > start_step or not any(r.last for _, r in active())):
            rows = stepper.eval_rows({}, time.perf_counter() - t0) if last_eval != stepper.step else None
            for k, r in active():
                final = rows[k] if rows is not None else r.last
                if final and math.isfinite(final["train_loss"]):
                    guarded(r, r.checkpoint, stepper, k, final, ["final"])
                    r.last = final
    except KeyboardInterrupt:
        status = "stopped"
    except Exception as e:  # the run directory says what happened, whatever it was
        status, error = "failed", _failure(e, stepper)
        if not (is_out_of_memory(e) or isinstance(e, OSError)):
            reraise = e
    _finish_all([r for _, r in active()], status, error, out)
    if reraise is not None:
        raise reraise
    return out


def _record(stepper: Stepper, r: Recorder, k: int, row: dict, warnings: list[str], checkpoint_due: bool) -> None:
    """One member's evaluation: warnings, the row, milestones, their checkpoint, the summary."""
    if r.writer is not None:
        r.writer.check_present()  # its directory removed: this member ends, nothing is made again
    for w in warnings:
        r.emit({"event": "warning", "message": w})
    tags = r.record(row)
    if tags or checkpoint_due:
        r.checkpoint(stepper, k, row, tags)
    r.summary(force=bool(tags), last=row)


def _start(r: Recorder, device: str, info: dict, signals_to: dict) -> None:
    if r.writer is not None:  # the front end's signal handlers are installed: control may reach this run now
        r.writer.announce(signals_to)
    r.summary(device=device, started_at=time.time())
    r.emit({"event": "started", **info})


def _finish_all(recorders: list[Recorder], status: str, error: str | None, out: dict[str, dict]) -> None:
    """The end of every member still running. A Ctrl-C while the ends are written (a second or third
    one, pressed while a stop finishes) does not cut them short: the member's end is written again."""
    for r in recorders:
        for _ in range(5):
            try:
                out[r.run_id] = r.finish(status, error)
                break
            except KeyboardInterrupt:
                status = "stopped" if status == "finished" else status


def _wait_paused(control: Control, recorders: list[Recorder], guarded: Callable[..., None]) -> None:
    def note(event: str, **summary: Any) -> None:
        for r in recorders:
            if r.active:
                guarded(r, _note, r, event, summary)

    note("paused", status="paused")
    while control.pause.is_set() and not control.stop.is_set():
        time.sleep(0.05)
    if control.stop.is_set():  # stopped while paused: the loop's stop follows, not a resume
        return
    note("resumed")


def _note(r: Recorder, event: str, summary: dict) -> None:
    r.emit({"event": event})
    r.summary(**summary)


def save_member(directory: Path, step: int, model: torch.nn.Module, arch, opt, order_state: tuple[dict, dict],
                row: dict, tags: list[str], extra: dict[str, Any]) -> Path:
    """A member's checkpoint: the weights (+ sidecar) and the resumable state (optimizer, data order)."""
    path = checkpoint.save(directory, step, model, arch, row, tags)
    tensors, order_extra = order_state
    checkpoint.save_state(directory, step, opt, tensors, {**order_extra, **extra})
    return path
