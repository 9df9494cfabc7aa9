"""Running a sweep plan: its groups in this process, in local worker processes, or as Ray tasks.

Every member writes an ordinary run directory (see ``group.py``); the sweep's own summary (members,
milestones by swept value) goes to ``runs/sweeps/<sweep-id>.json`` after each group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from grok_tui.errors import ConfigError
from grok_tui.report import Reporter
from grok_tui.store.runs import check_runs_dir
from grok_tui.sweep import summary as sweep_summary
from grok_tui.sweep.group import run_group
from grok_tui.sweep.plan import Plan, group_info
from grok_tui.sweep.ray_backend import run_ray
from grok_tui.sweep.workers import run_workers
from grok_tui.train.loop import Control

# --- the whole sweep -------------------------------------------------------------------------

def run_sweep(p: Plan, runs_dir: str | Path, backend: str = "local", reporters: list[Reporter] | tuple = (),
              control: Control | None = None, ray_address: str | None = None,
              note: Callable[[str], None] | None = None) -> dict:
    """Run every group of the plan; save and return the sweep summary. `reporters` hear the sweep's
    hooks and every member's (report.Reporter), whichever backend trains them; `note` hears sentences
    for the user (the Ray backend's: it cannot pause)."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be local or ray, got '{backend}'.")
    runs_dir = Path(runs_dir)
    check_runs_dir(runs_dir)
    control = control or Control()
    for rep in reporters:
        rep.on_start(p.describe())
    t0 = time.perf_counter()
    results: dict[str, dict] = {}

    def save(final: bool) -> dict:
        extra = {"backend": backend, "workers": p.workers if backend == "local" else None,
                 "wall_s": round(time.perf_counter() - t0, 3), "complete": final}
        s = sweep_summary.summarize(p, results, extra)
        s["path"] = str(sweep_summary.save_summary(runs_dir, s))
        return s

    save(False)
    if backend == "local" and p.workers > 1:
        results.update(run_workers(p, runs_dir, reporters, control, on_result=lambda r: (results.update(r),
                                                                                      save(False))))
    elif backend == "local":
        for i, g in enumerate(p.groups):
            if control.stop.is_set():
                break
            for rep in reporters:
                rep.on_group_start(i, group_info(g))
            results.update(run_group(g, runs_dir, p.sweep_id, reporters, control, i))
            save(False)
    else:
        results.update(run_ray(p, runs_dir, reporters, ray_address, control, note))
    summary = save(True)
    for rep in reporters:
        rep.on_end(summary)
    return summary


