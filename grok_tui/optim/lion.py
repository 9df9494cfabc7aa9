"""Lion (Chen et al. 2023, seed 000's algorithm 2), from ``lion-pytorch``.

``c = β1 m + (1 − β1) g``; ``θ <- θ − η (sign(c) + λ θ)``; ``m <- β2 m + (1 − β2) g``. lion-pytorch's
step is exactly this: ``θ *= 1 − η λ``, then ``θ −= η sign(c)``, then the momentum update.
"""

from __future__ import annotations

from lion_pytorch import Lion

from grok_tui.optim import registry as optim


def validate_betas(o) -> list[str]:
    return [f"{name} must be in [0, 1), got {getattr(o, name)}."
            for name in ("lion_beta1", "lion_beta2") if not 0.0 <= getattr(o, name) < 1.0]


def validate(o) -> list[str]:
    errs = validate_betas(o)
    if o.lr * o.weight_decay >= 1.0:
        errs.append(f"lr * weight decay must be below 1 for Lion (θ shrinks by 1 − lr·wd), got {o.lr * o.weight_decay}.")
    return errs


optim.register(optim.OptimizerSpec(
    "lion",
    lambda groups, o, dev: Lion(groups, lr=o.lr, betas=(o.lion_beta1, o.lion_beta2), weight_decay=o.weight_decay),
    ("lion_beta1", "lion_beta2"),
    "Lion (Chen et al. 2023): sign of the interpolated momentum, decoupled weight decay; "
    "takes a 3-10x smaller lr and a larger weight decay than AdamW",
    validate))
