"""Prodigy (Mishchenko & Defazio 2023), from ``prodigyopt``: Adam whose step size d is estimated.

The global ``lr`` is not used: Prodigy's lr is a multiplier of its own estimate, 1.0 as its authors
advise (the warm-up and cool-down still scale it). ``--prodigy-d-coef`` scales the estimate.
Weight decay is decoupled, as in AdamW.

prodigyopt's step reads its estimate's numerator and denominator with ``.item()`` on every step, which
makes a GPU wait for the host. ``SyncFreeProdigy`` is the same algorithm, operation by operation, with
those scalars (d, d_max, the numerator, the denominator) kept as float64 tensors on the device; they
are written back into the param groups as numbers only when the state is saved (a checkpoint, where
the loop syncs anyway), so checkpoints are prodigyopt's.
"""

from __future__ import annotations

import contextlib
import io
import math

import torch
from prodigyopt import Prodigy

_SCALARS = ("d", "d_max", "d_numerator", "d_denom", "d_hat")


class SyncFreeProdigy(Prodigy):
    def __init__(self, *args, **kwargs):
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Using decoupled weight decay"
            super().__init__(*args, **kwargs)
        self._from_groups()

    def _from_groups(self) -> None:
        g = self.param_groups[0]
        dev = g["params"][0].device
        self._t = {k: torch.tensor(float(g.get(k, 0.0)), dtype=torch.float64, device=dev) for k in _SCALARS}

    def _to_groups(self) -> None:
        values = torch.stack([self._t[k] for k in _SCALARS]).tolist()  # one sync, at save time only
        for g in self.param_groups:
            g.update(zip(_SCALARS, values, strict=True))

    def state_dict(self):
        self._to_groups()
        return super().state_dict()

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self._from_groups()

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        g0 = self.param_groups[0]
        beta1, beta2 = g0["betas"]
        beta3 = g0["beta3"] if g0["beta3"] is not None else math.sqrt(beta2)
        k, lr = g0["k"], max(g["lr"] for g in self.param_groups)
        bias_correction = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1)) if g0["use_bias_correction"] else 1
        t = self._t
        d = t["d"]
        dlr = d * (lr * bias_correction)
        d_numerator = t["d_numerator"] * beta3
        delta = torch.zeros_like(d)
        d_denom = torch.zeros_like(d)
        params = []
        for group in self.param_groups:
            decay, d0, slice_p = group["weight_decay"], group["d0"], group["slice_p"]
            if group["lr"] not in (lr, 0.0):
                raise RuntimeError("Setting different lr values in different parameter groups is only supported "
                                   "for values of 0")
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if decay != 0 and not group["decouple"]:
                    grad.add_(p, alpha=decay)
                state = self.state[p]
                if "step" not in state:
                    state["step"] = 0
                    state["s"] = torch.zeros_like(p.flatten()[::slice_p]).detach()
                    state["p0"] = p.flatten()[::slice_p].detach().clone()  # prodigyopt keeps a 0 for an all-zero p
                    if beta1 > 0:
                        state["exp_avg"] = torch.zeros_like(p).detach()
                    state["exp_avg_sq"] = torch.zeros_like(p).detach()
                params.append((group, p, grad, state))
                if group["lr"] > 0.0:
                    sliced = grad.flatten()[::slice_p]
                    delta += (d / d0) * dlr * torch.dot(sliced, state["p0"] - p.flatten()[::slice_p])
                    if beta1 > 0:
                        state["exp_avg"].mul_(beta1).add_(grad * (d * (1 - beta1)))
                    state["exp_avg_sq"].mul_(beta2).add_(grad * grad * (d * d * (1 - beta2)))
                    state["s"].mul_(beta3).add_(sliced * ((d / d0) * (d if group["safeguard_warmup"] else dlr)))
                    d_denom += state["s"].abs().sum()
        progress = d_denom > 0  # prodigyopt returns here without a step when no gradient moved s
        if lr > 0.0:
            numerator = d_numerator + delta
            d_hat = torch.where(progress, g0["d_coef"] * numerator / d_denom.clamp_min(1e-300), d)
            new_d = torch.where(d == g0["d0"], torch.maximum(d, d_hat), d)
            d_max = torch.maximum(t["d_max"], d_hat)
            new_d = torch.minimum(d_max, new_d * g0["growth_rate"])
            t["d"] = torch.where(progress, new_d, d)
            t["d_max"] = torch.where(progress, d_max, t["d_max"])
            t["d_numerator"] = torch.where(progress, numerator, t["d_numerator"])
            t["d_denom"] = torch.where(progress, d_denom, t["d_denom"])
            t["d_hat"] = torch.where(progress, d_hat, t["d_hat"])
        d, step_lr = t["d"], torch.where(progress, dlr, torch.zeros_like(dlr))
        for group, p, grad, state in params:
            state["step"] += 1
            denom = state["exp_avg_sq"].sqrt().add_(d * group["eps"])
            if group["weight_decay"] != 0 and group["decouple"]:
                p.sub_(p * (group["weight_decay"] * step_lr))
            if beta1 > 0:
                p.sub_(state["exp_avg"] / denom * step_lr)
            else:
                p.sub_(grad / denom * (step_lr * d))
        for group in self.param_groups:
            group["k"] = k + 1
        return loss


def build(groups, o, dev):
    return SyncFreeProdigy(groups, lr=1.0, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay,
                           decouple=True, d_coef=o.prodigy_d_coef)
