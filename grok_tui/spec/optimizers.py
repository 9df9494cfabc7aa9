"""What the optimizers are, apart from how they are built: name, the config fields each one reads, a line
of help, a validator, and whether its builder needs the model. No torch: the CLI's `optimizers`, the
TUI's form and config validation read this; ``optim/registry.py`` maps the same names to builders.

A validator takes the ``OptimConfig`` and returns one sentence per problem (empty when usable).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

COMMON_FIELDS = ("lr", "weight_decay", "warmup_steps", "cooldown", "cooldown_steps")
ADAM_FIELDS = ("beta1", "beta2", "eps")
LION_FIELDS = ("lion_beta1", "lion_beta2")


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    fields: tuple[str, ...]  # OptimConfig fields it reads besides COMMON_FIELDS
    help: str
    validate: Callable[[object], list[str]] | None = None
    # Builders that need the model itself (e.g. to split parameters by shape) set this.
    needs_model: bool = False


# --- validators --------------------------------------------------------------------------------

def _lion(o) -> list[str]:
    errs = [f"{name} must be in [0, 1), got {getattr(o, name)}."
            for name in LION_FIELDS if not 0.0 <= getattr(o, name) < 1.0]
    if o.lr * o.weight_decay >= 1.0:
        errs.append(f"lr * weight decay must be below 1 for Lion (θ shrinks by 1 − lr·wd), got {o.lr * o.weight_decay}.")
    return errs


def _prodigy(o) -> list[str]:
    ok = 0 < o.prodigy_d_coef < float("inf")
    return [] if ok else [f"prodigy d coef must be a positive number, got {o.prodigy_d_coef}."]


def _agd(o) -> list[str]:
    return [] if 0 < o.agd_gain < float("inf") else [f"agd gain must be a positive number, got {o.agd_gain}."]


MUON_TORCH = (2, 9)  # torch.optim.Muon appeared in torch 2.9


def torch_version() -> str | None:
    """The installed torch's version, read from its package metadata (torch is not imported)."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0])[:2])


def _muon(o) -> list[str]:
    errs = []
    version = torch_version()
    if version is None or _version_tuple(version) < MUON_TORCH:
        errs.append(f"muon needs torch >= {'.'.join(map(str, MUON_TORCH))} (torch.optim.Muon); "
                    f"this is torch {version or 'missing'}.")
    if not 0 < o.muon_lr < float("inf"):
        errs.append(f"muon lr must be a positive number, got {o.muon_lr}.")
    if not 0.0 <= o.muon_momentum < 1.0:
        errs.append(f"muon momentum must be in [0, 1), got {o.muon_momentum}.")
    if not 1 <= o.muon_ns_steps <= 100:
        errs.append(f"muon ns steps must be in [1, 100], got {o.muon_ns_steps}.")
    if o.muon_lr * o.weight_decay >= 1.0:
        errs.append(f"muon lr * weight decay must be below 1, got {o.muon_lr * o.weight_decay}.")
    return errs


# --- the optimizers ----------------------------------------------------------------------------

OPTIMIZERS: dict[str, OptimizerSpec] = {spec.name: spec for spec in (
    OptimizerSpec("adamw", ADAM_FIELDS, "Adam with decoupled weight decay (Loshchilov & Hutter)"),
    OptimizerSpec("adam", ADAM_FIELDS, "Adam; weight decay is an L2 term added to the gradient"),
    OptimizerSpec("sgd", ("momentum", "nesterov"),
                  "stochastic gradient descent, optional (Nesterov) momentum; L2 weight decay"),
    OptimizerSpec("lion", LION_FIELDS,
                  "Lion (Chen et al. 2023): sign of the interpolated momentum, decoupled weight decay; "
                  "takes a 3-10x smaller lr and a larger weight decay than AdamW", _lion),
    OptimizerSpec("glion", LION_FIELDS,
                  "group-adaptive Lion (seed 000's plan): Lion with one adaptive lr per parameter tensor, "
                  "c / rms(c) in place of sign(c)", _lion),
    OptimizerSpec("prodigy", (*ADAM_FIELDS, "prodigy_d_coef"),
                  "Prodigy (Mishchenko & Defazio): Adam with an estimated step size; ignores --lr "
                  "(scale with --prodigy-d-coef)", _prodigy),
    OptimizerSpec("sfadamw", ADAM_FIELDS,
                  "Schedule-Free AdamW (Defazio et al.): no lr decay needed; evaluated at the averaged weights"),
    OptimizerSpec("muon", (*ADAM_FIELDS, "muon_lr", "muon_momentum", "muon_ns_steps"),
                  "Muon (Newton–Schulz orthogonalised momentum) on the blocks' weight matrices, AdamW (--lr) "
                  "on the rest", _muon, needs_model=True),
    OptimizerSpec("agd", (*ADAM_FIELDS, "agd_gain"),
                  "Automatic Gradient Descent (Bernstein et al.): no lr for the weight matrices (orthogonal "
                  "init, step from the gradient summary); AdamW (--lr, --weight-decay) for biases and norms",
                  _agd, needs_model=True),
    OptimizerSpec("orthoadamw", ADAM_FIELDS,
                  "⊥AdamW (Prieto et al. 2025): AdamW on the gradient projected orthogonal to each weight "
                  "tensor; pair with --loss stablemax and --weight-decay 0"),
)}


def validate(o) -> list[str]:
    """The chosen optimizer's own problems with the OptimConfig `o` (unknown names are config's to say)."""
    spec = OPTIMIZERS.get(o.optimizer)
    return spec.validate(o) if spec is not None and spec.validate is not None else []
