"""Lion (Chen et al. 2023, seed 000's algorithm 2), from ``lion-pytorch``.

``c = β1 m + (1 − β1) g``; ``θ <- θ − η (sign(c) + λ θ)``; ``m <- β2 m + (1 − β2) g``. lion-pytorch's
step is exactly this: ``θ *= 1 − η λ``, then ``θ −= η sign(c)``, then the momentum update.
"""

from __future__ import annotations

from lion_pytorch import Lion


def build(groups, o, dev):
    return Lion(groups, lr=o.lr, betas=(o.lion_beta1, o.lion_beta2), weight_decay=o.weight_decay)
