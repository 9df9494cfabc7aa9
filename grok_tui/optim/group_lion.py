"""Group-adaptive Lion (seed 000's plan): Lion's step size, adapted per parameter group, not per weight.

Lion moves every weight by exactly η (the sign of the interpolated momentum c), which amounts to
choosing a learning rate η / |c_i| for each weight i. Seed 000 proposes choosing one learning rate
per group instead. Here a group is one parameter tensor (each weight matrix, bias or embedding
table: the unit under which a normalised layer is scale-invariant), and the sign is replaced by a
division by the group's root mean square:

    c_G = β1 m_G + (1 − β1) g_G
    θ_G <- θ_G − η (c_G / rms(c_G) + λ θ_G),    rms(c_G) = ‖c_G‖ / sqrt(n_G)
    m_G <- β2 m_G + (1 − β2) g_G

so the group's learning rate is η / rms(c_G). Like Lion, every step has RMS exactly η per weight
(the same lr and weight-decay scale as Lion) and does not depend on the gradient's scale, so for a
scale-invariant group the angular step is fixed by η and ‖θ_G‖ alone; unlike Lion, the direction
within a group is the momentum's own, not a per-weight re-weighting of it.
"""

from __future__ import annotations

import math

import torch


class GroupLion(torch.optim.Optimizer):
    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0,
                 eps: float = 1e-12):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, wd, (b1, b2), eps = group["lr"], group["weight_decay"], group["betas"], group["eps"]
            grads = [p.grad for p in params]
            for p in params:
                if "exp_avg" not in self.state[p]:
                    self.state[p]["exp_avg"] = torch.zeros_like(p)
            ms = [self.state[p]["exp_avg"] for p in params]
            cs = torch._foreach_lerp(grads, ms, b1)  # (1 − β1) g + β1 m
            norms = torch._foreach_norm(cs)
            if wd:
                torch._foreach_mul_(params, 1.0 - lr * wd)
            for p, c, n in zip(params, cs, norms, strict=True):
                p.sub_(c * (lr * math.sqrt(p.numel()) / (n + eps)))
            torch._foreach_lerp_(ms, grads, 1.0 - b2)
        return loss


def build(groups, o, dev):
    return GroupLion(groups, lr=o.lr, betas=(o.lion_beta1, o.lion_beta2), weight_decay=o.weight_decay)
