"""Mode connectivity: load two checkpoints, fit a curve between them, evaluate along it, save the result.

The figures along a curve, at N evenly spaced t (default 41):
  train_loss, val_loss          mean cross-entropy over the whole split
  train_loss_l2, val_loss_l2    the same plus the L2 term wd/2 * ||w||^2
  train_err, val_err            1 - accuracy
  grad_norm                     mean over the training set's minibatches (consecutive slices of the
                                train split, run batch size) of the norm of the cross-entropy gradient
  weight_norm                   ||w||
Many t are evaluated at once: `torch.func.functional_call` under `vmap` over stacked weights.

Fitting (seed 001, Garipov et al. 2018): minimise E_{t~U[0,1]} [CE(phi(t); minibatch) + wd/2 ||phi(t)||^2]
over the bends, drawing fresh t and a fresh minibatch each step; SGD or Adam.
Results land in ``<run>/connect/<name>.json`` (inputs, arrays, summaries) and ``<name>.csv``; fitted
bends as ``<name>.bend<j>.safetensors`` (readable as checkpoints, e.g. for a landscape plane).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from grok_tui.connect import curves
from grok_tui.connect.files import (  # noqa: F401 (list_results, load_result: re-exported for the front ends)
    check_out,
    default_name,
    endpoints_info,
    list_results,
    load_result,
    results_dir,
    save_bends,
    save_result,
    summarize,
)
from grok_tui.errors import CheckpointError, ConfigError
from grok_tui.spec import config as config_mod
from grok_tui.store import runs
from grok_tui.store.files import read_sidecar
from grok_tui.store.names import check_name
from grok_tui.train import checkpoint, data
from grok_tui.train.model import Arch, Transformer, arch_from_config, build
from grok_tui.train.trainer import resolve_device

Weights = dict[str, torch.Tensor]
Progress = Callable[[str, int, int], None]  # (stage, done, total)
ROWS = 16384  # (points x examples) per vmapped forward pass
METRICS = ("train_loss", "val_loss", "train_loss_l2", "val_loss_l2", "train_err", "val_err", "grad_norm",
           "weight_norm")


MAX_POINTS = 10_000  # points along a curve or a 1-D landscape
MAX_FIT_STEPS = 10_000_000
MAX_FIT_BATCH = 2 ** 20
MAX_FIT_T = 256  # t drawn per fit step: that many weight copies in one forward pass


def use_threads(threads: int) -> None:
    """torch's CPU threads for this process (0: torch's default); ConfigError outside
    [0, the CPUs this process may use]."""
    bad = config_mod.threads_error(threads)
    if bad:
        raise ConfigError(bad)
    if threads:
        torch.set_num_threads(threads)


class Cancelled(Exception):
    """The cancel event was set; the work stopped between two steps or t-chunks."""


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()


@dataclass
class Endpoint:
    ref: str
    path: Path
    weights: Weights
    step: int | None
    run: str | None
    run_path: Path | None


@dataclass
class Problem:
    """Everything the curve work needs: the model skeleton, the data split, wd, the endpoints."""

    model: Transformer
    arch: Arch
    cfg: config_mod.Config
    split: data.Split
    wd: float
    device: torch.device
    ends: list[Endpoint]
    notes: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path | None:
        """The run directory results are saved in: the first endpoint's run, else the second's."""
        return next((e.run_path for e in self.ends if e.run_path is not None), None)


def _step_of(path: Path) -> int | None:
    side = read_sidecar(path)
    if isinstance(side.get("step"), int):
        return side["step"]
    m = re.fullmatch(r"step-(\d+)", path.stem)
    return int(m.group(1)) if m else None


def _task(cfg: config_mod.Config) -> str:
    """'x+y mod 31 (tokens ab)': what a run learns, as two runs must share it to be connected."""
    return f"{cfg.data.op} mod {cfg.data.p} (tokens {cfg.data.tokens})"


def load_problem(refs: list[str], root: Path, wd: float | None = None, cfg: config_mod.Config | None = None,
                 device: str = "auto") -> Problem:
    """Resolve and load checkpoints (same architecture, same task) and the split they are evaluated on.

    The split and wd come from the first endpoint's run (else the next one's, else `cfg`); `wd`
    overrides the run's weight decay. Raises ConfigError/CheckpointError with one sentence.
    """
    bad = config_mod.check_device(device)
    if bad:
        raise ConfigError(bad)
    if wd is not None and not 0 <= wd < math.inf:
        raise ConfigError(f"wd must be a number >= 0, got {wd}.")
    dev = resolve_device(device)
    paths = [runs.resolve_checkpoint(r, root) for r in refs]
    infos = [runs.run_of_checkpoint(p) for p in paths]
    cfgs = [i.config for i in infos if i is not None and i.config is not None]
    base = cfgs[0] if cfgs else cfg
    if base is None:
        raise ConfigError("none of the checkpoints lives in a run directory; give a config or preset "
                          "to say which data split to evaluate on.")
    notes = []
    for i in infos:
        c = i.config if i is not None else None
        if c is None or c is base:
            continue
        if (c.data.op, c.data.p, c.data.tokens) != (base.data.op, base.data.p, base.data.tokens):
            raise ConfigError(f"run '{i.id}' learns {_task(c)}, but the first checkpoint's run learns "
                              f"{_task(base)}: they are different tasks.")
        if (c.data.train_frac, c.split_seed) != (base.data.train_frac, base.split_seed):
            notes.append(f"run '{i.id}' has another train/val split; every point is evaluated on the split "
                         "of the first run.")
    arch = arch_from_config(base)
    ends = []
    for ref, path, info in zip(refs, paths, infos, strict=True):
        w, _ = checkpoint.load_weights(path, arch)
        ends.append(Endpoint(ref, path, {k: v.to(dev, torch.float32) for k, v in w.items()}, _step_of(path),
                             info.id if info else None, info.path if info else None))
    model = build(arch, 0, dev)
    params = dict(model.named_parameters())
    for end in ends:
        missing = set(params) ^ set(end.weights)
        if missing:
            raise CheckpointError(f"checkpoint {end.path} does not hold this model's parameters "
                                  f"({sorted(missing)[0]}).")
        wrong = [n for n, p in params.items() if end.weights[n].shape != p.shape]
        if wrong:
            raise CheckpointError(f"checkpoint {end.path} does not fit this model: {wrong[0]} is "
                                  f"{tuple(end.weights[wrong[0]].shape)}, the model's is {tuple(params[wrong[0]].shape)}.")
    split = data.build_from_config(base, dev)
    return Problem(model, arch, base, split, base.optim.weight_decay if wd is None else wd, dev, ends, notes)


def chain_points(problem: Problem) -> tuple[list[Weights], list[int]]:
    """The checkpoints of the first endpoint's run strictly between the two endpoints' steps, in order."""
    a, b = problem.ends[0], problem.ends[-1]
    if a.run is None or a.run_path != b.run_path or a.step is None or b.step is None:
        raise ConfigError("a chain runs through one run's checkpoints: both ends must be checkpoints of the same run.")
    lo, hi = sorted((a.step, b.step))
    info = runs.open_run(a.run_path.parent, a.run)
    inner = [(s, p) for s, p in info.checkpoints() if lo < s < hi]
    if a.step > b.step:
        inner.reverse()
    pts = []
    for _, p in inner:
        w, _ = checkpoint.load_weights(p, problem.arch)
        pts.append({k: v.to(problem.device, torch.float32) for k, v in w.items()})
    return pts, [a.step, *(s for s, _ in inner), b.step]


# --- evaluation ------------------------------------------------------------------------------------

def _vmapped(model: Transformer) -> Callable[[Weights, torch.Tensor], torch.Tensor]:
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
    fwd, ce = _vmapped(model), _ce(model)
    gfn = vmap(grad(ce), in_dims=(0, None, None))
    step = min(per_pass, g_pass) if grad_norm else per_pass
    if not vectorize:
        fwd, gfn = _looped(lambda p, x: functional_call(model, p, (x,))), _looped(grad(ce))
    # vmap has no batching rule for the fused CPU attention kernels; the math one decomposes.
    with sdpa_kernel(SDPBackend.MATH) if vectorize else contextlib.nullcontext():
        for i in range(0, n, step):
            _check(cancel)
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
                    _check(cancel)
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


# --- fitting ---------------------------------------------------------------------------------------

@dataclass
class FitSettings:
    steps: int = 500  # optimizer steps on the bends
    lr: float = 3e-3  # learning rate
    optimizer: str = "adam"  # adam or sgd
    momentum: float = 0.9  # SGD momentum
    batch_size: int = 256  # training examples per step
    t_per_step: int = 2  # t drawn per step (their losses averaged)
    wd: float | None = None  # L2 coefficient in the objective (default: see fit_wd)
    seed: int = 0  # seed of the t draws and minibatches

    def check(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.t_per_step < 1:
            raise ConfigError("fit steps must be >= 0, batch size and t per step >= 1.")
        if self.steps > MAX_FIT_STEPS or self.batch_size > MAX_FIT_BATCH or self.t_per_step > MAX_FIT_T:
            raise ConfigError(f"fit steps must be at most {MAX_FIT_STEPS:,}, fit batch at most {MAX_FIT_BATCH} "
                              f"(2^20) and fit t at most {MAX_FIT_T}, got {self.steps}, {self.batch_size} and "
                              f"{self.t_per_step}.")
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"fit lr must be a positive number, got {self.lr}.")
        if self.wd is not None and not 0 <= self.wd < math.inf:
            raise ConfigError(f"fit wd must be a number >= 0, got {self.wd}.")
        bad = config_mod.seed_error("seed", self.seed)
        if bad:
            raise ConfigError(bad)
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"fit optimizer must be adam or sgd, got '{self.optimizer}'.")


MAX_BENDS = 64  # a curve is fitted as K + 2 weight copies; more bends than this is a typo
L2_OPTIMIZERS = ("sgd", "adam")  # their weight decay is an L2 term of the objective


def fit_wd(problem: Problem, s: FitSettings) -> float:
    """The L2 coefficient of the fit objective: `s.wd` if given; else the problem's wd when the run's
    optimizer applies weight decay as an L2 term (SGD, Adam: seed 001), and 0 for decoupled decay
    (AdamW and the like), whose runs never minimise CE + wd/2 ||w||^2."""
    if s.wd is not None:
        return s.wd
    return problem.wd if problem.cfg.optim.optimizer in L2_OPTIMIZERS else 0.0


def fit(problem: Problem, curve: curves.Curve, s: FitSettings, cancel: threading.Event | None = None,
        progress: Progress | None = None) -> list[dict[str, float]]:
    """Fit the curve's bends; returns a short history of the objective (about 100 rows)."""
    s.check()
    params = list(curve.parameters())
    if not params or s.steps == 0:
        return []
    wd = fit_wd(problem, s)
    opt = (torch.optim.Adam(params, lr=s.lr) if s.optimizer == "adam"
           else torch.optim.SGD(params, lr=s.lr, momentum=s.momentum))
    gen = torch.Generator(device=problem.device).manual_seed(s.seed)
    fwd, sp = _vmapped(problem.model), problem.split
    history, every = [], max(1, s.steps // 100)
    acc, count = torch.zeros((), device=problem.device), 0
    with sdpa_kernel(SDPBackend.MATH):
        for step in range(1, s.steps + 1):
            _check(cancel)
            t = torch.rand(s.t_per_step, generator=gen, device=problem.device)
            idx = torch.randint(sp.n_train, (min(s.batch_size, sp.n_train),), generator=gen, device=problem.device)
            w = curve.weights_batch(t)
            logits = fwd(w, sp.train_x[idx]).float()
            ce = F.cross_entropy(logits.transpose(1, 2), sp.train_y[idx].expand(s.t_per_step, -1))
            l2 = sum(v.pow(2).sum() for v in w.values()) / s.t_per_step
            loss = ce + wd / 2 * l2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc += loss.detach()
            count += 1
            if step % every == 0 or step == s.steps:
                history.append({"step": step, "objective": (acc / count).item()})
                acc.zero_()
                count = 0
            if progress is not None and (step % min(every, 20) == 0 or step == s.steps):
                progress("fit", step, s.steps)
    return history


# --- one whole job, and its files --------------------------------------------------------------------

def run_connect(a: str, b: str, root: Path, kind: str = "segment", bends: int = 1, points: int = 41,
                fit_settings: FitSettings | None = None, wd: float | None = None,
                cfg: config_mod.Config | None = None, device: str = "auto", name: str | None = None,
                out: Path | None = None, grad_norm: bool = True, cancel: threading.Event | None = None,
                progress: Progress | None = None, grad_batches: int | None = None) -> dict[str, Any]:
    """Load, build the curve, fit it if it has bends, evaluate along it, save; returns the result."""
    if kind not in curves.CURVES:
        raise ConfigError(f"unknown curve '{kind}' (known: {', '.join(curves.CURVES)}).")
    if kind in ("polyline", "bezier") and not 1 <= bends <= MAX_BENDS:
        raise ConfigError(f"a {kind} takes 1 to {MAX_BENDS} bends, got {bends}.")
    (fit_settings or FitSettings()).check()
    if not 2 <= points <= MAX_POINTS:
        raise ConfigError(f"points must be in [2, {MAX_POINTS}], got {points}.")
    if grad_batches is not None and grad_batches < 1:
        raise ConfigError(f"grad batches must be at least 1, got {grad_batches}.")
    if name is not None:
        check_name("result", name)
    t0 = time.perf_counter()
    problem = load_problem([a, b], root, wd, cfg, device)
    check_out(out)
    w1, w2 = problem.ends[0].weights, problem.ends[1].weights
    extra: dict[str, Any] = {}
    between: list[Weights] = []
    if kind == "chain":
        between, steps = chain_points(problem)
        m = len(steps) - 1
        points = 1 + m * -(-(points - 1) // m)  # every checkpoint lands on a point
        extra["knots"] = [j / m for j in range(m + 1)]
        extra["knot_steps"] = steps
    curve = curves.make(kind, w1, w2, bends, between)
    s = fit_settings or FitSettings()
    history = fit(problem, curve, s, cancel, progress) if kind in ("polyline", "bezier") else []
    fit_s = time.perf_counter() - t0
    res = evaluate_curve(problem, curve, points, grad_norm, cancel, progress, grad_batches)
    name = name or default_name(kind, problem, bends)
    directory = results_dir(problem, out)
    bend_files = save_bends(curve, problem.arch, directory, name) if history else []
    result = {
        "kind": "curve", "name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "inputs": {"curve": kind, "bends": len(curve.bends), "points": points, "wd": problem.wd,
                   "endpoints": endpoints_info(problem), "device": str(problem.device),
                   "data": problem.cfg.to_dict()["data"], "batch_size": problem.cfg.train.batch_size,
                   "grad_batches": grad_batches,
                   "fit": {**dataclasses.asdict(s), "wd": fit_wd(problem, s)} if history else None},
        "notes": problem.notes, **extra, "bend_files": bend_files, "fit_history": history,
        "wall_s": {"fit": round(fit_s, 3), "total": round(time.perf_counter() - t0, 3)},
        "data": res, "summary": {k: summarize(v, res["t"]) for k, v in res.items() if k != "t"},
    }
    result["path"] = str(save_result(result, directory, ["t", *(k for k in METRICS if k in res)]))
    return result

