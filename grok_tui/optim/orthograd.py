"""⊥Grad and ⊥AdamW (Prieto et al. 2025, "Grokking at the edge of numerical stability").

Each parameter tensor's gradient loses its component along the weights and is rescaled to its old
norm: ``g_perp = g - (<θ, g> / <θ, θ>) θ``, ``g <- g_perp * ‖g‖ / ‖g_perp‖``, then the wrapped
optimizer steps. Without the radial component the update cannot grow the weights along themselves,
which is the "naive loss minimisation" direction that drives logits toward softmax collapse; with
StableMax (``--loss stablemax``) grokking then happens without weight decay.
"""

from __future__ import annotations

import torch

from grok_tui.optim.base import GradFilter, fast

TINY = 1e-30


class OrthoGrad(GradFilter):
    def filter(self, params: list[torch.Tensor]) -> None:
        for p in params:
            w, g = p.detach().reshape(-1), p.grad.reshape(-1)
            proj = torch.dot(w, g) / (torch.dot(w, w) + TINY)
            g_perp = g - proj * w
            p.grad.copy_((g_perp * (g.norm() / (g_perp.norm() + TINY))).view_as(p.grad))


def build(groups, o, dev):
    """⊥AdamW: AdamW behind the projection."""
    opt = torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                            weight_decay=o.weight_decay, **fast(dev))
    return OrthoGrad(opt)

