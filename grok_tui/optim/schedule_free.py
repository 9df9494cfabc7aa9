"""Schedule-Free AdamW (Defazio et al. 2024), from ``schedulefree``.

It keeps two sequences: gradients are taken at y (train mode) and the model is evaluated at the
average x (eval mode). The trainer calls ``eval()`` before every evaluation and checkpoint and
``train()`` before every step, so metrics and checkpoints hold x and a resume continues from it.
"""

from __future__ import annotations

from schedulefree import AdamWScheduleFree


def build(groups, o, dev):
    opt = AdamWScheduleFree(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay,
                            warmup_steps=0)  # the trainer's schedule does the warm-up
    opt.train()
    return opt

