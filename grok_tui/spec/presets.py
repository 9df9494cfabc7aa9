"""Named settings: each preset is a diff against the defaults (which are the canonical experiment)."""

from __future__ import annotations

from typing import Any

from grok_tui.errors import ConfigError
from grok_tui.spec.config import Config, apply_overrides

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
    # Nanda et al. 2023 ("Progress measures for grokking via mechanistic interpretability"): x+y mod 113,
    # 30% train, a 1-layer d=128 4-head transformer without LayerNorm (MLP 512), full-batch AdamW lr 1e-3
    # wd 1 betas (0.9, 0.98). The paper's input is 3 tokens 'a b ='; the nearest format here is 'aob='
    # (a ∘ b =, read out at '='). 113² · 0.3 = 3830 training rows: a batch of 4096 is the whole set.
    "nanda": {"op": "x+y", "p": 113, "train_frac": 0.3, "tokens": "aob=", "layers": 1, "d_model": 128,
              "heads": 4, "mlp_ratio": 4, "norm": "none", "batch_size": 4096, "steps": 20_000,
              "eval_every": 100, "checkpoint_every": 1000},
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

# One line per preset for `grok-tui presets`.
DESCRIPTIONS: dict[str, str] = {
    "canonical": "the canonical experiment (Power et al.): x/y mod 97",
    "seed004": "the seed-004 notebook",
    "seed001": "mode connectivity (seed 001)",
    "smoke": "memorizes, then groks, in seconds on a CPU",
    "nanda": "Nanda et al. 2023's progress-measures setting: x+y mod 113, 1 layer, full batch",
    "seed000-sgd": "periodic behaviour (seed 000), SGD",
    "seed000-lion": "periodic behaviour (seed 000), Lion",
}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}' (known: {', '.join(PRESETS)}).")
    return apply_overrides(Config(), PRESETS[name], where=f"in preset {name} ")


