"""What a run is: its settings as plain dataclasses, each field with its help, and type-checked overrides.

Every field is also a command-line flag (``train_frac`` -> ``--train-frac``), so field names are
unique across sections. Presets are in presets.py, config files in tomlfile.py, validation in
checks.py, and resolve.py builds a run's config from all three.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any

import tomli_w

from grok_tui.errors import ConfigError
from grok_tui.spec import ops

SECTIONS = ("data", "model", "optim", "train")

# The milestones of a run: each is the first evaluation whose metric reaches the train setting
# <name>_threshold (memorized: train accuracy; grokked: validation accuracy).
MILESTONES = {"memorized": "train_acc", "grokked": "val_acc"}


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class DataConfig:
    op: str = setting("x/y", "operation: a short name (div) or its formula (x/y); see `grok-tui ops`")
    p: int = setting(97, "modulus p (prime where the operation needs an inverse)")
    train_frac: float = setting(0.5, "fraction of the table used for training, in (0, 1)")
    tokens: str = setting("aob=", "input format: 'ab' (2 tokens, seeds 001/004) or 'aob=' (4 tokens, Power et al.)",
                     ("ab", "aob="))
    data_seed: int | None = setting(None, "seed of the train/val split (default: the run's seed)")


@dataclass
class ModelConfig:
    layers: int = setting(2, "transformer layers")
    d_model: int = setting(128, "width of the residual stream")
    heads: int = setting(4, "attention heads (must divide d_model)")
    mlp_ratio: int = setting(4, "MLP hidden width as a multiple of d_model")
    norm: str = setting("layernorm", "normalization: layernorm or none (the seed-001 model has none)",
                   ("layernorm", "none"))
    scale_invariant: bool = setting(False, "scale-invariant variant (seed 000): a norm without gains after every "
                                      "linear map and a cosine head, so log p(y|x, Cθ) = log p(y|x, θ) "
                                      "for all C > 0 (norm is then ignored)")


@dataclass
class OptimConfig:
    optimizer: str = setting("adamw", "optimizer name; see `grok-tui optimizers`")
    lr: float = setting(1e-3, "peak learning rate")
    weight_decay: float = setting(1.0, "weight decay (decoupled for AdamW, L2 for Adam/SGD)")
    beta1: float = setting(0.9, "first-moment decay (Adam family)")
    beta2: float = setting(0.98, "second-moment decay (Adam family)")
    eps: float = setting(1e-8, "Adam epsilon")
    momentum: float = setting(0.0, "SGD momentum")
    nesterov: bool = setting(False, "SGD Nesterov momentum (needs momentum > 0)")
    warmup_steps: int = setting(10, "linear warm-up steps from 0 to lr")
    cooldown: str = setting("none", "decay over the last cooldown_steps: none, linear or cosine",
                       ("none", "linear", "cosine"))
    cooldown_steps: int = setting(0, "length of the cool-down at the end of the run")
    lion_beta1: float = setting(0.9, "Lion / group-Lion: interpolation of momentum and gradient for the update")
    lion_beta2: float = setting(0.99, "Lion / group-Lion: momentum decay")
    prodigy_d_coef: float = setting(1.0, "Prodigy: multiplier of the estimated step size")
    muon_lr: float = setting(0.02, "Muon: lr of the hidden weight matrices (the rest takes --lr with AdamW)")
    muon_momentum: float = setting(0.95, "Muon: momentum (Nesterov)")
    muon_ns_steps: int = setting(5, "Muon: Newton-Schulz iterations")
    agd_gain: float = setting(1.0, "AGD: multiplier of the automatic step size")
    grokfast_alpha: float = setting(0.98, "Grokfast: EMA decay of the gradient filter")
    grokfast_lambda: float = setting(0.0, "Grokfast: amplification of the slow gradient, g + lambda*EMA(g) (0: off; 2 in the paper)")
    orthograd: bool = setting(False, "project each gradient orthogonal to its weights before the optimizer step "
                                "(⊥Grad, Prieto et al. 2025; the optimizer 'orthoadamw' has it built in)")


@dataclass
class TrainConfig:
    steps: int = setting(30_000, "optimizer steps in the run")
    batch_size: int = setting(512, "minibatch size")
    eval_every: int = setting(100, "steps between full no-grad evaluations of train and val")
    checkpoint_every: int = setting(1000, "steps between checkpoints (0: only milestones and the end)")
    seed: int = setting(0, "seed of initialisation and data order (and of the split unless data_seed is set)")
    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    threads: int = setting(0, "CPU threads of the training process (0: torch's default, one per core; they spin "
                         "briefly, then sleep); the same curve needs the same number")
    compile: bool = setting(False, "torch.compile the training forward pass (pays off in long runs: 1.2x a "
                              "canonical CPU step after a compile of ~35 s, ~4 s once inductor's cache holds it; "
                              "falls back to eager if compiling fails)")
    precision: str = setting("fp32", "training matmuls: fp32, tf32 (CUDA's TensorFloat-32) or bf16 (autocast, on CUDA "
                                "and CPUs with bf16 units); evaluations stay fp32", ("fp32", "tf32", "bf16"))
    loss: str = setting("ce", "training loss: ce (softmax cross-entropy) or stablemax (Prieto et al. 2025)",
                   ("ce", "stablemax"))
    sgn_every: int = setting(10, "evaluations between measurements of the mean stochastic-gradient norm "
                            "(sgn; one gradient per training minibatch; 0: never)")
    measure_every: int = setting(1, "evaluations between progress measurements (the embedding's Fourier spectrum, "
                                "Gini, IPR, key frequencies, restricted/excluded loss: docs/metrics.md), "
                                "written to metrics.jsonl and progress.jsonl; 0: never")
    memorized_threshold: float = setting(0.99, "train accuracy that marks the 'memorized' milestone")
    grokked_threshold: float = setting(0.99, "val accuracy that marks the 'grokked' milestone")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def split_seed(self) -> int:
        return self.train.seed if self.data.data_seed is None else self.data.data_seed

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: {k: v for k, v in dataclasses.asdict(getattr(self, s)).items() if v is not None}
                for s in SECTIONS}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in SECTIONS:
            out.update(dataclasses.asdict(getattr(self, s)))
        return out


@dataclass(frozen=True)
class FieldSpec:
    section: str
    name: str
    type: type  # int, float, str or bool
    optional: bool
    default: Any
    help: str
    choices: tuple[str, ...] | None


def field_specs() -> dict[str, FieldSpec]:
    """Every config field by name (names are unique across sections). Built once: resolving the type
    hints cost ~4 ms, paid by every config read (a runs listing of 1,000 runs read 1,000 configs)."""
    return dict(_field_specs())


@functools.cache
def _field_specs() -> dict[str, FieldSpec]:
    specs: dict[str, FieldSpec] = {}
    for s in SECTIONS:
        cls = type(getattr(Config(), s))
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            t = hints[f.name]
            args = [a for a in typing.get_args(t) if a is not type(None)]
            optional = bool(typing.get_args(t)) and type(None) in typing.get_args(t)
            base = args[0] if optional else t
            specs[f.name] = FieldSpec(s, f.name, base, optional, f.default, f.metadata.get("help", ""),
                                      f.metadata.get("choices"))
    return specs


def coerce(spec: FieldSpec, value: Any, where: str) -> Any:
    if value is None and spec.optional:
        return None
    t = spec.type
    if t is bool:
        if isinstance(value, bool):
            return value
    elif t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif t is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{spec.name} {where}must be {t.__name__}, got {short_repr(value)}.")


def short_repr(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters (a sentence never quotes a whole file)."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= limit else text[:limit] + "..."


def apply_overrides(cfg: Config, values: dict[str, Any], where: str = "") -> Config:
    """Return a copy of cfg with the given fields replaced, each value type-checked."""
    specs = field_specs()
    cfg = _copy(cfg)
    for name, value in values.items():
        key = name.replace("-", "_")
        if key not in specs:
            raise ConfigError(f"unknown setting '{name}' {where}(known: {', '.join(sorted(specs))}).")
        spec = specs[key]
        value = coerce(spec, value, where)
        if key == "op":  # one name per operation, whichever spelling came in (a flag, a form, an old file)
            value = ops.canonical_op(value)
        setattr(getattr(cfg, spec.section), key, value)
    return cfg


def _copy(cfg: Config) -> Config:
    return Config(**{s: dataclasses.replace(getattr(cfg, s)) for s in SECTIONS})


def from_dict(raw: dict[str, Any], base: Config | None = None, where: str = "") -> Config:
    """Build a config from a TOML-shaped dict: sections [data] [model] [optim] [train] and/or flat keys."""
    flat: dict[str, Any] = {}
    specs = field_specs()
    for key, value in raw.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] {where}must be a table.")
            for k, v in value.items():
                if k not in specs or specs[k].section != key:
                    raise ConfigError(f"unknown key '{k}' in [{key}] {where}.".replace(" .", "."))
                flat[k] = v
        elif key == "preset":
            continue
        else:
            flat[key] = value
    return apply_overrides(base or Config(), flat, where)
