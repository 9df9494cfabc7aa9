"""The optimizer zoo, registered into ``grok_tui.optim.OPTIMIZERS`` on import.

One module per family: lion, group_lion, prodigy, schedule_free, muon, agd, orthograd (⊥AdamW).
Two gradient filters wrap any of them (applied in ``optim.build``): ⊥Grad (``--orthograd``) and
Grokfast (``--grokfast-lambda`` > 0); Grokfast filters first, the projection comes last.
"""

from __future__ import annotations

from grok_tui.optim import agd, group_lion, lion, muon, prodigy, schedule_free  # noqa: F401  (registration)
from grok_tui.optim import registry as optim
from grok_tui.optim.grokfast import Grokfast
from grok_tui.optim.orthograd import OrthoGrad


def wrap(opt, o):
    if o.orthograd and not isinstance(opt, OrthoGrad):
        opt = OrthoGrad(opt)
    if o.grokfast_lambda > 0:
        opt = Grokfast(opt, o.grokfast_alpha, o.grokfast_lambda)
    return opt


optim.WRAPPERS.append(wrap)
