"""`grok-tui bench --suite`: the numbers that matter on one device, in one command and one table.

1. canonical, engine vs the notebook loop (steps/s and ratio) for each precision the device has
   (fp32, tf32 on CUDA, bf16 on CUDA and on CPUs with bf16 units), eager and, on CUDA, compiled;
2. canonical time to the grokked milestone (engine only; the notebook loop's is `bench --time-to-grok`);
3. a K-member sweep (seeds 0..K-1) against the same runs one after another: the sweep is run whole,
   the one-by-one side is timed on a few runs and extrapolated to K (each run alike: same config, other
   seed), and the table says so;
4. a 41-point segment between two checkpoints of a short canonical run: evaluation with gradient norms;
5. where an fp32 step's time goes, by kind of work (bench.profile).

Every row is measured in this process, alternating where two sides are compared (bench.runner).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from grok_tui.bench.profile import step_profile
from grok_tui.bench.runner import _timed, bench, engine_loop
from grok_tui.connect import curves
from grok_tui.connect.evaluate import evaluate_curve
from grok_tui.connect.problem import load_problem
from grok_tui.spec.config import Config
from grok_tui.spec.resolve import resolve
from grok_tui.store.runs import RunWriter
from grok_tui.sweep import plan as sweep
from grok_tui.sweep import run as sweep_run
from grok_tui.train.device import resolve_device
from grok_tui.train.trainer import run_training

Say = Callable[[str], None] | None


def _with(cfg: Config, **train: Any) -> Config:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def bf16_ok(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # oneDNN's own test for bf16 units (AVX512-BF16, AMX)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def variants(device: torch.device) -> list[tuple[str, bool]]:
    """(precision, compiled) pairs worth timing on this device."""
    out = [("fp32", False)]
    if device.type == "cuda":
        out += [("tf32", False)]
    if bf16_ok(device):
        out += [("bf16", False)]
    if device.type == "cuda":
        out += [(p, True) for p, _ in list(out)]
    return out


def sweep_rows(cfg: Config, members: int, sample: int, steps: int, say: Say) -> dict[str, Any]:
    """A `members`-seed sweep (ensembles, as `grok-tui sweep` groups them) against `sample` single runs
    extrapolated to `members`."""
    base = _with(cfg, steps=steps, checkpoint_every=0)
    device = resolve_device(cfg.train.device)
    with tempfile.TemporaryDirectory(prefix="grok-suite-") as tmp:
        root = Path(tmp)
        engine_loop(base, 5, device)

        def singles() -> None:
            for s in range(sample):
                c = _with(base, seed=s)
                w = RunWriter(root / f"one-{s:03d}", c)
                try:
                    run_training(c, w)
                finally:
                    w.close()

        one_s = _timed(singles, device) * members / sample
        p = sweep.plan(base, {"seed": list(range(members))}, root, name="suite")
        sweep_s = _timed(lambda: sweep_run.run_sweep(p, root), device)
    if say:
        say(f"sweep of {members}: {sweep_s:,.1f} s; {members} runs one after another ~{one_s:,.1f} s")
    return {"sweep_members": members, "sweep_sample": sample, "sweep_steps": steps, "sweep_s": sweep_s,
            "one_by_one_s": one_s, "sweep_ratio": one_s / sweep_s, "sweep_workers": p.workers}


def connect_row(cfg: Config, points: int, say: Say) -> dict[str, Any]:
    """Seconds to evaluate `points` points (losses, errors, gradient norms) on a segment between two
    checkpoints of a short run of cfg."""
    steps = 200
    c = _with(cfg, steps=steps, checkpoint_every=steps // 2, eval_every=steps // 2)
    with tempfile.TemporaryDirectory(prefix="grok-suite-") as tmp:
        root = Path(tmp)
        w = RunWriter(root / "pair", c)
        try:
            run_training(c, w)
        finally:
            w.close()
        problem = load_problem([f"pair@{steps // 2}", f"pair@{steps}"], root, device=cfg.train.device)
        curve = curves.make("segment", problem.ends[0].weights, problem.ends[1].weights, 0, [])
        evaluate_curve(problem, curve, 3, True)  # warm-up
        t = time.perf_counter()
        evaluate_curve(problem, curve, points, True)
        seconds = time.perf_counter() - t
    if say:
        say(f"{points}-point segment: {seconds:,.2f} s")
    return {"connect_points": points, "connect_s": seconds}


def suite(cfg: Config | None = None, steps: int = 300, repeat: int = 3, members: int = 64, sample: int = 4,
          sweep_steps: int = 500, points: int = 41, say: Say = None) -> dict[str, Any]:
    """The whole suite on cfg (default: the canonical preset on this machine's device)."""
    cfg = cfg or resolve("canonical")
    device = resolve_device(cfg.train.device)
    cfg = _with(cfg, device=str(device))
    rows = []
    for precision, compiled in variants(device):
        c = _with(cfg, precision=precision, compile=compiled)
        r = bench(c, steps=steps, repeat=repeat, progress=say)
        rows.append({"precision": precision, "compile": compiled, "engine_steps_per_s": r["engine_steps_per_s"],
                     "reference_steps_per_s": r["reference_steps_per_s"], "ratio": r["ratio"]})
    t0 = time.perf_counter()
    grok = engine_loop(cfg, cfg.train.steps, device, until_grokked=True)
    grok_s = time.perf_counter() - t0
    if say:
        say(f"canonical grokked at step {grok['grokked_step']} in {grok_s:,.1f} s")
    out: dict[str, Any] = {"device": str(device), "device_name": torch.cuda.get_device_name(device)
                           if device.type == "cuda" else "cpu", "threads": torch.get_num_threads(),
                           "torch": torch.__version__, "steps": steps, "repeat": repeat, "bench": rows,
                           "grok_step": grok["grokked_step"], "grok_s": grok_s if grok["grokked_step"] else None}
    out.update(sweep_rows(cfg, members, sample, sweep_steps, say))
    out.update(connect_row(cfg, points, say))
    out["profile"] = step_profile(_with(cfg, precision="fp32"))
    return out
