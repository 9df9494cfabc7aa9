"""The training loop: the data on the device, index batches, no host sync inside a step.

Front ends follow a run through ``Callback`` hooks (the CLI renders them with rich or as JSON lines)
and through the run directory. ``Control`` carries stop/pause requests from a signal handler or a
thread into the loop; the loop reads plain Python flags between steps, never the device.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grok_tui.errors import CheckpointError, ConfigError, TrainingError
from grok_tui.optim import registry as optim
from grok_tui.spec.config import Config
from grok_tui.store.runs import RunWriter
from grok_tui.train import checkpoint, data, losses, metrics, model


class Callback:
    """Engine hooks; every method is optional."""

    def on_start(self, info: dict) -> None: ...
    def on_eval(self, row: dict) -> None: ...
    def on_event(self, event: dict) -> None: ...
    def on_end(self, summary: dict) -> None: ...


@dataclass
class Control:
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = "stopped"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """One run: model, optimizer, data and the position in the data order."""

    def __init__(self, cfg: Config, device: torch.device | None = None):
        self.cfg = cfg
        self.device = device or resolve_device(cfg.train.device)
        self.split = data.build_from_config(cfg, self.device)
        self.arch = model.arch_from_config(cfg)
        self.model = model.build(self.arch, seed=cfg.train.seed, device=self.device)
        self.opt = optim.build(self.model, cfg.optim, self.device)
        self.base_lrs = [g["lr"] for g in self.opt.param_groups]
        self.lr_factor = optim.lr_factor(cfg.optim, cfg.train.steps)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(cfg.train.seed)
        self.step = 0  # optimizer steps taken
        self.perm = torch.empty(0, dtype=torch.long, device=self.device)
        self.pos = 0  # next position in perm
        self.epoch = 0  # permutations drawn
        self.milestones: dict[str, int] = {}
        self.best_val_acc = 0.0
        self.wall_offset = 0.0
        bs = cfg.train.batch_size
        self.steps_per_epoch = -(-self.split.n_train // bs)
        self.warnings: list[str] = []  # for the run's event stream
        self.forward = torch.compile(self.model) if cfg.train.compile else self.model
        self.loss_fn = losses.get(cfg.train.loss)
        # Schedule-free optimizers step at y (train mode) and are evaluated and saved at x (eval mode).
        self.two_modes = callable(getattr(self.opt, "eval", None))

    # -- one step ---------------------------------------------------------------------------
    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.split.n_train
        if self.pos >= self.perm.shape[0]:
            self.perm = torch.randperm(n, generator=self.gen, device=self.device)
            self.pos = 0
            self.epoch += 1
        idx = self.perm[self.pos:self.pos + self.cfg.train.batch_size]
        self.pos += self.cfg.train.batch_size
        return self.split.train_x[idx], self.split.train_y[idx]

    def train_step(self, want_grads: bool = False) -> dict[str, torch.Tensor]:
        """One optimizer step; returns device tensors (gradient norms only when asked)."""
        f = self.lr_factor(self.step)
        for g, lr in zip(self.opt.param_groups, self.base_lrs, strict=True):
            g["lr"] = lr * f
        if self.two_modes:
            self.opt.train()  # a no-op unless the last call was eval()
        x, y = self._next_batch()
        try:
            logits = self.forward(x)
        except Exception as e:  # a failed torch.compile: go on eagerly, say so once
            if self.forward is self.model:
                raise
            self.forward = self.model
            self.warnings.append(f"torch.compile failed ({type(e).__name__}); training goes on without it.")
            logits = self.model(x)
        loss = self.loss_fn(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        out = metrics.grad_norms(self.model) if want_grads else {}
        self.opt.step()
        self.step += 1
        return out

    def eval_row(self, grads: dict[str, torch.Tensor], wall: float) -> dict[str, Any]:
        if self.two_modes:
            self.opt.eval()
        lr = self.base_lrs[0] * self.lr_factor(self.step - 1)
        vals = metrics.evaluate(self.model, self.split, self.loss_fn)
        weights = metrics.weight_norms(self.model)
        vals.update(weights)
        vals.update(grads)
        vals.update(metrics.effective(weights, grads, lr))
        tc = self.cfg.train
        if grads and tc.sgn_every and (self.step // tc.eval_every) % tc.sgn_every == 0:
            vals.update(metrics.mean_grad_norm(self.model, self.split.train_x, self.split.train_y,
                                               tc.batch_size, self.loss_fn))
        host = metrics.to_host(vals)  # the one sync of this eval
        row: dict[str, Any] = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 3),
                               "wall_s": round(wall, 3), "lr": lr}
        row.update(host)
        return row

    # -- resumable state --------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {"rng.data": self.gen.get_state(), "data.perm": self.perm}
        extra = {"pos": self.pos, "epoch": self.epoch, "milestones": self.milestones,
                 "best_val_acc": self.best_val_acc}
        return tensors, extra

    def restore(self, ckpt_path: Path, state_json: Path) -> None:
        checkpoint.load_into(self.model, ckpt_path, self.arch)
        tensors, extra = checkpoint.load_state(state_json, self.opt)
        try:
            self.gen.set_state(tensors["rng.data"])
            self.perm = tensors["data.perm"].to(self.device)
            self.step = int(extra["step"])
            self.pos, self.epoch = int(extra["pos"]), int(extra["epoch"])
            self.milestones = {str(k): int(v) for k, v in dict(extra.get("milestones", {})).items()}
            self.best_val_acc = float(extra.get("best_val_acc", 0.0))
            self.wall_offset = float(extra.get("wall_s", 0.0))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            what = f"lacks {e}" if isinstance(e, KeyError) else f"has a bad value ({e})"
            raise CheckpointError(f"resume state {state_json} {what}; it cannot be resumed.") from None
        if self.pos < 0 or self.perm.shape[0] not in (0, self.split.n_train):
            raise CheckpointError(f"resume state {state_json} does not fit this run's data split.")


def build_trainer(cfg: Config, resume_from: tuple[Path, Path] | None = None) -> Trainer:
    """A Trainer (restored from a checkpoint when given): every error a run can meet before its first
    step, as one sentence (ConfigError, CheckpointError, TrainingError), before anything is written.
    A `threads` setting applies to the whole process (torch.set_num_threads)."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        trainer = Trainer(cfg)
    except torch.OutOfMemoryError:
        raise TrainingError("out of memory building the model and data (try a smaller model).") from None
    except RuntimeError as e:
        if "allocate" not in str(e):
            raise
        raise TrainingError("out of memory building the model and data (try a smaller model).") from None
    if resume_from is not None:
        trainer.restore(*resume_from)
    return trainer


def _milestone_tags(trainer: Trainer, row: dict) -> list[str]:
    t, new = trainer.cfg.train, []
    for name, key, thr in (("memorized", "train_acc", t.memorized_threshold),
                           ("grokked", "val_acc", t.grokked_threshold)):
        if name not in trainer.milestones and row[key] >= thr:
            trainer.milestones[name] = trainer.step
            new.append(name)
    return new


def run_training(cfg: Config, run: RunWriter | None = None, callbacks: list[Callback] | tuple = (),
                 control: Control | None = None, resume_from: tuple[Path, Path] | None = None,
                 trainer: Trainer | None = None) -> dict:
    """Train `cfg` to its step budget (or until stopped), writing `run`. Returns the summary.
    `trainer` is one build_trainer made already (the CLI builds it before creating the run directory).

    Raises TrainingError for a non-finite loss, a full disk or running out of memory, after the
    run directory records the failure; everything written before stays.
    """
    control = control or Control()
    trainer = trainer or build_trainer(cfg, resume_from)
    tc = cfg.train
    start_step = trainer.step

    def emit(event: dict) -> None:
        event = {"event": event.pop("event"), "step": trainer.step, **event, "time": time.time()}
        if run is not None:
            run.event(event)
        for cb in callbacks:
            cb.on_event(event)

    def save_checkpoint(row: dict, tags: list[str]) -> None:
        if run is None:
            return
        path = checkpoint.save(run.ckpt_dir, trainer.step, trainer.model, trainer.arch, row, tags)
        tensors, extra = trainer.state()
        extra["wall_s"] = row.get("wall_s", 0.0)
        checkpoint.save_state(run.ckpt_dir, trainer.step, trainer.opt, tensors, extra)
        emit({"event": "checkpoint", "path": str(path), "tags": tags})

    def summary(status: str, force: bool = True, **extra: Any) -> dict:
        s = {"status": status, "steps_run": trainer.step, "total_steps": tc.steps,
             "memorized_step": trainer.milestones.get("memorized"), "grokked_step": trainer.milestones.get("grokked"),
             "best_val_acc": trainer.best_val_acc, "device": str(trainer.device), **extra}
        if run is not None:
            run.write_summary(force=force, **s)
        return s

    info = {"run_id": run.run_id if run else None, "path": str(run.path) if run else None,
            "device": str(trainer.device), "steps": tc.steps, "start_step": start_step,
            "n_train": trainer.split.n_train, "n_val": trainer.split.n_val,
            "params": sum(p.numel() for p in trainer.model.parameters())}
    for cb in callbacks:
        cb.on_start(info)
    summary("running", started_at=time.time())
    emit({"event": "started", **info, **({"resumed_from": start_step} if resume_from else {})})

    t0 = time.perf_counter() - trainer.wall_offset
    row: dict[str, Any] = {}
    status, error = "finished", None
    try:
        while trainer.step < tc.steps:
            if control.pause.is_set():
                _wait_paused(control, emit)
            if control.stop.is_set():
                status = control.stop_reason
                break
            is_eval = (trainer.step + 1) % tc.eval_every == 0 or trainer.step + 1 == tc.steps
            grads = trainer.train_step(want_grads=is_eval)
            if not is_eval:
                if tc.checkpoint_every and trainer.step % tc.checkpoint_every == 0:
                    save_checkpoint(trainer.eval_row({}, time.perf_counter() - t0), [])
                continue
            row = trainer.eval_row(grads, time.perf_counter() - t0)
            while trainer.warnings:
                emit({"event": "warning", "message": trainer.warnings.pop(0)})
            if not math.isfinite(row["train_loss"]):
                raise TrainingError(f"training diverged: the train loss became {row['train_loss']} by step "
                                    f"{trainer.step} (try a lower lr); checkpoints up to then are kept.")
            trainer.best_val_acc = max(trainer.best_val_acc, row["val_acc"])
            if run is not None:
                run.metrics(row)
            for cb in callbacks:
                cb.on_eval(row)
            tags = _milestone_tags(trainer, row)
            for name in tags:
                emit({"event": name, "train_acc": row["train_acc"], "val_acc": row["val_acc"]})
            if tags or (tc.checkpoint_every and trainer.step % tc.checkpoint_every == 0):
                save_checkpoint(row, tags)
            summary("running", force=bool(tags), last=row)
        if trainer.step > start_step or not row:
            final = trainer.eval_row({}, time.perf_counter() - t0) if not row or row["step"] != trainer.step else row
            if math.isfinite(final["train_loss"]):
                save_checkpoint(final, ["final"])
                row = final
    except TrainingError as e:
        status, error = "failed", str(e)
    except torch.OutOfMemoryError:
        status, error = "failed", (f"out of memory at step {trainer.step} on {trainer.device} "
                                   "(try a smaller --batch-size or model).")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            status, error = "failed", f"the disk is full ({e.filename or 'run directory'}); what was written before stays."
        else:
            status, error = "failed", f"cannot write the run directory: {e}."
    except KeyboardInterrupt:
        status = "stopped"
    if status == "failed":
        try:
            emit({"event": "failed", "error": error})
        except OSError:
            pass
    else:
        emit({"event": status})
    try:
        s = summary(status, error=error, last=row, finished_at=time.time())
    except OSError:
        s = {"status": status, "error": error}
    for cb in callbacks:
        cb.on_end(s)
    if status == "failed":
        raise TrainingError(error or "training failed.")
    return s


def _wait_paused(control: Control, emit) -> None:
    emit({"event": "paused"})
    while control.pause.is_set() and not control.stop.is_set():
        time.sleep(0.05)
    emit({"event": "resumed"})


def resume_paths(run_path: Path) -> tuple[Path, Path]:
    """(weights, state) of the newest resumable checkpoint of a run."""
    ckpt_dir = Path(run_path) / "checkpoints"
    found = checkpoint.latest_state(ckpt_dir)
    if found is None:
        raise ConfigError(f"run {Path(run_path).name} has no resumable checkpoint.")
    step, state_json = found
    weights = ckpt_dir / (checkpoint.ckpt_name(step) + ".safetensors")
    if not weights.is_file():
        raise ConfigError(f"run {Path(run_path).name} lacks the weights of its step-{step} checkpoint.")
    return weights, state_json
