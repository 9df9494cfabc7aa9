"""The one training loop: a single run and a K-member ensemble alike.

``run_loop`` drives a ``Stepper`` (``trainer.Trainer`` for one run, ``ensemble.Ensemble`` for K runs
trained as one) and writes each member's run directory through its ``Recorder``. Everything a run
does besides stepping lives here once: pause and stop, the evaluation and checkpoint cadence,
milestones, divergence, summaries, the final checkpoint, out-of-memory and full-disk handling.

Policy for a non-finite loss: that member fails with its sentence and its run directory says so;
the other members go on. Front ends follow the loop through ``Hooks`` (member-aware) and through the
run directories; the loop reads plain Python flags between steps, never the device.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from grok_tui.spec.config import Config, TrainConfig
from grok_tui.store import progress as progress_store
from grok_tui.store.runs import RunWriter
from grok_tui.train import checkpoint
from grok_tui.train.device import gpu_status

MILESTONES = (("memorized", "train_acc", "memorized_threshold"), ("grokked", "val_acc", "grokked_threshold"))


@dataclass
class Control:
    """Stop and pause requests from a signal handler, a thread or another process's events."""

    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = "stopped"


class Hooks:
    """Member-aware engine hooks; every method is optional."""

    def on_member_start(self, run_id: str, info: dict) -> None: ...
    def on_eval(self, run_id: str, row: dict) -> None: ...
    def on_event(self, run_id: str, event: dict) -> None: ...
    def on_member_end(self, run_id: str, summary: dict) -> None: ...
    def on_progress(self, step: int) -> None: ...


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

    def __init__(self, writer: RunWriter | None, cfg: Config, hooks: list[Hooks] | tuple = (),
                 info: dict | None = None, milestones: dict[str, int] | None = None, best_val_acc: float = 0.0):
        self.writer, self.cfg, self.hooks = writer, cfg, list(hooks)
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
        """Call a hook of every front end. A front end whose output fails (a closed pipe, a terminal
        gone) is dropped: it must never pass for a run-directory failure, nor end the run."""
        for h in list(self.hooks):
            try:
                getattr(h, hook)(self.run_id, *args)
            except OSError as e:
                self.hooks.remove(h)
                if self.writer is not None:
                    self.writer.event({"event": "warning", "step": self.step, "time": time.time(),
                                       "message": f"console output stopped ({e.strerror or e}); training goes on."})

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
        for name, key, threshold in MILESTONES:
            if name not in self.milestones and row[key] >= getattr(tc, threshold):
                self.milestones[name] = row["step"]
                new.append(name)
        for name in new:
            self.emit({"event": name, "train_acc": row["train_acc"], "val_acc": row["val_acc"]})
        return new

    def checkpoint(self, stepper: Stepper, k: int, row: dict, tags: list[str]) -> None:
        if self.writer is None:
            return
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
        except OSError:  # nothing more can be written; the summary still goes to the hooks
            s = self.summary(write=False, **fields)
        self.call("on_member_end", s)
        return s


def _failure(e: BaseException, stepper: Stepper) -> str:
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        hint = (f"with {stepper.K} members (try --chunk-size or a smaller --batch-size)" if stepper.K > 1
                else "(try a smaller --batch-size or model)")
        return f"out of memory at step {stepper.step} on {stepper.device} {hint}."
    assert isinstance(e, OSError)
    if e.errno == errno.ENOSPC:
        return f"the disk is full ({e.filename or 'run directory'}); what was written before stays."
    return f"cannot write the run directory: {e}."


def run_loop(stepper: Stepper, recorders: list[Recorder], tc: TrainConfig, control: Control | None = None,
             hooks: list[Hooks] | tuple = (), wall_offset: float = 0.0, resumed: bool = False) -> dict[str, dict]:
    """Train every member to tc.steps (or until stopped); returns each member's final summary by run id.

    tc holds what the members share: steps, eval_every, checkpoint_every.
    """
    control = control or Control()
    hooks = list(hooks)
    start_step = stepper.step
    gpu = gpu_status(stepper.device)
    for r in recorders:
        r.step = start_step
        info = {"run_id": r.run_id or None, "path": str(r.writer.path) if r.writer else None,
                "device": str(stepper.device), **({"gpu": gpu["gpu"]} if gpu else {}),
                "steps": tc.steps, "start_step": start_step, **r.info}
        r.call("on_member_start", info)
        r.summary(device=str(stepper.device), started_at=time.time())
        r.emit({"event": "started", **info, **({"resumed_from": start_step} if resumed else {})})

    def active() -> list[tuple[int, Recorder]]:
        return [(k, r) for k, r in enumerate(recorders) if r.active]

    def checkpoint_due() -> bool:
        return bool(tc.checkpoint_every) and stepper.step % tc.checkpoint_every == 0

    t0 = time.perf_counter() - wall_offset
    out: dict[str, dict] = {}
    last_eval = -1
    status, error = "finished", None
    try:
        while stepper.step < tc.steps and active():
            if control.pause.is_set():
                _wait_paused(control, [r for _, r in active()])
            if control.stop.is_set():
                status = control.stop_reason
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
                            r.checkpoint(stepper, k, rows[k], [])
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
                for w in warnings:
                    r.emit({"event": "warning", "message": w})
                if not math.isfinite(row["train_loss"]):  # this member fails; the others go on
                    out[r.run_id] = r.finish("failed", diverged_error(row["train_loss"], stepper.step))
                    continue
                tags = r.record(row)
                if tags or checkpoint_due():
                    r.checkpoint(stepper, k, row, tags)
                r.summary(force=bool(tags), last=row)
            for h in list(hooks):
                try:
                    h.on_progress(stepper.step)
                except OSError:  # a front end's output went away; training goes on
                    hooks.remove(h)
        if active() and (stepper.step > start_step or not any(r.last for _, r in active())):
            rows = stepper.eval_rows({}, time.perf_counter() - t0) if last_eval != stepper.step else None
            for k, r in active():
                final = rows[k] if rows is not None else r.last
                if final and math.isfinite(final["train_loss"]):
                    r.checkpoint(stepper, k, final, ["final"])
                    r.last = final
    except (torch.OutOfMemoryError, MemoryError, OSError) as e:
        status, error = "failed", _failure(e, stepper)
    except KeyboardInterrupt:
        status = "stopped"
    for _, r in active():
        out[r.run_id] = r.finish(status, error)
    return out


def _wait_paused(control: Control, recorders: list[Recorder]) -> None:
    for r in recorders:
        r.emit({"event": "paused"})
        r.summary(status="paused")
    while control.pause.is_set() and not control.stop.is_set():
        time.sleep(0.05)
    if control.stop.is_set():  # stopped while paused: the loop's stop follows, not a resume
        return
    for r in recorders:
        r.emit({"event": "resumed"})
        r.summary()


def save_member(directory: Path, step: int, model: torch.nn.Module, arch, opt, order_state: tuple[dict, dict],
                row: dict, tags: list[str], extra: dict[str, Any]) -> Path:
    """A member's checkpoint: the weights (+ sidecar) and the resumable state (optimizer, data order)."""
    path = checkpoint.save(directory, step, model, arch, row, tags)
    tensors, order_extra = order_state
    checkpoint.save_state(directory, step, opt, tensors, {**order_extra, **extra})
    return path
