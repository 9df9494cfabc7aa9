"""Figures along a curve between checkpoints, at N evenly spaced t (default 41):
  train_loss, val_loss          mean cross-entropy over the whole split
  train_loss_l2, val_loss_l2    the same plus the L2 term wd/2 * ||w||^2
  train_err, val_err            1 - accuracy
  grad_norm                     mean over the training set's minibatches (consecutive slices of the
                                train split, run batch size) of the norm of the cross-entropy gradient
  weight_norm                   ||w||
Many t are evaluated at once: `torch.func.functional_call` under `vmap` over stacked weights.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from grok_tui.connect import curves
from grok_tui.connect.problem import Problem, Weights, check_cancel
from grok_tui.errors import ConfigError
from grok_tui.train import data
from grok_tui.train.model import Arch, Transformer

Progress = Callable[[str, int, int], None]  # (stage, done, total)
ROWS = 16384  # (points x examples) per vmapped forward pass
METRICS = ("train_loss", "val_loss", "train_loss_l2", "val_loss_l2", "train_err", "val_err", "grad_norm",
           "weight_norm")
MAX_POINTS = 10_000  # points along a curve or a 1-D landscape


def vmapped(model: Transformer) -> Callable[[Weights, torch.Tensor], torch.Tensor]:
    return vmap(lambda p, x: functional_call(model, p, (x,)), in_dims=(0, None))


def _looped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn over the leading axis of stacked weights, one point at a time, results stacked."""

    def many(w: Weights, *args: torch.Tensor) -> Any:
        c = next(iter(w.values())).shape[0]
        outs = [fn({k: v[i] for k, v in w.items()}, *args) for i in range(c)]
        if isinstance(outs[0], dict):
            return {k: torch.stack([o[k] for o in outs]) for k in outs[0]}
        return torch.stack(outs)

    return many


def vectorize_on(device: torch.device, split: data.Split, arch: Arch) -> bool:
    """vmap over points on CUDA; on a CPU only for small problems, where it wins (measured: 3x faster
    on the smoke preset, 2x slower than a loop on the canonical task, where batched-weight matmuls copy)."""
    work = (split.n_train + split.n_val) * arch.seq_len * arch.d_model
    return device.type == "cuda" or work < 2 ** 20


def _ce(model: Transformer) -> Callable[[Weights, torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda p, x, y: F.cross_entropy(functional_call(model, p, (x,)).float(), y)


def evaluate_points(model: Transformer, split: data.Split, stack: Callable[[int, int], Weights], n: int,
                    wd: float, grad_norm: bool = True, batch_size: int = 512,
                    cancel: threading.Event | None = None, progress: Progress | None = None,
                    stage: str = "eval", grad_batches: int | None = None,
                    vectorize: bool | None = None) -> dict[str, list[float]]:
    """Figures at n points; stack(i, j) gives the stacked weights of points i..j-1 (name -> (j-i, ...)).

    grad_batches: average the gradient norm over the first K minibatches only (the train split is a
    random permutation, so they are a random subset); None: all of them. vectorize: vmap over the
    points of a chunk (None: `vectorize_on`), else a loop over them with the same functional call.
    """
    if vectorize is None:
        vectorize = vectorize_on(split.train_x.device, split, model.arch)
    starts = list(range(0, split.n_train, batch_size))[:grad_batches]
    n_rows = max(split.n_train, split.n_val)
    per_pass = max(1, min(n, ROWS // max(1, min(n_rows, ROWS))))
    g_pass = max(1, min(n, ROWS // max(1, min(batch_size, split.n_train))))
    out: dict[str, list[torch.Tensor]] = {k: [] for k in METRICS if grad_norm or k != "grad_norm"}
    fwd, ce = vmapped(model), _ce(model)
    gfn = vmap(grad(ce), in_dims=(0, None, None))
    step = min(per_pass, g_pass) if grad_norm else per_pass
    if not vectorize:
        fwd, gfn = _looped(lambda p, x: functional_call(model, p, (x,))), _looped(grad(ce))
    # vmap has no batching rule for the fused CPU attention kernels; the math one decomposes.
    with sdpa_kernel(SDPBackend.MATH) if vectorize else contextlib.nullcontext():
        for i in range(0, n, step):
            check_cancel(cancel)
            with torch.no_grad():
                w = {k: v.detach() for k, v in stack(i, min(n, i + step)).items()}
                c = next(iter(w.values())).shape[0]
                sq = sum(v.float().pow(2).flatten(1).sum(1) for v in w.values())
                for part, x, y in (("train", split.train_x, split.train_y), ("val", split.val_x, split.val_y)):
                    loss, right = torch.zeros(c, device=x.device), torch.zeros(c, device=x.device)
                    rows = max(1, ROWS // c)
                    for r in range(0, x.shape[0], rows):
                        logits = fwd(w, x[r:r + rows]).float()
                        yy = y[r:r + rows].expand(c, -1)
                        loss += F.cross_entropy(logits.transpose(1, 2), yy, reduction="none").sum(1)
                        right += (logits.argmax(-1) == yy).sum(1)
                    loss = loss / max(1, x.shape[0])
                    out[f"{part}_loss"].append(loss)
                    out[f"{part}_loss_l2"].append(loss + wd / 2 * sq)
                    out[f"{part}_err"].append(1 - right / max(1, x.shape[0]))
                out["weight_norm"].append(sq.sqrt())
            if grad_norm:
                total, nb = torch.zeros(c, device=split.train_x.device), 0
                for r in starts:
                    check_cancel(cancel)
                    g = gfn(w, split.train_x[r:r + batch_size], split.train_y[r:r + batch_size])
                    total += sum(v.float().pow(2).flatten(1).sum(1) for v in g.values()).sqrt()
                    nb += 1
                out["grad_norm"].append(total / max(1, nb))
            if progress is not None:
                progress(stage, min(n, i + step), n)
    return {k: torch.cat(v).tolist() for k, v in out.items()}


def evaluate_curve(problem: Problem, curve: curves.Curve, points: int = 41, grad_norm: bool = True,
                   cancel: threading.Event | None = None, progress: Progress | None = None,
                   grad_batches: int | None = None) -> dict[str, Any]:
    """Figures at `points` evenly spaced t in [0, 1] (t = 0 is the first endpoint)."""
    if not 2 <= points <= MAX_POINTS:
        raise ConfigError(f"points must be in [2, {MAX_POINTS}], got {points}.")
    t64 = torch.linspace(0, 1, points, dtype=torch.float64)
    ts = t64.to(problem.device, torch.float32)
    res = evaluate_points(problem.model, problem.split, lambda i, j: curve.weights_batch(ts[i:j]), points,
                          problem.wd, grad_norm, problem.cfg.train.batch_size, cancel, progress,
                          grad_batches=grad_batches)
    return {"t": t64.tolist(), **res}
