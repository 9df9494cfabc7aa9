"""Automatic Gradient Descent (Bernstein et al. 2023, seed 003), written here (no maintained package).

Every weight matrix W_k (d_k × d_{k-1} as a map; an embedding table is the transpose of its map) is
one "layer" of the algorithm, L of them:

    G = (1/L) Σ_k ‖∇W_k‖_F · sqrt(d_k / d_{k-1})
    η = log((1 + sqrt(1 + 4G)) / 2)
    W_k <- W_k − (η / L) · sqrt(d_k / d_{k-1}) · ∇W_k / ‖∇W_k‖_F

with no learning rate (``--agd-gain`` multiplies η, default 1; the warm-up and cool-down scale it)
and no weight decay. Initialisation as the paper's ``initialise_weights``: each matrix becomes a
semi-orthogonal matrix scaled by sqrt(d_k / d_{k-1}); we take the polar factor U Vᵀ of the seeded
default init, which is deterministic in the run's seed and (for i.i.d. entries) uniformly
distributed. Biases and norm gains, which the paper's bias-free MLP lacks, take AdamW with the
global lr and weight decay.
"""

from __future__ import annotations

import math

import torch

from grok_tui.optim.base import Composite, fast


def _scale(name: str, p: torch.Tensor) -> float:
    d_out, d_in = p.shape
    if name.endswith("_emb.weight"):  # an embedding table stores its map transposed
        d_out, d_in = d_in, d_out
    return math.sqrt(d_out / d_in)


@torch.no_grad()
def orthogonal_init_(p: torch.Tensor, scale: float) -> None:
    u, _, vh = torch.linalg.svd(p.float(), full_matrices=False)
    p.copy_((u @ vh) * scale)


class AGD(torch.optim.Optimizer):
    def __init__(self, params, scales: list[float], gain: float = 1.0):
        super().__init__([{"params": list(params), "scales": list(scales)}], {"lr": gain})
        # the scales as device tensors, made once per set of parameters that have gradients: building
        # them at every step would be a blocking host-to-device copy (a sync on CUDA)
        self._scale_tensors: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}

    def _scales(self, gi: int, group: dict, present: tuple[int, ...], device: torch.device) -> torch.Tensor:
        key = (gi, present)
        if key not in self._scale_tensors:
            self._scale_tensors[key] = torch.tensor([group["scales"][i] for i in present], device=device)
        return self._scale_tensors[key]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            present = tuple(i for i, p in enumerate(group["params"]) if p.grad is not None)
            if not present:
                continue
            params = [group["params"][i] for i in present]
            scales = self._scales(gi, group, present, params[0].device)
            norms = torch.stack(torch._foreach_norm([p.grad for p in params])).float()
            n_layers = len(group["params"])
            g_summary = (norms * scales).sum() / n_layers
            eta = torch.log((1 + torch.sqrt(1 + 4 * g_summary)) / 2)
            coef = -(group["lr"] * eta / n_layers) * scales / norms.clamp_min(1e-30)
            for i, p in enumerate(params):
                p.add_(p.grad * coef[i].to(p.dtype))
        return loss


def build(model, o, dev):
    """AGD on the weight matrices (orthogonalised in place), AdamW on the rest."""
    mats, scales, rest = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim == 2:
            s = _scale(name, p)
            orthogonal_init_(p, s)
            mats.append(p)
            scales.append(s)
        else:
            rest.append(p)
    parts: list = [AGD(mats, scales, o.agd_gain)] if mats else []
    if rest:
        parts.append(torch.optim.AdamW(rest, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                       weight_decay=o.weight_decay, **fast(dev)))
    return Composite(parts)

