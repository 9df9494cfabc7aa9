"""One whole connectivity job: load the end points, build the curve, fit it if it has bends, evaluate
along it, save. Results land in ``<run>/connect/<name>.json`` (inputs, arrays, summaries) and
``<name>.csv``; fitted bends as ``<name>.bend<j>.safetensors`` (readable as checkpoints, e.g. for a
landscape plane)."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from pathlib import Path
from typing import Any

from grok_tui.connect import curves
from grok_tui.connect.evaluate import MAX_POINTS, METRICS, Progress, evaluate_curve
from grok_tui.connect.fit import MAX_BENDS, FitSettings, fit, fit_wd
from grok_tui.connect.problem import Weights, chain_points, load_problem
from grok_tui.connect.results import (
    check_out,
    default_name,
    endpoints_info,
    result_name,
    results_dir,
    save_result,
    summarize,
)
from grok_tui.errors import ConfigError, TrainingError
from grok_tui.spec.config import Config
from grok_tui.store.names import check_name
from grok_tui.train.checkpoint import write_weights


def run_connect(a: str, b: str, root: Path, kind: str = "segment", bends: int = 1, points: int = 41,
                fit_settings: FitSettings | None = None, wd: float | None = None,
                cfg: Config | None = None, device: str = "auto", name: str | None = None,
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
    directory = results_dir(problem, out)
    name = result_name(directory, name, default_name(kind, problem, bends))
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
    if history and not math.isfinite(history[-1]["objective"]):
        raise TrainingError(f"the fit of the {kind} diverged (its objective is {history[-1]['objective']} at fit "
                            f"step {history[-1]['step']}); nothing was saved (try a smaller --fit-lr).")
    res = evaluate_curve(problem, curve, points, grad_norm, cancel, progress, grad_batches)
    if not any(math.isfinite(v) for v in res["train_loss"]):
        raise TrainingError(f"every point along the {kind} has a non-finite loss; nothing was saved.")
    bend_files = [str(write_weights(directory / f"{name}.bend{j}.safetensors", w, problem.arch, -1))
                  for j, w in enumerate(curve.bend_weights(), start=1)] if history else []
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
