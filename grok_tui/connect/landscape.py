"""Loss-landscape projections (seed 003; Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets").

- 1-D: L(a) = L(w + a d) for a in [-span, span], d a random direction.
- 2-D: L(a, b) = L(w + a d1 + b d2) on a grid, d1 and d2 two random directions.
  Directions are Gaussian and filter-wise normalised: every row (output unit, embedding vector) of a
  matrix is rescaled to the norm of the same row of w, so a = 1 is a step as large as the weights
  themselves. One-dimensional parameters (biases, LayerNorm gains) get no direction (Li et al. zero
  them), unless asked otherwise.
- Plane through three checkpoints (Garipov et al. 2018, ``plane.py``): origin w0, axes e1 = (w1 - w0)
  normalised and e2 = the part of (w2 - w0) orthogonal to e1, normalised; coordinates are distances
  in weight space, and the grid covers the three points with a margin.

Figures at each point are those of ``connect.evaluate_points`` (losses, L2 losses, errors; the
gradient norm only when asked). Results go to ``<run>/connect/<name>.json`` and ``.csv`` like curves.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import torch

from grok_tui.connect.evaluate import MAX_POINTS, Progress, evaluate_points
from grok_tui.connect.problem import Problem, Weights, load_problem
from grok_tui.connect.results import (
    check_out,
    default_name,
    endpoints_info,
    result_name,
    results_dir,
    save_result,
)
from grok_tui.errors import ConfigError
from grok_tui.spec import config as config_mod
from grok_tui.spec.checks import seed_error
from grok_tui.store.names import check_name

MAX_GRID = 500  # points per axis of a plane or a 2-D landscape (250,000 evaluations)


def random_direction(w: Weights, seed: int, ignore_1d: bool = True) -> Weights:
    """A Gaussian direction, each row rescaled to the norm of the same row of w (filter-wise)."""
    gen = torch.Generator().manual_seed(seed)
    d = {}
    for name in sorted(w):
        v = w[name]
        r = torch.randn(v.shape, generator=gen).to(v.device, v.dtype)
        if v.dim() <= 1:
            d[name] = torch.zeros_like(v) if ignore_1d else r * (v.norm() / (r.norm() + 1e-10))
            continue
        rows, wrows = r.reshape(v.shape[0], -1), v.reshape(v.shape[0], -1)
        scale = wrows.norm(dim=1, keepdim=True) / (rows.norm(dim=1, keepdim=True) + 1e-10)
        d[name] = (rows * scale).reshape(v.shape)
    return d


def _dot(a: Weights, b: Weights) -> float:
    return float(sum((a[k].double() * b[k].double()).sum() for k in a))


def _affine_stack(base: Weights, dirs: list[Weights], coords: torch.Tensor):
    """stack(i, j): base + sum_k coords[i:j, k] * dirs[k], name -> (j - i, *shape)."""

    def stack(i: int, j: int) -> Weights:
        c = coords[i:j].to(next(iter(base.values())).device)
        out = {}
        for n, v in base.items():
            shape = (-1,) + (1,) * v.dim()
            acc = v.unsqueeze(0).expand(c.shape[0], *v.shape).clone()
            for k, d in enumerate(dirs):
                acc += c[:, k].reshape(shape) * d[n]
            out[n] = acc
        return out

    return stack


def _grid(a_axis: torch.Tensor, b_axis: torch.Tensor) -> torch.Tensor:
    aa, bb = torch.meshgrid(a_axis, b_axis, indexing="ij")
    return torch.stack([aa.reshape(-1), bb.reshape(-1)], dim=1)  # row-major: alpha outer, beta inner


def _evaluate(problem: Problem, base: Weights, dirs: list[Weights], coords: torch.Tensor, grad_norm: bool,
              cancel: threading.Event | None, progress: Progress | None) -> dict[str, list[float]]:
    return evaluate_points(problem.model, problem.split, _affine_stack(base, dirs, coords), coords.shape[0],
                           problem.wd, grad_norm, problem.cfg.train.batch_size, cancel, progress)


def _finish(problem: Problem, kind: str, name: str | None, out: Path | None, inputs: dict[str, Any],
            data: dict[str, list[float]], axes: list[str], t0: float, **extra: Any) -> dict[str, Any]:
    name = name or default_name(kind, problem)
    result = {"kind": kind, "name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "inputs": {**inputs, "wd": problem.wd, "endpoints": endpoints_info(problem),
                         "device": str(problem.device), "data": problem.cfg.to_dict()["data"]},
              "notes": problem.notes, **extra, "wall_s": {"total": round(time.perf_counter() - t0, 3)},
              "data": data}
    result["path"] = str(save_result(result, results_dir(problem, out), [*axes, *(k for k in data if k not in axes)]))
    return result


def landscape(ref: str, root: Path, dims: int = 1, span: float = 1.0, points: int | None = None, seed: int = 0,
              ignore_1d: bool = True, wd: float | None = None, cfg: config_mod.Config | None = None,
              device: str = "auto", name: str | None = None, out: Path | None = None, grad_norm: bool = False,
              cancel: threading.Event | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Loss and error along one random direction (dims=1) or on a plane of two (dims=2) around `ref`."""
    if dims not in (1, 2):
        raise ConfigError(f"dims must be 1 or 2, got {dims}.")
    points = (41 if dims == 1 else 21) if points is None else points
    top = MAX_POINTS if dims == 1 else MAX_GRID
    if not 2 <= points <= top:
        raise ConfigError(f"points must be in [2, {top}] {'in 1-D' if dims == 1 else 'per axis in 2-D'}, got {points}.")
    if not 0 < span < math.inf:
        raise ConfigError(f"span must be a positive number, got {span}.")
    if name is not None:
        check_name("result", name)
    bad = seed_error("seed", seed)
    if bad:
        raise ConfigError(bad)
    t0 = time.perf_counter()
    problem = load_problem([ref], root, wd, cfg, device)
    check_out(out)
    name = result_name(results_dir(problem, out), name, default_name(f"landscape{dims}d", problem))
    w = problem.ends[0].weights
    dirs = [random_direction(w, seed + k, ignore_1d) for k in range(dims)]
    axis = torch.linspace(-span, span, points, dtype=torch.float64)
    coords = axis[:, None] if dims == 1 else _grid(axis, axis)
    data = _evaluate(problem, w, dirs, coords.float(), grad_norm, cancel, progress)
    axes = ["alpha"] if dims == 1 else ["alpha", "beta"]
    data = {**{a: coords[:, k].tolist() for k, a in enumerate(axes)}, **data}
    kind = f"landscape{dims}d"
    inputs = {"dims": dims, "span": span, "points": points, "seed": seed, "ignore_1d": ignore_1d,
              "normalization": "filter"}
    return _finish(problem, kind, name, out, inputs, data, axes, t0, grid={"alpha": axis.tolist(),
                   **({"beta": axis.tolist()} if dims == 2 else {})})


def plane(refs: list[str], root: Path, points: int = 21, margin: float = 0.2, wd: float | None = None,
          cfg: config_mod.Config | None = None, device: str = "auto", name: str | None = None,
          out: Path | None = None, grad_norm: bool = False, cancel: threading.Event | None = None,
          progress: Progress | None = None) -> dict[str, Any]:
    """Loss and error on the plane through three checkpoints (e.g. memorized, grokked, a fitted bend)."""
    if len(refs) != 3:
        raise ConfigError(f"a plane goes through exactly three checkpoints, got {len(refs)}.")
    if not 2 <= points <= MAX_GRID:
        raise ConfigError(f"points must be in [2, {MAX_GRID}] per axis of a plane, got {points}.")
    if not 0 <= margin < math.inf:
        raise ConfigError(f"margin must be a number >= 0, got {margin}.")
    if name is not None:
        check_name("result", name)
    t0 = time.perf_counter()
    problem = load_problem(refs, root, wd, cfg, device)
    check_out(out)
    name = result_name(results_dir(problem, out), name, default_name("plane", problem))
    w0, w1, w2 = (e.weights for e in problem.ends)
    u = {k: w1[k] - w0[k] for k in w0}
    v = {k: w2[k] - w0[k] for k in w0}
    nu = _dot(u, u) ** 0.5
    if nu == 0:
        raise ConfigError("the first two checkpoints of the plane are the same point.")
    e1 = {k: x / nu for k, x in u.items()}
    along = _dot(v, e1)
    vp = {k: v[k] - along * e1[k] for k in v}
    nv = _dot(vp, vp) ** 0.5
    if nv <= 1e-9 * max(nu, 1.0):
        raise ConfigError("the three checkpoints lie on one line; they span no plane.")
    e2 = {k: x / nv for k, x in vp.items()}
    marks = [[0.0, 0.0], [nu, 0.0], [along, nv]]
    xs, ys = [m[0] for m in marks], [m[1] for m in marks]
    rx, ry = max(xs) - min(xs), max(ys) - min(ys)
    a_axis = torch.linspace(min(xs) - margin * rx, max(xs) + margin * rx, points, dtype=torch.float64)
    b_axis = torch.linspace(min(ys) - margin * ry, max(ys) + margin * ry, points, dtype=torch.float64)
    coords = _grid(a_axis, b_axis)
    data = _evaluate(problem, w0, [e1, e2], coords.float(), grad_norm, cancel, progress)
    data = {"alpha": coords[:, 0].tolist(), "beta": coords[:, 1].tolist(), **data}
    inputs = {"points": points, "margin": margin}
    return _finish(problem, "plane", name, out, inputs, data, ["alpha", "beta"], t0,
                   grid={"alpha": a_axis.tolist(), "beta": b_axis.tolist()},
                   marks=[{"ref": e.ref, "xy": m} for e, m in zip(problem.ends, marks, strict=True)])
