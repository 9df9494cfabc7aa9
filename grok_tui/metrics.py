"""Evaluation and geometry metrics, all returned as device tensors (the caller syncs once per eval).

Names in ``metrics.jsonl`` (see README, "Metrics"):
  train_loss, train_acc, val_loss, val_acc   one no-grad pass over the whole split
  weight_norm, weight_norm.<group>           L2 norm of all parameters / of a group
  grad_norm, grad_norm.<group>               L2 norm of the last minibatch gradient
Groups: embed, attn, mlp, norm, head (see model.param_group).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .model import param_group

EVAL_CHUNK = 16384


@torch.no_grad()
def loss_acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy over (x, y), in chunks; two 0-d tensors."""
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, x.shape[0], EVAL_CHUNK):
        logits = model(x[i:i + EVAL_CHUNK]).float()
        yy = y[i:i + EVAL_CHUNK]
        loss_sum += F.cross_entropy(logits, yy, reduction="sum")
        correct += (logits.argmax(-1) == yy).sum()
    n = max(x.shape[0], 1)
    return loss_sum / n, correct.float() / n


def evaluate(model: nn.Module, split) -> dict[str, torch.Tensor]:
    tl, ta = loss_acc(model, split.train_x, split.train_y)
    vl, va = loss_acc(model, split.val_x, split.val_y)
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


def to_host(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """One device-to-host transfer for a whole dict of 0-d tensors."""
    if not values:
        return {}
    keys = list(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys]).tolist()
    return dict(zip(keys, flat, strict=True))
