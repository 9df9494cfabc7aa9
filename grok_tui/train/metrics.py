"""Evaluation and geometry metrics, all returned as device tensors (the caller syncs once per eval).

Names in ``metrics.jsonl`` (see README, "Metrics"):
  train_loss, train_acc, val_loss, val_acc   one no-grad pass over the whole split
  weight_norm, weight_norm.<group>           L2 norm of all parameters / of a group
  grad_norm, grad_norm.<group>               L2 norm of the last minibatch gradient
  eff_grad_norm, eff_grad_norm.<group>       grad_norm * weight_norm (seed 000's g·‖θ‖)
  eff_lr, eff_lr.<group>                     lr / weight_norm² (seed 000's η/‖θ‖²; lr = the row's lr)
  sgn, sgn.<group>                           mean over all training minibatches of each minibatch
                                             gradient's norm (every sgn_every evaluations)
Groups: embed, attn, mlp, norm, head (see model.param_group). The losses are the training loss
(cross-entropy or StableMax, see losses.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from grok_tui.train.model import param_group

LossFn = Callable[..., torch.Tensor]

EVAL_CHUNK = 16384


@torch.no_grad()
def loss_acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             loss_fn: LossFn = F.cross_entropy, keep: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss (cross-entropy unless given) and accuracy over (x, y), in chunks; two 0-d tensors.
    The logits of each chunk are appended to ``keep`` when given (the progress measures read them)."""
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, x.shape[0], EVAL_CHUNK):
        logits = model(x[i:i + EVAL_CHUNK]).float()
        if keep is not None:
            keep.append(logits)
        yy = y[i:i + EVAL_CHUNK]
        loss_sum += loss_fn(logits, yy, reduction="sum")
        correct += (logits.argmax(-1) == yy).sum()
    n = max(x.shape[0], 1)
    return loss_sum / n, correct.float() / n


def evaluate(model: nn.Module, split, loss_fn: LossFn = F.cross_entropy,
             keep: tuple[list, list] | None = None) -> dict[str, torch.Tensor]:
    """The losses and accuracies of both splits; the train and val logits go to ``keep`` when given."""
    tl, ta = loss_acc(model, split.train_x, split.train_y, loss_fn, keep and keep[0])
    vl, va = loss_acc(model, split.val_x, split.val_y, loss_fn, keep and keep[1])
    return {"train_loss": tl, "train_acc": ta, "val_loss": vl, "val_acc": va}


def _group_norms(prefix: str, named: list[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    if not named:
        return {}
    norms = torch._foreach_norm([t.detach() for _, t in named])
    sq: dict[str, torch.Tensor] = {}
    for (name, _), n in zip(named, norms, strict=True):
        g = param_group(name)
        sq[g] = sq[g] + n.float() ** 2 if g in sq else n.float() ** 2
    out = {prefix: torch.stack(list(sq.values())).sum().sqrt()}
    out.update({f"{prefix}.{g}": v.sqrt() for g, v in sorted(sq.items())})
    return out


def weight_norms(model: nn.Module) -> dict[str, torch.Tensor]:
    return _group_norms("weight_norm", list(model.named_parameters()))


def grad_norms(model: nn.Module) -> dict[str, torch.Tensor]:
    return _group_norms("grad_norm", [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None])


def effective(weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], lr: float) -> dict[str, torch.Tensor]:
    """Seed 000's effective gradient norm g·‖θ‖ (where grads are given) and effective lr η/‖θ‖²,
    overall and per group, from the outputs of weight_norms and grad_norms."""
    out: dict[str, torch.Tensor] = {}
    for key, wn in weights.items():
        suffix = key[len("weight_norm"):]
        out["eff_lr" + suffix] = lr / (wn * wn).clamp_min(1e-30)
        g = grads.get("grad_norm" + suffix)
        if g is not None:
            out["eff_grad_norm" + suffix] = g * wn
    return out


def mean_grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                   loss_fn: LossFn = F.cross_entropy) -> dict[str, torch.Tensor]:
    """Mean stochastic-gradient norm (seed 001's sharpness measure): the training split cut into
    consecutive minibatches of batch_size (in split order, no RNG drawn), the norm of each one's
    gradient, averaged over minibatches; overall (``sgn``) and per group (``sgn.<group>``).
    Uses autograd.grad, so the parameters' .grad stay as they are."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    sums: dict[str, torch.Tensor] = {}
    batches = 0
    for i in range(0, x.shape[0], batch_size):
        with torch.enable_grad():
            loss = loss_fn(model(x[i:i + batch_size]).float(), y[i:i + batch_size])
            grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        norms = _group_norms("sgn", [(n, g if g is not None else torch.zeros_like(p))
                                     for (n, p), g in zip(named, grads, strict=True)])
        sums = {k: sums[k] + v if k in sums else v for k, v in norms.items()}
        batches += 1
    return {k: v / max(batches, 1) for k, v in sums.items()}


def to_host(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """One device-to-host transfer for a whole dict of 0-d tensors."""
    if not values:
        return {}
    keys = list(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys]).tolist()
    return dict(zip(keys, flat, strict=True))


def sgn_due(tc, step: int, grads: dict) -> bool:
    """Whether the evaluation after `step` measures sgn: every sgn_every-th one that has gradient norms."""
    return bool(grads) and bool(tc.sgn_every) and (step // tc.eval_every) % tc.sgn_every == 0


def eval_rows(measured: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], sgn: Callable[[], dict[str, torch.Tensor]],
              tc, step: int, wall: float, lrs: list[float], epochs: list[float]) -> list[dict]:
    """The metrics rows of K members (K = len(lrs); 1 for a single run) with one host sync: the one
    place an evaluation row is assembled, for trainer.Trainer and ensemble.Ensemble alike.

    measured: the losses, accuracies and weight norms; grads: the gradient norms (empty when the step
    did not ask for them); each value is () for a single run or (K,) for an ensemble. sgn() gives the
    mean gradient norms, called only when this evaluation measures them (sgn_due). The effective lr
    and gradient norm follow from those and each member's lr.
    """
    K = len(lrs)
    vals = dict(measured)
    weights = {k: v for k, v in measured.items() if k.startswith("weight_norm")}
    vals.update(grads)
    lr = lrs[0] if K == 1 else torch.tensor(lrs, device=next(iter(measured.values())).device)
    vals.update(effective(weights, grads, lr))
    if sgn_due(tc, step, grads):
        vals.update(sgn())
    keys = list(vals)
    host = torch.stack([vals[k].detach().float().reshape(-1).expand(K) for k in keys]).tolist()  # the one sync
    rows = []
    for k in range(K):
        row = {"step": step, "epoch": round(epochs[k], 3), "wall_s": round(wall, 3), "lr": lrs[k]}
        row.update({key: host[i][k] for i, key in enumerate(keys)})
        rows.append(row)
    return rows
