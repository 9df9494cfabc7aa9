"""Training losses: cross-entropy over softmax, or over StableMax (Prieto et al. 2025).

StableMax replaces exp in softmax by ``s(x) = x + 1`` for x >= 0 and ``1 / (1 − x)`` for x < 0:
``StableMax(x)_i = s(x_i) / Σ_j s(x_j)``. s grows linearly rather than exponentially, so the
probabilities do not round to exactly 0 or 1 in float32 ("softmax collapse") when the logits grow,
and training without weight decay keeps a gradient signal. ``argmax`` is unchanged (s is
increasing), so accuracies mean the same under either loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("ce", "stablemax")


def log_stablemax(logits: torch.Tensor) -> torch.Tensor:
    x = logits.float()
    log_s = torch.where(x >= 0, torch.log1p(x.clamp_min(0)), -torch.log1p(-x.clamp_max(0)))
    return log_s - torch.logsumexp(log_s, dim=-1, keepdim=True)


def stablemax_cross_entropy(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.nll_loss(log_stablemax(logits), y, reduction=reduction)


def get(name: str) -> Callable[..., torch.Tensor]:
    """The loss `(logits, targets, reduction="mean") -> tensor` called `name` ("ce" or "stablemax")."""
    if name == "ce":
        return F.cross_entropy
    if name == "stablemax":
        return stablemax_cross_entropy
    raise ValueError(f"unknown loss '{name}' (known: {', '.join(LOSSES)}).")
