"""The optimizers by name: builders for the names of ``spec/optimizers.py``, the gradient filters that
wrap any of them, and the learning-rate schedule.

A builder is ``(param_groups, OptimConfig, device) -> Optimizer``, or ``(model, OptimConfig, device)``
for the optimizers whose spec says ``needs_model``. The zoo lives one module per family (lion,
group_lion, prodigy, schedule_free, muon, agd, orthograd); they know nothing of this registry. Two
gradient filters wrap any optimizer: Grokfast (``--grokfast-lambda`` > 0) and ⊥Grad (``--orthograd``);
Grokfast filters first, the projection comes last. A new optimizer is a spec in ``spec/optimizers.py``
and a builder here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from grok_tui.optim import agd, group_lion, lion, muon, orthograd, prodigy, schedule_free
from grok_tui.optim.base import fast
from grok_tui.optim.grokfast import Grokfast
from grok_tui.optim.orthograd import OrthoGrad
from grok_tui.spec.optimizers import OPTIMIZERS

Builder = Callable[..., torch.optim.Optimizer]


def _adamw(groups, o, dev):
    return torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay,
                             **fast(dev))


def _adam(groups, o, dev):
    return torch.optim.Adam(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay,
                            **fast(dev))


def _sgd(groups, o, dev):
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                           weight_decay=o.weight_decay, **fast(dev))


BUILDERS: dict[str, Builder] = {
    "adamw": _adamw, "adam": _adam, "sgd": _sgd, "lion": lion.build, "glion": group_lion.build,
    "prodigy": prodigy.build, "sfadamw": schedule_free.build, "muon": muon.build, "agd": agd.build,
    "orthoadamw": orthograd.build,
}


def wrap(opt, o):
    """The gradient filters the config asks for, around opt."""
    if o.orthograd and not isinstance(opt, OrthoGrad):
        opt = OrthoGrad(opt)
    if o.grokfast_lambda > 0:
        opt = Grokfast(opt, o.grokfast_alpha, o.grokfast_lambda)
    return opt


def build(model: nn.Module, o, device: torch.device | None = None) -> torch.optim.Optimizer:
    spec = OPTIMIZERS[o.optimizer]
    make = BUILDERS[o.optimizer]
    device = device or next(model.parameters()).device
    if spec.needs_model:
        opt = make(model, o, device)
    else:
        opt = make([{"params": [p for p in model.parameters() if p.requires_grad]}], o, device)
    return wrap(opt, o)


def lr_factor(o, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak lr for the step about to be taken (0-based).

    Linear warm-up reaches the peak after ``warmup_steps`` steps; the cool-down, if any, takes the lr
    from the peak to 0 over the last ``cooldown_steps`` steps, linearly or along a half cosine.
    """
    warm, cool, kind = o.warmup_steps, o.cooldown_steps, o.cooldown

    def factor(step: int) -> float:
        f = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
        if kind != "none" and cool > 0 and step >= total_steps - cool:
            left = (total_steps - step) / cool  # in (0, 1]
            f *= left if kind == "linear" else 0.5 * (1.0 - math.cos(math.pi * left))
        return f

    return factor


def lr_table(optims: list, total_steps: int) -> torch.Tensor:
    """The scheduled lr of every step and member, (total_steps, K) float64 on the host: lr_factor's
    schedule of each member times its peak lr, built with tensor ops (no loop over steps)."""
    def col(values: list) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64).view(1, -1)

    s = torch.arange(total_steps, dtype=torch.float64).view(-1, 1)
    peak, warm = col([o.lr for o in optims]), col([o.warmup_steps for o in optims])
    cool = col([o.cooldown_steps if o.cooldown != "none" else 0 for o in optims])
    linear = torch.tensor([o.cooldown == "linear" for o in optims]).view(1, -1)
    f = torch.where(warm > 0, ((s + 1) / warm.clamp_min(1)).clamp(max=1.0), torch.ones_like(s))
    left = (total_steps - s) / cool.clamp_min(1)  # in (0, 1] within the cool-down
    decay = torch.where(linear, left, 0.5 * (1.0 - torch.cos(math.pi * left)))
    f = torch.where((cool > 0) & (s >= total_steps - cool), f * decay, f)
    return peak * f
