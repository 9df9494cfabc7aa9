"""The ensemble's optimizer: AdamW/Adam or SGD for K members at once on (K, P) tensors (see ensemble.py)."""

from __future__ import annotations

import torch

from grok_tui.errors import ConfigError
from grok_tui.spec.config import Config

# Optimizers with a vectorised step here; others run member by member (see sweep.py).
VECTORISED = {"adamw": "adam", "adam": "adam", "sgd": "sgd"}


def family(cfg: Config) -> str | None:
    """The vectorised optimizer family of a config, or None when it must run alone (an optimizer
    without a vectorised step here, or a gradient filter such as Grokfast or ⊥Grad around it)."""
    o = cfg.optim
    if getattr(o, "grokfast_lambda", 0.0) > 0 or getattr(o, "orthograd", False):
        return None
    return VECTORISED.get(o.optimizer)


# --- the vectorised optimizer -----------------------------------------------------------------

class VecOptimizer:
    """AdamW / Adam (one family: decoupled or L2 decay per member) or SGD with momentum, on (K, P).

    Follows torch.optim's foreach implementations operation by operation, with per-member
    hyperparameters as (K, 1) tensors; scalars the torch version computes in float64 on the host are
    computed here in float64 on the device and rounded to float32, as torch rounds them.
    """

    def __init__(self, cfgs: list[Config], flat: torch.Tensor):
        kinds = {family(c) for c in cfgs}
        if len(kinds) != 1 or None in kinds:
            raise ConfigError("an ensemble needs members of one optimizer family (adam/adamw or sgd).")
        self.kind = kinds.pop()
        dev = flat.device

        def col(values, dtype=torch.float64):
            return torch.tensor(values, dtype=dtype, device=dev).view(-1, 1)

        o = [c.optim for c in cfgs]
        decoupled = [c.optimizer == "adamw" for c in o]
        self.wd_dec = col([x.weight_decay if d else 0.0 for x, d in zip(o, decoupled, strict=True)])
        self.wd_l2 = col([0.0 if d else x.weight_decay for x, d in zip(o, decoupled, strict=True)]).float()
        self.any_dec = any(d and x.weight_decay for x, d in zip(o, decoupled, strict=True))
        self.any_l2 = any(not d and x.weight_decay for x, d in zip(o, decoupled, strict=True))
        self.beta1, self.beta2 = col([x.beta1 for x in o]), col([x.beta2 for x in o])
        self.one_m_b1, self.one_m_b2 = (1 - self.beta1).float(), (1 - self.beta2).float()
        self.b2_32 = self.beta2.float()
        self.eps = col([x.eps for x in o]).float()
        self.momentum = col([x.momentum for x in o]).float()
        self.nesterov = col([x.nesterov for x in o], torch.bool)
        self.any_momentum = any(x.momentum for x in o)
        self.any_nesterov = any(x.nesterov for x in o)
        self.steps = 0
        if self.kind == "adam":
            self.exp_avg, self.exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
        else:
            self.buf: torch.Tensor | None = None
        # AdamW/Adam on CPU or CUDA: torch's fused kernels (a few element-wise passes over (K, P) in
        # temporaries cost more than the model's matmuls on the CPU); elsewhere the ops below.
        self.fused = self._fused_groups(cfgs, dev)
        self.fused_steps = [torch.zeros((), dtype=torch.float32, device=dev) for _ in cfgs]

    def _fused_groups(self, cfgs: list[Config], device: torch.device) -> list[tuple[list[int], dict]] | None:
        """Members with equal Adam-family hyperparameters and lr schedule, for torch's fused kernels
        (one call per group and step; the same kernel a single run uses on CPU and CUDA)."""
        if self.kind != "adam" or device.type not in ("cpu", "cuda") or not hasattr(torch, "_fused_adamw_"):
            return None
        groups: dict[tuple, list[int]] = {}
        for k, c in enumerate(cfgs):
            o = c.optim
            key = (o.optimizer == "adamw", o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.warmup_steps,
                   o.cooldown, o.cooldown_steps, c.train.steps)
            groups.setdefault(key, []).append(k)
        return [(ks, {"decoupled": key[0], "beta1": key[2], "beta2": key[3], "eps": key[4], "weight_decay": key[5]})
                for key, ks in groups.items()]

    @torch.no_grad()
    def _fused_step(self, p: torch.Tensor, g: torch.Tensor, lr_host) -> None:
        for ks, h in self.fused:
            steps = [self.fused_steps[k] for k in ks]
            torch._foreach_add_(steps, 1)
            fn = torch._fused_adamw_ if h["decoupled"] else torch._fused_adam_
            fn([p[k] for k in ks], [g[k] for k in ks], [self.exp_avg[k] for k in ks],
               [self.exp_avg_sq[k] for k in ks], [], steps, amsgrad=False, lr=float(lr_host[ks[0]]),
               beta1=h["beta1"], beta2=h["beta2"], weight_decay=h["weight_decay"], eps=h["eps"], maximize=False,
               grad_scale=None, found_inf=None)

    @torch.no_grad()
    def step(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor, lr_host=None) -> None:
        """One step for every member; lr is (K, 1) float64 (the scheduled lr of each member), lr_host
        the same K values on the host (used by the fused path)."""
        self.steps += 1
        if self.fused is not None and lr_host is not None:
            self._fused_step(p, g.contiguous(), lr_host)
            return
        if self.kind == "sgd":
            if self.any_l2:
                g = g + self.wd_l2 * p
            if self.any_momentum:
                if self.buf is None:
                    self.buf = g.clone()
                else:
                    self.buf.mul_(self.momentum).add_(g)
                g = torch.where(self.nesterov, g + self.momentum * self.buf, self.buf) if self.any_nesterov \
                    else self.buf
            p.sub_(g * lr.float())
            return
        if self.any_dec:
            p.mul_((1 - lr * self.wd_dec).float())
        if self.any_l2:
            g = g + self.wd_l2 * p
        self.exp_avg.lerp_(g, self.one_m_b1)
        self.exp_avg_sq.mul_(self.b2_32).add_(g * g * self.one_m_b2)
        bc1 = 1 - self.beta1 ** self.steps
        bc2_sqrt = (1 - self.beta2 ** self.steps).sqrt().float()
        step_size = (lr / bc1).float()
        denom = self.exp_avg_sq.sqrt().div_(bc2_sqrt).add_(self.eps)
        p.sub_(self.exp_avg.div(denom).mul_(step_size))

    def member_state(self, k: int) -> dict[str, torch.Tensor] | None:
        """Member k's state as flat (P,) tensors under torch.optim's names (None: stateless)."""
        if self.kind == "adam":
            return {"exp_avg": self.exp_avg[k], "exp_avg_sq": self.exp_avg_sq[k]}
        if self.any_momentum and self.buf is not None and float(self.momentum[k]) != 0.0:
            return {"momentum_buffer": self.buf[k]}
        return None
