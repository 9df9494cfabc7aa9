"""Modular-arithmetic datasets on the device: the table of ``a ∘ b = c (mod p)`` (``spec/ops.py``), split
by a seeded permutation into train and val tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grok_tui.errors import ConfigError
from grok_tui.spec.ops import (
    encode,
    get_op,
    table,
    train_count,
)


@dataclass
class Split:
    """Train and val examples, gathered once and kept on the device."""

    train_x: torch.Tensor  # (n_train, seq) long
    train_y: torch.Tensor  # (n_train,) long
    val_x: torch.Tensor
    val_y: torch.Tensor
    p: int

    @property
    def n_train(self) -> int:
        return self.train_x.shape[0]

    @property
    def n_val(self) -> int:
        return self.val_x.shape[0]


def split_indices(n: int, train_frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded permutation of range(n), cut at train_count(n, train_frac): (train, val) indices, disjoint."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = train_count(n, train_frac)
    return perm[:cut], perm[cut:]


def build(op_text: str, p: int, train_frac: float, tokens: str, seed: int,
          device: torch.device | str = "cpu") -> Split:
    op = get_op(op_text)
    a, b, c = table(op, p)
    x = torch.from_numpy(encode(a, b, p, tokens))
    y = torch.from_numpy(c)
    tr, va = split_indices(len(y), train_frac, seed)
    if len(tr) == 0 or len(va) == 0:
        raise ConfigError(f"train ratio {train_frac} leaves {'no train' if len(tr) == 0 else 'no val'} "
                          f"examples in the {len(y)}-row table of p={p}.")
    return Split(x[tr].to(device), y[tr].to(device), x[va].to(device), y[va].to(device), p)


def build_from_config(cfg, device: torch.device | str = "cpu") -> Split:
    d = cfg.data
    return build(d.op, d.p, d.train_frac, d.tokens, cfg.split_seed, device)
