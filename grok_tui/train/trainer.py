"""One run as the loop's stepper: model, optimizer, data on the device, index batches.

``run_training`` trains one run through ``loop.run_loop`` (the loop a sweep's ensembles use too).
Front ends follow a run through ``report.Reporter`` hooks (the CLI renders them with rich or as JSON
lines) and through the run directory; ``loop.Control`` carries stop/pause requests into the loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from grok_tui.errors import CheckpointError, TrainingError, is_out_of_memory
from grok_tui.optim import registry as optim
from grok_tui.report import Reporter
from grok_tui.spec.config import Config
from grok_tui.store.runs import RunWriter
from grok_tui.train import checkpoint, data, losses, metrics, model, progress
from grok_tui.train.device import apply_precision, autocast, compile_mode, resolve_device
from grok_tui.train.loop import Control, Recorder, run_loop, save_member
from grok_tui.train.order import DataOrder


class Trainer:
    """One run: model, optimizer, data and the position in the data order (a loop.Stepper with K = 1)."""

    K = 1

    def __init__(self, cfg: Config, device: torch.device | None = None):
        self.cfg = cfg
        self.device = device or resolve_device(cfg.train.device)
        self.split = data.build_from_config(cfg, self.device)
        self.arch = model.arch_from_config(cfg)
        self.model = model.build(self.arch, seed=cfg.train.seed, device=self.device)
        self.opt = optim.build(self.model, cfg.optim, self.device)
        self.base_lrs = [g["lr"] for g in self.opt.param_groups]
        self.lr_factor = optim.lr_factor(cfg.optim, cfg.train.steps)
        self.order = DataOrder(self.split.n_train, cfg.train.batch_size, cfg.train.seed, self.device)
        self._rows: tuple[int, torch.Tensor] | None = None  # (first step, index rows of the steps ahead)
        self.step = 0  # optimizer steps taken
        self.milestones: dict[str, int] = {}  # restored from a checkpoint; the loop's Recorder keeps them
        self.best_val_acc = 0.0
        self.wall_offset = 0.0
        self.warnings: list[str] = []  # for the run's event stream
        self.forward = torch.compile(self.model, mode=compile_mode(self.device)) if cfg.train.compile else self.model
        self.precision = cfg.train.precision
        self.loss_fn = losses.get(cfg.train.loss)
        # Schedule-free optimizers step at y (train mode) and are evaluated and saved at x (eval mode).
        self.two_modes = callable(getattr(self.opt, "eval", None))
        self._table_rows: tuple[torch.Tensor, torch.Tensor] | None = None  # the split's rows of the table

    # -- one step ---------------------------------------------------------------------------
    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.step
        if self._rows is None or not 0 <= s - self._rows[0] < self._rows[1].shape[0]:
            self._rows = (s, self.order.rows(s, max(1, min(256, self.cfg.train.steps - s))))
        idx = self._rows[1][s - self._rows[0]]
        return self.split.train_x[idx], self.split.train_y[idx]

    def train_step(self, want_grads: bool = False) -> dict[str, torch.Tensor]:
        """One optimizer step; returns device tensors (gradient norms only when asked)."""
        f = self.lr_factor(self.step)
        for g, lr in zip(self.opt.param_groups, self.base_lrs, strict=True):
            g["lr"] = lr * f
        if self.two_modes:
            self.opt.train()  # a no-op unless the last call was eval()
        x, y = self._next_batch()
        self.opt.zero_grad(set_to_none=True)
        try:
            self._forward_backward(self.forward, x, y)
        except Exception as e:
            if is_out_of_memory(e):
                raise  # the loop's one sentence, not a compile failure
            # a failed torch.compile (in the forward, or in the backward it builds lazily): go on eagerly
            # from the same batch, and say so once
            if self.forward is self.model:
                raise
            self.forward = self.model
            self.warnings.append(f"torch.compile failed ({type(e).__name__}); training goes on without it.")
            self.opt.zero_grad(set_to_none=True)
            self._forward_backward(self.model, x, y)
        out = metrics.grad_norms(self.model) if want_grads else {}
        self.opt.step()
        self.step += 1
        return out

    def _forward_backward(self, forward, x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(self.precision, self.device):
            loss = self.loss_fn(forward(x), y)
        loss.backward()

    def eval_rows(self, grads: dict[str, torch.Tensor], wall: float) -> list[dict[str, Any]]:
        """This run's metrics row (metrics.eval_rows: the row an ensemble member writes too), one host sync;
        a measuring evaluation adds the progress measures' own (progress.live), a second one."""
        if self.two_modes:
            self.opt.eval()
        measure = bool(grads) and progress.due(self.cfg.train, self.step)  # a scheduled evaluation only
        keep = ([], []) if measure and progress.keeps_logits(1, self.split.n_train + self.split.n_val, self.split.p) else None
        measured = metrics.evaluate(self.model, self.split, self.loss_fn, keep)
        measured.update(metrics.weight_norms(self.model))
        tc = self.cfg.train

        def sgn() -> dict[str, torch.Tensor]:
            return metrics.mean_grad_norm(self.model, self.split.train_x, self.split.train_y, tc.batch_size,
                                          self.loss_fn)

        rows = metrics.eval_rows(measured, grads, sgn, tc, self.step, wall,
                                 [self.base_lrs[0] * self.lr_factor(self.step - 1)], [self.order.epoch_of(self.step)])
        if measure:  # the loop's Recorder writes it (progress.jsonl and the metric columns)
            rows[0]["progress"] = self._measure(keep)
        return rows

    def _measure(self, keep: tuple[list, list] | None) -> dict[str, Any]:
        """The progress measures from the evaluation's logits, put back in the table's order."""
        if self._table_rows is None:
            d = self.cfg.data
            tr, va = data.split_indices(self.split.n_train + self.split.n_val, d.train_frac, self.cfg.split_seed)
            self._table_rows = (tr.to(self.device), va.to(self.device))
        tr, va = self._table_rows
        logits = None
        if keep is not None:
            logits = torch.empty(len(tr) + len(va), self.split.p, device=self.device)
            logits[tr], logits[va] = torch.cat(keep[0]), torch.cat(keep[1])
            logits = logits[None]
        return progress.live([self.model.tok_emb.weight], logits, [self.cfg.data.op], self.split.p, [tr])[0]

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, k: int, directory: Path, row: dict, tags: list[str], extra: dict[str, Any]) -> Path:
        return save_member(directory, self.step, self.model, self.arch, self.opt, self.order.state_after(self.step),
                           row, tags, extra)

    def restore(self, ckpt_path: Path, state_json: Path) -> None:
        checkpoint.load_into(self.model, ckpt_path, self.arch)
        tensors, extra = checkpoint.load_state(state_json, self.opt)
        try:
            self.step = int(extra["step"])
            self.order.restore(self.step, tensors, extra)
            self.milestones = {str(k): int(v) for k, v in dict(extra.get("milestones", {})).items()}
            self.best_val_acc = float(extra.get("best_val_acc", 0.0))
            self.wall_offset = float(extra.get("wall_s", 0.0))
        except KeyError as e:
            raise CheckpointError(f"resume state {state_json} lacks {e}; it cannot be resumed.") from None
        except (TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise CheckpointError(f"resume state {state_json} does not fit this run ({e}); "
                                  "it cannot be resumed.") from None


def build_trainer(cfg: Config, resume_from: tuple[Path, Path] | None = None) -> Trainer:
    """A Trainer (restored from a checkpoint when given): every error a run can meet before its first
    step, as one sentence (ConfigError, CheckpointError, TrainingError), before anything is written.
    A `threads` setting applies to the whole process (torch.set_num_threads)."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        trainer = Trainer(cfg)
        apply_precision(cfg.train.precision, trainer.device)
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        raise TrainingError("out of memory building the model and data (try a smaller model).") from None
    if resume_from is not None:
        trainer.restore(*resume_from)
    return trainer


def run_training(cfg: Config, run: RunWriter | None = None, reporters: list[Reporter] | tuple = (),
                 control: Control | None = None, resume_from: tuple[Path, Path] | None = None,
                 trainer: Trainer | None = None) -> dict:
    """Train `cfg` to its step budget (or until stopped), writing `run`. Returns the summary.
    `trainer` is one build_trainer made already (the CLI builds it before creating the run directory).

    Raises TrainingError for a non-finite loss, a full disk or running out of memory, after the
    run directory records the failure; everything written before stays.
    """
    trainer = trainer or build_trainer(cfg, resume_from)
    info = {"n_train": trainer.split.n_train, "n_val": trainer.split.n_val,
            "params": sum(p.numel() for p in trainer.model.parameters()),
            "compile": trainer.forward is not trainer.model}  # the first step waits for the compiler
    rec = Recorder(run, cfg, info, trainer.milestones, trainer.best_val_acc)
    out = run_loop(trainer, [rec], cfg.train, control, reporters, wall_offset=trainer.wall_offset,
                   resumed=resume_from is not None)
    s = out[rec.run_id]
    if s["status"] == "failed":
        raise TrainingError(s.get("error") or "training failed.")
    return s
