"""Grokfast (Lee et al. 2024, "Grokfast: Accelerated Grokking by Amplifying Slow Gradients").

The EMA filter of the paper's ``gradfilter_ema``: ``ema <- alpha * ema + (1 - alpha) * g`` (the EMA
starts at the first gradient), then ``g <- g + lambda * ema``; the wrapped optimizer steps with the
filtered gradient. Usable with every optimizer: ``--grokfast-lambda`` > 0 switches it on.
"""

from __future__ import annotations

import torch

from grok_tui.optim.base import GradFilter


class Grokfast(GradFilter):
    def __init__(self, inner, alpha: float, lamb: float):
        super().__init__(inner)
        self.alpha, self.lamb = alpha, lamb
        self.ema: dict[torch.Tensor, torch.Tensor] = {}

    def filter_state(self) -> dict[str, dict[torch.Tensor, torch.Tensor]]:
        return {"grokfast_ema": self.ema}

    def filter(self, params: list[torch.Tensor]) -> None:
        old = [p for p in params if p in self.ema]  # dict lookups hash tensors by identity
        for p in params:
            if p not in self.ema:
                self.ema[p] = p.grad.detach().clone()
        if old:
            emas = [self.ema[p] for p in old]
            torch._foreach_lerp_(emas, [p.grad for p in old], 1.0 - self.alpha)
        torch._foreach_add_([p.grad for p in params], [self.ema[p] for p in params], alpha=self.lamb)
