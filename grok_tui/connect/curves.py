"""Curves between two checkpoints: each maps t in [0, 1] to weights, and nothing else.

Every curve here is a weighted sum of control points, ``phi(t) = sum_j c_j(t) * P_j``, in the style of
Garipov et al. 2018 (timgaripov/dnn-mode-connectivity ``curves.py``: ``Bezier``, ``PolyChain``).
Orientation: ``phi(0) = w1`` (the first checkpoint, e.g. "memorized") and ``phi(1) = w2`` (the second,
e.g. "grokked"); seed 001 writes the segment as ``t*w1 + (1-t)*w2``, i.e. with t reversed.

- ``Segment``     phi(t) = (1 - t) w1 + t w2
- ``Polyline(k)`` straight pieces through k bends at t = j/(k+1); k = 1 is seed 001's Def. 3
                  (the bend theta sits at t = 0.5)
- ``Bezier(k)``   Bezier curve with k free control points (k = 1: quadratic, Garipov et al.)
- ``Chain``       straight pieces through fixed checkpoints (seed 001 section 4.2.1), knots evenly spaced

Bends are ``nn.Parameter`` tensors, initialised on the segment (at the midpoint for one bend), so a
freshly made curve is the segment itself until it is fitted.
"""

from __future__ import annotations

import math

import torch
from torch import nn

Weights = dict[str, torch.Tensor]


class Curve(nn.Module):
    """Control points (fixed ends, optional trainable bends) and coefficients c_j(t)."""

    kind = "curve"

    def __init__(self, fixed: list[Weights], bends: int = 0, bend_slots: list[int] | None = None):
        super().__init__()
        if len(fixed) < 2:
            raise ValueError("a curve needs at least two fixed points")
        self.names = list(fixed[0])
        for w in fixed[1:]:
            if list(w) != self.names or any(w[n].shape != fixed[0][n].shape for n in self.names):
                raise ValueError("the points of a curve must have the same parameters and shapes")
        self._fixed = [{n: w[n].detach() for n in self.names} for w in fixed]
        # Each bend starts on the segment w1 -> w2 at its own knot position.
        n_pts = len(fixed) + bends
        self.bends = nn.ModuleList()
        for j in range(1, bends + 1):
            s = j / (bends + 1)
            self.bends.append(nn.ParameterDict(
                {_key(n): nn.Parameter((1 - s) * self._fixed[0][n] + s * self._fixed[-1][n]) for n in self.names}))
        # Order of control points: fixed[0], bends..., fixed[1:] (ends last).
        self.n_points = n_pts

    def points(self) -> list[Weights]:
        """Control points in curve order (w1, bends..., w2)."""
        mids = [{n: b[_key(n)] for n in self.names} for b in self.bends]
        return [self._fixed[0], *mids, *self._fixed[1:]]

    def coeffs(self, t: torch.Tensor) -> torch.Tensor:
        """(T,) values of t -> (T, n_points) coefficients."""
        raise NotImplementedError

    def weights_batch(self, t: torch.Tensor) -> Weights:
        """Stacked weights for many t at once: name -> (T, *shape)."""
        pts = self.points()
        c = self.coeffs(t.to(pts[0][self.names[0]].device, torch.float32))
        out = {}
        for n in self.names:
            stacked = torch.stack([p[n] for p in pts])  # (P, *shape)
            out[n] = torch.tensordot(c.to(stacked.dtype), stacked, dims=1)
        return out

    def weights(self, t: float) -> Weights:
        """The weights at one t."""
        batch = self.weights_batch(torch.tensor([float(t)]))
        return {n: v[0] for n, v in batch.items()}

    def bend_weights(self) -> list[Weights]:
        return [{n: b[_key(n)].detach() for n in self.names} for b in self.bends]

    def describe(self) -> dict:
        return {"curve": self.kind, "bends": len(self.bends)}


def _key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys may not contain dots


def hat(t: torch.Tensor, m: int) -> torch.Tensor:
    """Piecewise-linear coefficients for m equal pieces: (T,) -> (T, m + 1), each row sums to 1."""
    j = torch.arange(m + 1, device=t.device, dtype=t.dtype)
    return (1 - (t[:, None] * m - j).abs()).clamp(min=0)


class Segment(Curve):
    """phi(t) = (1 - t) w1 + t w2."""

    kind = "segment"

    def __init__(self, w1: Weights, w2: Weights):
        super().__init__([w1, w2])

    def coeffs(self, t: torch.Tensor) -> torch.Tensor:
        return torch.stack([1 - t, t], dim=1)


class Polyline(Curve):
    """Straight pieces w1 -> theta_1 -> ... -> theta_k -> w2 with knots at t = j/(k+1)."""

    kind = "polyline"

    def __init__(self, w1: Weights, w2: Weights, bends: int = 1):
        if bends < 1:
            raise ValueError("a polyline needs at least one bend")
        super().__init__([w1, w2], bends=bends)

    def coeffs(self, t: torch.Tensor) -> torch.Tensor:
        return hat(t, self.n_points - 1)


class Bezier(Curve):
    """Bezier curve of degree k + 1 with control points w1, theta_1..theta_k, w2 (k = 1: quadratic)."""

    kind = "bezier"

    def __init__(self, w1: Weights, w2: Weights, bends: int = 1):
        if bends < 1:
            raise ValueError("a Bezier curve needs at least one control point")
        super().__init__([w1, w2], bends=bends)

    def coeffs(self, t: torch.Tensor) -> torch.Tensor:
        n = self.n_points - 1
        j = torch.arange(n + 1, device=t.device, dtype=t.dtype)
        binom = torch.tensor([math.comb(n, k) for k in range(n + 1)], device=t.device, dtype=t.dtype)
        return binom * t[:, None] ** j * (1 - t[:, None]) ** (n - j)


class Chain(Curve):
    """Straight pieces through fixed points (e.g. a run's checkpoints), knots evenly spaced in t."""

    kind = "chain"

    def __init__(self, points: list[Weights]):
        super().__init__(points)

    def coeffs(self, t: torch.Tensor) -> torch.Tensor:
        return hat(t, self.n_points - 1)

    def knots(self) -> list[float]:
        m = self.n_points - 1
        return [j / m for j in range(m + 1)]


CURVES = ("segment", "polyline", "bezier", "chain")


def make(kind: str, w1: Weights, w2: Weights, bends: int = 1, between: list[Weights] | None = None) -> Curve:
    """A curve by name; `between` are the chain's inner points (in order)."""
    if kind == "segment":
        return Segment(w1, w2)
    if kind == "polyline":
        return Polyline(w1, w2, bends)
    if kind == "bezier":
        return Bezier(w1, w2, bends)
    if kind == "chain":
        return Chain([w1, *(between or []), w2])
    raise ValueError(f"unknown curve '{kind}' (known: {', '.join(CURVES)})")
