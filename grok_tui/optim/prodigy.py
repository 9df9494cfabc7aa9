"""Prodigy (Mishchenko & Defazio 2023), from ``prodigyopt``: Adam whose step size d is estimated.

The global ``lr`` is not used: Prodigy's lr is a multiplier of its own estimate, 1.0 as its authors
advise (the warm-up and cool-down still scale it). ``--prodigy-d-coef`` scales the estimate.
Weight decay is decoupled, as in AdamW.
"""

from __future__ import annotations

import contextlib
import io

from prodigyopt import Prodigy


def build(groups, o, dev):
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Using decoupled weight decay"
        return Prodigy(groups, lr=1.0, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay,
                       decouple=True, d_coef=o.prodigy_d_coef)

