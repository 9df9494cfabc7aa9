"""Run configuration: plain dataclasses, TOML in and out, named presets, strict validation.

Precedence when a run is set up: preset (default ``canonical``) < config file < command-line flags.
Every field is also a command-line flag (``train_frac`` -> ``--train-frac``), so field names are
unique across sections. Validation returns one clear sentence per problem.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from grok_tui.errors import ConfigError
from grok_tui.spec import ops, optimizers

SECTIONS = ("data", "model", "optim", "train")


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class DataConfig:
    op: str = _f("x/y", "operation: a short name (div) or its formula (x/y); see `grok-tui ops`")
    p: int = _f(97, "modulus p (prime where the operation needs an inverse)")
    train_frac: float = _f(0.5, "fraction of the table used for training, in (0, 1)")
    tokens: str = _f("aob=", "input format: 'ab' (2 tokens, seeds 001/004) or 'aob=' (4 tokens, Power et al.)",
                     ("ab", "aob="))
    data_seed: int | None = _f(None, "seed of the train/val split (default: the run's seed)")


@dataclass
class ModelConfig:
    layers: int = _f(2, "transformer layers")
    d_model: int = _f(128, "width of the residual stream")
    heads: int = _f(4, "attention heads (must divide d_model)")
    mlp_ratio: int = _f(4, "MLP hidden width as a multiple of d_model")
    norm: str = _f("layernorm", "normalization: layernorm or none (the seed-001 model has none)",
                   ("layernorm", "none"))
    scale_invariant: bool = _f(False, "scale-invariant variant (seed 000): a norm without gains after every "
                                      "linear map and a cosine head, so log p(y|x, Cθ) = log p(y|x, θ) "
                                      "for all C > 0 (norm is then ignored)")


@dataclass
class OptimConfig:
    optimizer: str = _f("adamw", "optimizer name; see `grok-tui optimizers`")
    lr: float = _f(1e-3, "peak learning rate")
    weight_decay: float = _f(1.0, "weight decay (decoupled for AdamW, L2 for Adam/SGD)")
    beta1: float = _f(0.9, "first-moment decay (Adam family)")
    beta2: float = _f(0.98, "second-moment decay (Adam family)")
    eps: float = _f(1e-8, "Adam epsilon")
    momentum: float = _f(0.0, "SGD momentum")
    nesterov: bool = _f(False, "SGD Nesterov momentum (needs momentum > 0)")
    warmup_steps: int = _f(10, "linear warm-up steps from 0 to lr")
    cooldown: str = _f("none", "decay over the last cooldown_steps: none, linear or cosine",
                       ("none", "linear", "cosine"))
    cooldown_steps: int = _f(0, "length of the cool-down at the end of the run")
    lion_beta1: float = _f(0.9, "Lion / group-Lion: interpolation of momentum and gradient for the update")
    lion_beta2: float = _f(0.99, "Lion / group-Lion: momentum decay")
    prodigy_d_coef: float = _f(1.0, "Prodigy: multiplier of the estimated step size")
    muon_lr: float = _f(0.02, "Muon: lr of the hidden weight matrices (the rest takes --lr with AdamW)")
    muon_momentum: float = _f(0.95, "Muon: momentum (Nesterov)")
    muon_ns_steps: int = _f(5, "Muon: Newton-Schulz iterations")
    agd_gain: float = _f(1.0, "AGD: multiplier of the automatic step size")
    grokfast_alpha: float = _f(0.98, "Grokfast: EMA decay of the gradient filter")
    grokfast_lambda: float = _f(0.0, "Grokfast: amplification of the slow gradient, g + lambda*EMA(g) (0: off; 2 in the paper)")
    orthograd: bool = _f(False, "project each gradient orthogonal to its weights before the optimizer step "
                                "(⊥Grad, Prieto et al. 2025; the optimizer 'orthoadamw' has it built in)")


@dataclass
class TrainConfig:
    steps: int = _f(30_000, "optimizer steps in the run")
    batch_size: int = _f(512, "minibatch size")
    eval_every: int = _f(100, "steps between full no-grad evaluations of train and val")
    checkpoint_every: int = _f(1000, "steps between checkpoints (0: only milestones and the end)")
    seed: int = _f(0, "seed of initialisation and data order (and of the split unless data_seed is set)")
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    threads: int = _f(0, "CPU threads of the training process (0: torch's default, one per core; they spin "
                         "briefly, then sleep); the same curve needs the same number")
    compile: bool = _f(False, "torch.compile the training forward pass (pays off in long runs: 1.2x a "
                              "canonical CPU step after a compile of ~35 s, ~4 s once inductor's cache holds it; "
                              "falls back to eager if compiling fails)")
    precision: str = _f("fp32", "training matmuls: fp32, tf32 (CUDA's TensorFloat-32) or bf16 (autocast, on CUDA "
                                "and CPUs with bf16 units); evaluations stay fp32", ("fp32", "tf32", "bf16"))
    loss: str = _f("ce", "training loss: ce (softmax cross-entropy) or stablemax (Prieto et al. 2025)",
                   ("ce", "stablemax"))
    sgn_every: int = _f(10, "evaluations between measurements of the mean stochastic-gradient norm "
                            "(sgn; one gradient per training minibatch; 0: never)")
    memorized_threshold: float = _f(0.99, "train accuracy that marks the 'memorized' milestone")
    grokked_threshold: float = _f(0.99, "val accuracy that marks the 'grokked' milestone")


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
    """Every config field by name (names are unique across sections)."""
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


def _coerce(spec: FieldSpec, value: Any, where: str) -> Any:
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
        value = _coerce(spec, value, where)
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


MAX_TOML_BYTES = 1 << 20  # a config or sweep file is a few hundred bytes; 1 MiB is a wrong file


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The table in a TOML file; ConfigError (one sentence naming `what` and the path) when it cannot be.
    Only a regular file of at most 1 MiB is read (not /dev/zero, a FIFO or a terminal)."""
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{what} {path} is a directory.")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file.")
        if st.st_size > MAX_TOML_BYTES:
            raise ConfigError(f"{what} {path} is larger than 1 MiB ({st.st_size} bytes); it is not a config file.")
        with open(path, "rb") as f:
            data = f.read(MAX_TOML_BYTES + 1)
        if len(data) > MAX_TOML_BYTES:
            raise ConfigError(f"{what} {path} is larger than 1 MiB; it is not a config file.")
        return tomllib.loads(data.decode())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist.") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory.") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid TOML: {e}.") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} nests tables or arrays too deeply to be a config file.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text.") from None
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read: {e.strerror or e}.") from None


def load_toml(path: str | Path, base: Config | None = None) -> Config:
    raw = read_toml(path)
    if "preset" in raw and not isinstance(raw["preset"], str):
        raise ConfigError(f"preset in {path} must be a preset's name (text), got {raw['preset']!r}.")
    if base is None and "preset" in raw:
        base = preset(raw["preset"])
    return from_dict(raw, base, where=f"in {path} ")


# Named settings, each a diff against the defaults (= the canonical experiment).
PRESETS: dict[str, dict[str, Any]] = {
    # x/y mod 97, 50% train, 2-layer d=128 4-head transformer, AdamW lr 1e-3 wd 1 betas (0.9, 0.98).
    "canonical": {},
    # Seed 004 (the notebook): x*y, 40% train, 2-token input, AdamW, warm-up over 10 steps.
    "seed004": {"op": "x*y", "train_frac": 0.4, "tokens": "ab", "warmup_steps": 10, "steps": 10_000,
                "eval_every": 50},
    # Seed 001 (mode connectivity): x*y, 1-layer transformer without normalization, SGD lr 0.1 wd 1e-3.
    # 9409 * 0.5 / 512 -> 10 steps an epoch: a checkpoint every 100 epochs is every 1000 steps.
    "seed001": {"op": "x*y", "tokens": "ab", "layers": 1, "norm": "none", "optimizer": "sgd", "lr": 0.1,
                "weight_decay": 1e-3, "warmup_steps": 0, "steps": 30_000, "checkpoint_every": 1000},
    # The smallest setting that memorizes and then clearly groks on a 2-core CPU within about a minute.
    # Found by experiment (seeds 0-3): memorizes at step 240-260, groks (val acc >= 0.99) at
    # 1840-2700 and ends at val acc 1.0; about 10 s on 2 free CPU cores. Some seeds dip once after
    # grokking (val acc ~0.6 for a few hundred steps). lr 3e-3 groks earlier but dips for every seed.
    "smoke": {"op": "x+y", "p": 31, "train_frac": 0.6, "tokens": "ab", "layers": 1, "d_model": 64,
              "heads": 4, "lr": 3e-3, "weight_decay": 1.0, "batch_size": 256, "steps": 3500,
              "eval_every": 20, "checkpoint_every": 500},
    # Seed 000 (periodic behaviour): (x+y) mod 97 on the scale-invariant transformer, plain SGD with weight
    # decay: the decay shrinks ‖θ‖, the effective lr η/‖θ‖² grows until training destabilises and the
    # gradient inflates ‖θ‖ again (see weight_norm, eff_lr, eff_grad_norm, sgn). With lr 0.5, wd 1e-3 a
    # 1-layer d=64 version (batch 256) reached 100% train and val at step 2450, then collapsed and
    # recovered every 500-1500 steps (docs/optimizers.md); lr 1, wd 2e-3 oscillated without settling.
    "seed000-sgd": {"op": "x+y", "scale_invariant": True, "optimizer": "sgd", "lr": 0.5, "weight_decay": 1e-3,
                    "warmup_steps": 0, "steps": 30_000, "sgn_every": 5},
    # The same with Lion (seed 000: grokking disappears): lr 5x below AdamW's, wd 5x above (same lr·wd).
    "seed000-lion": {"op": "x+y", "scale_invariant": True, "optimizer": "lion", "lr": 2e-4, "weight_decay": 5.0,
                     "steps": 30_000, "sgn_every": 5},
}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}' (known: {', '.join(PRESETS)}).")
    return apply_overrides(Config(), PRESETS[name], where=f"in preset {name} ")


# Upper bounds of the model's shape: far past any grokking experiment, short of an allocation that
# takes the machine down (a typo such as --layers 100000000 is a sentence, not a MemoryError).
MODEL_BOUNDS = {"layers": 64, "d_model": 8192, "heads": 256, "mlp_ratio": 64}
MAX_BATCH = 2 ** 20
MAX_STEPS = 10 ** 9


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_error(threads: int) -> str | None:
    """The sentence for a --threads value outside [0, the CPUs this process may use], or None."""
    if threads < 0:
        return f"threads must be >= 0 (0: one per core), got {threads}."
    if threads > usable_cpus():
        return (f"threads must be at most {usable_cpus()} (the CPUs this process may use), "
                f"got {threads}.")
    return None


def seed_error(name: str, seed: int | None) -> str | None:
    """The sentence for a seed torch's generators cannot take (None: no seed given, or a good one)."""
    if seed is not None and not 0 <= seed < 2**63:
        return f"{name} must be in [0, 2^63), got {seed}."
    return None


def validate(cfg: Config) -> list[str]:
    """Every problem with cfg, one sentence each (empty when the config is usable)."""
    d, m, o, t = cfg.data, cfg.model, cfg.optim, cfg.train
    errs: list[str] = []
    op = ops.find_op(d.op)
    if op is None:
        errs.append(f"unknown operation '{d.op}' (known: {', '.join(ops.op_names())}).")
    if d.p < 2:
        errs.append(f"p must be at least 2, got {d.p}.")
    elif d.p > 1000:
        errs.append(f"p must be at most 1000 (the table has p^2 rows), got {d.p}.")
    elif op is not None and op.needs_prime and not ops.is_prime(d.p):
        errs.append(f"p must be prime for {op.formula} (it needs an inverse mod p), got {d.p}.")
    if not 0.0 < d.train_frac < 1.0 or math.isnan(d.train_frac):
        errs.append(f"train_frac (the train ratio) must be in (0, 1), got {d.train_frac}.")
    elif op is not None and 2 <= d.p <= 1000:
        rows = d.p * (d.p - 1 if op.b_nonzero else d.p)
        if ops.train_count(rows, d.train_frac) == 0:
            errs.append(f"train_frac (the train ratio) {d.train_frac} leaves no train examples in the {rows}-row table of p={d.p}.")
    for name, seed in (("seed", t.seed), ("data seed", d.data_seed)):
        bad = seed_error(name, seed)
        if bad:
            errs.append(bad)
    if d.tokens not in ("ab", "aob="):
        errs.append(f"tokens must be 'ab' or 'aob=', got '{d.tokens}'.")
    for name, top in MODEL_BOUNDS.items():
        v = getattr(m, name)
        if v < 1:
            errs.append(f"{name} must be at least 1, got {v}.")
        elif v > top:
            errs.append(f"{name} must be at most {top}, got {v}.")
    if m.heads >= 1 and m.d_model >= 1 and m.d_model % m.heads:
        errs.append(f"heads ({m.heads}) must divide d_model ({m.d_model}).")
    if m.norm not in ("layernorm", "none"):
        errs.append(f"norm must be 'layernorm' or 'none', got '{m.norm}'.")
    if o.optimizer not in optimizers.OPTIMIZERS:
        errs.append(f"unknown optimizer '{o.optimizer}' (known: {', '.join(optimizers.OPTIMIZERS)}).")
    if not o.lr > 0 or math.isinf(o.lr):
        errs.append(f"lr must be a positive number, got {o.lr}.")
    if not o.weight_decay >= 0 or math.isinf(o.weight_decay):
        errs.append(f"weight decay must be >= 0, got {o.weight_decay}.")
    for name in ("beta1", "beta2", "momentum"):
        v = getattr(o, name)
        if not 0.0 <= v < 1.0:
            errs.append(f"{name} must be in [0, 1), got {v}.")
    if not 0 < o.eps < math.inf:
        errs.append(f"eps must be a positive number, got {o.eps}.")
    if o.nesterov and not o.momentum > 0:
        errs.append("nesterov needs momentum > 0.")
    if not 0.0 <= o.grokfast_alpha < 1.0:
        errs.append(f"grokfast alpha must be in [0, 1), got {o.grokfast_alpha}.")
    if not o.grokfast_lambda >= 0 or math.isinf(o.grokfast_lambda):
        errs.append(f"grokfast lambda must be >= 0, got {o.grokfast_lambda}.")
    for name in ("steps", "batch_size", "eval_every"):
        if getattr(t, name) < 1:
            errs.append(f"{name.replace('_', ' ')} must be at least 1, got {getattr(t, name)}.")
    if t.steps > MAX_STEPS:
        errs.append(f"steps must be at most {MAX_STEPS:,}, got {t.steps}.")
    if t.batch_size > MAX_BATCH:
        errs.append(f"batch size must be at most {MAX_BATCH} (2^20), got {t.batch_size}.")
    if not 0 <= o.warmup_steps <= MAX_STEPS:
        errs.append(f"warmup steps must be in [0, {MAX_STEPS:,}], got {o.warmup_steps}.")
    if o.cooldown not in ("none", "linear", "cosine"):
        errs.append(f"cooldown must be none, linear or cosine, got '{o.cooldown}'.")
    if t.steps >= 1 and not 0 <= o.cooldown_steps <= t.steps:
        errs.append(f"cooldown steps must be in [0, steps], got {o.cooldown_steps}.")
    if o.cooldown != "none" and o.cooldown_steps == 0:
        errs.append(f"cooldown '{o.cooldown}' needs cooldown_steps > 0.")
    if t.loss not in ("ce", "stablemax"):
        errs.append(f"loss must be ce or stablemax, got '{t.loss}'.")
    if t.sgn_every < 0:
        errs.append(f"sgn every must be >= 0, got {t.sgn_every}.")
    bad_threads = threads_error(t.threads)
    if bad_threads:
        errs.append(bad_threads)
    if t.checkpoint_every < 0:
        errs.append(f"checkpoint every must be >= 0, got {t.checkpoint_every}.")
    for name in ("memorized_threshold", "grokked_threshold"):
        if not 0.0 < getattr(t, name) <= 1.0:
            errs.append(f"{name.replace('_', ' ')} must be in (0, 1], got {getattr(t, name)}.")
    dev_err = check_device(t.device)
    if dev_err:
        errs.append(dev_err)
    errs.extend(optimizers.validate(o))
    return errs


def check_device(device: str) -> str | None:
    import torch

    if device in ("auto", "cpu"):
        return None
    if device == "cuda" or device.startswith("cuda:"):
        idx = device[5:]
        if idx and not idx.isdigit():
            return f"device must be auto, cpu, cuda or cuda:N, got '{device}'."
        if not torch.cuda.is_available():
            return f"device '{device}' was asked for but CUDA is not available here (use --device cpu or auto)."
        if idx and int(idx) >= torch.cuda.device_count():
            return f"device '{device}' does not exist (this machine has {torch.cuda.device_count()} GPUs)."
        return None
    return f"device must be auto, cpu, cuda or cuda:N, got '{device}'."


def resolve(preset_name: str | None = None, config_file: str | Path | None = None,
            overrides: dict[str, Any] | None = None) -> Config:
    """preset < file < overrides, then validated; raises ConfigError listing every problem."""
    cfg = preset(preset_name) if preset_name is not None else None
    if config_file is not None:
        cfg = load_toml(config_file, cfg)
    cfg = apply_overrides(cfg or Config(), {k: v for k, v in (overrides or {}).items() if v is not None},
                          where="on the command line ")
    errs = validate(cfg)
    if errs:
        raise ConfigError(" ".join(errs) if len(errs) == 1 else "\n".join(errs))
    return cfg
