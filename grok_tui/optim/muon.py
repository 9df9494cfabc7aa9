"""Muon (Jordan et al. 2024) for the hidden weight matrices, AdamW for everything else.

As the Muon authors prescribe: the 2-D weights inside the blocks (attention qkv/proj, MLP fc/proj)
take ``torch.optim.Muon`` (momentum, then the update orthogonalised by Newton–Schulz iterations);
embeddings, biases, norms and the head take AdamW with the global lr, betas and eps. Both use the
decoupled weight decay ``weight_decay``.
"""

from __future__ import annotations

import torch

from grok_tui.optim import registry as optim
from grok_tui.optim.base import Composite, is_hidden_matrix


def _build(model, o, dev):
    hidden, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (hidden if is_hidden_matrix(name, p) else rest).append(p)
    parts = [torch.optim.Muon(hidden, lr=o.muon_lr, momentum=o.muon_momentum, weight_decay=o.weight_decay,
                              nesterov=True, ns_steps=o.muon_ns_steps)] if hidden else []
    if rest:
        parts.append(torch.optim.AdamW(rest, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                       weight_decay=o.weight_decay, **optim._fast(dev)))
    return Composite(parts)


def _validate(o) -> list[str]:
    errs = []
    if not hasattr(torch.optim, "Muon"):
        errs.append(f"muon needs torch >= 2.9 (torch.optim.Muon); this is torch {torch.__version__}.")
    if not o.muon_lr > 0:
        errs.append(f"muon lr must be positive, got {o.muon_lr}.")
    if not 0.0 <= o.muon_momentum < 1.0:
        errs.append(f"muon momentum must be in [0, 1), got {o.muon_momentum}.")
    if o.muon_ns_steps < 1:
        errs.append(f"muon ns steps must be at least 1, got {o.muon_ns_steps}.")
    if o.muon_lr * o.weight_decay >= 1.0:
        errs.append(f"muon lr * weight decay must be below 1, got {o.muon_lr * o.weight_decay}.")
    return errs


optim.register(optim.OptimizerSpec(
    "muon", _build, ("beta1", "beta2", "eps", "muon_lr", "muon_momentum", "muon_ns_steps"),
    "Muon (Newton–Schulz orthogonalised momentum) on the blocks' weight matrices, AdamW (--lr) on the rest",
    _validate, needs_model=True))
