"""Muon (Jordan et al. 2024) for the hidden weight matrices, AdamW for everything else.

As the Muon authors prescribe: the 2-D weights inside the blocks (attention qkv/proj, MLP fc/proj)
take ``torch.optim.Muon`` (momentum, then the update orthogonalised by Newton–Schulz iterations);
embeddings, biases, norms and the head take AdamW with the global lr, betas and eps. Both use the
decoupled weight decay ``weight_decay``.
"""

from __future__ import annotations

import torch

from grok_tui.optim.base import Composite, fast, is_hidden_matrix


def build(model, o, dev):
    hidden, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (hidden if is_hidden_matrix(name, p) else rest).append(p)
    parts = [torch.optim.Muon(hidden, lr=o.muon_lr, momentum=o.muon_momentum, weight_decay=o.weight_decay,
                              nesterov=True, ns_steps=o.muon_ns_steps)] if hidden else []
    if rest:
        parts.append(torch.optim.AdamW(rest, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                       weight_decay=o.weight_decay, **fast(dev)))
    return Composite(parts)

