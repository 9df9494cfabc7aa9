"""The operations of the modular-arithmetic datasets and their tables ``a ∘ b = c (mod p)`` (numpy only).

Tokens: the numbers 0..p-1 are themselves; ``p`` is the operation token and ``p+1`` the ``=`` token
(only the 4-token format ``a ∘ b =`` uses them). The target is ``c`` in [0, p).
The split and the tensors on the device are ``train/data.py``'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from grok_tui.errors import ConfigError


@dataclass(frozen=True)
class Op:
    name: str
    formula: str
    fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # exact, vectorised over int64 arrays
    needs_prime: bool = False  # an inverse mod p is needed
    b_nonzero: bool = False  # b ranges over [1, p) instead of [0, p)
    aliases: tuple[str, ...] = ()


def _div(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    inv = np.array([0] + [pow(int(v), p - 2, p) for v in range(1, p)], dtype=np.int64)
    return a * inv[b]


def _sin(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return np.floor(np.abs(np.sin((a + b).astype(np.float64))) * 3 * p).astype(np.int64)


OPS: tuple[Op, ...] = (
    Op("add", "x+y", lambda a, b, p: a + b),
    Op("sub", "x-y", lambda a, b, p: a - b),
    Op("mul", "x*y", lambda a, b, p: a * b, aliases=("xy",)),
    Op("div", "x/y", _div, needs_prime=True, b_nonzero=True),
    Op("sq_add", "x^2+y^2", lambda a, b, p: a * a + b * b, aliases=("x*x+y*y",)),
    Op("quad", "x^2+xy+y^2", lambda a, b, p: a * a + a * b + b * b, aliases=("x^2+x*y+y^2",)),
    Op("cube", "x^3+xy", lambda a, b, p: a * a * a + a * b, aliases=("x^3+x*y",)),
    Op("nonsym", "x*y+y*y", lambda a, b, p: a * b + b * b, aliases=("xy+y^2", "x*y+y^2")),
    Op("sin", "floor(|sin(x+y)|*3p)", _sin, aliases=("floor(abs(sin(x+y))*3p)", "floor(|sin(x+y)|·3p)")),
)


def _norm(text: str) -> str:
    return text.strip().lower().replace(" ", "").replace("**", "^").replace("·", "*").replace("÷", "/")


def find_op(text: str) -> Op | None:
    key = _norm(text)
    for op in OPS:
        if key in (op.name, _norm(op.formula), *map(_norm, op.aliases)):
            return op
    return None


def canonical_op(text: str) -> str:
    """The one name an operation is stored and compared under: its formula (``mul``, ``x*y``, ``X * Y``
    -> ``x*y``). A text that names no operation comes back stripped, for validation to report."""
    op = find_op(text)
    return op.formula if op is not None else text.strip()


def get_op(text: str) -> Op:
    op = find_op(text)
    if op is None:
        raise ConfigError(f"unknown operation '{text}' (known: {', '.join(op_names())}).")
    return op


def op_names() -> list[str]:
    return [f"{op.name} ({op.formula})" for op in OPS]


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % k for k in range(2, math.isqrt(n) + 1))


def table(op: Op, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, c) over the whole table, rows ordered by a then b."""
    a, b = np.meshgrid(np.arange(p, dtype=np.int64), np.arange(1 if op.b_nonzero else 0, p, dtype=np.int64),
                       indexing="ij")
    a, b = a.ravel(), b.ravel()
    return a, b, np.mod(op.fn(a, b, p), p)


def encode(a: np.ndarray, b: np.ndarray, p: int, tokens: str) -> np.ndarray:
    """Model inputs, one row per example: [a, b] or [a, op, b, =]."""
    if tokens == "ab":
        return np.stack([a, b], axis=1)
    n = len(a)
    return np.stack([a, np.full(n, p), b, np.full(n, p + 1)], axis=1)


def vocab_size(p: int) -> int:
    return p + 2


SEQ_LEN = {"ab": 2, "aob=": 4}  # token format -> input length


def seq_len(tokens: str) -> int:
    return SEQ_LEN[tokens]


def b_index(seq_len: int) -> int:
    """Where b sits in an input row; by causality the positions before it depend on a alone."""
    return 1 if seq_len == SEQ_LEN["ab"] else 2


def prefixes(p: int, seq_len: int) -> np.ndarray:
    """(p, b_index) int64: the input positions before b, for every value of a in [0, p)."""
    tokens = next(t for t, n in SEQ_LEN.items() if n == seq_len)
    a = np.arange(p, dtype=np.int64)
    return encode(a, np.zeros_like(a), p, tokens)[:, :b_index(seq_len)]


def train_count(n: int, train_frac: float) -> int:
    """How many of n rows the split puts in train."""
    return int(n * train_frac)
