"""Validation of a whole config: every problem as one sentence (no torch: the app validates its form
on the UI thread; whether a CUDA device is present is asked by the engine, train/device.py)."""

from __future__ import annotations

import math

from grok_tui.host import usable_cpus
from grok_tui.spec import ops, optimizers
from grok_tui.spec.config import Config

# Upper bounds of the model's shape: far past any grokking experiment, short of an allocation that
# takes the machine down (a typo such as --layers 100000000 is a sentence, not a MemoryError).
MODEL_BOUNDS = {"layers": 64, "d_model": 8192, "heads": 256, "mlp_ratio": 64}
MAX_BATCH = 2 ** 20
MAX_STEPS = 10 ** 9

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
    if t.measure_every < 0:
        errs.append(f"measure every must be >= 0 (0: never), got {t.measure_every}.")
    bad_threads = threads_error(t.threads)
    if bad_threads:
        errs.append(bad_threads)
    if t.checkpoint_every < 0:
        errs.append(f"checkpoint every must be >= 0, got {t.checkpoint_every}.")
    for name in ("memorized_threshold", "grokked_threshold"):
        if not 0.0 < getattr(t, name) <= 1.0:
            errs.append(f"{name.replace('_', ' ')} must be in (0, 1], got {getattr(t, name)}.")
    dev_err = device_error(t.device)
    if dev_err:
        errs.append(dev_err)
    errs.extend(optimizers.validate(o))
    return errs


def device_error(device: str) -> str | None:
    """The sentence for a device name that is not auto, cpu, cuda or cuda:N (None when it is one).
    Whether that device exists here is the engine's question (train/device.py)."""
    if device in ("auto", "cpu", "cuda"):
        return None
    if device.startswith("cuda:") and device[5:].isdigit():
        return None
    return f"device must be auto, cpu, cuda or cuda:N, got '{device}'."
