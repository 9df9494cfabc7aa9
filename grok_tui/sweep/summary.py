"""A sweep's summary: one row per grid point (the swept values other than the seeds) with the steps to
memorize and to grok, mean ± std over the seeds; saved as ``<runs_dir>/sweeps/<sweep-id>.json`` and ``.csv``
and shown as a table by the CLI and the app."""

from __future__ import annotations

import csv
import io
import json
import statistics
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grok_tui.store.files import atomic_write_text
from grok_tui.store.sweeps import SWEEPS_DIR

if TYPE_CHECKING:
    from grok_tui.sweep.plan import Plan

SEED_FIELDS = ("seed", "data_seed")  # averaged over in the summary


def _stats(values: list[int | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    return {"n": len(got), "mean": statistics.fmean(got) if got else None,
            "std": statistics.stdev(got) if len(got) > 1 else (0.0 if got else None)}


def summarize(p: Plan, results: dict[str, dict], extra: dict | None = None) -> dict:
    """The sweep summary from each member's summary (keyed by run id). A member without one is
    "pending" while the sweep runs (extra["complete"] false) and "missing" after it."""
    absent = "pending" if extra is not None and extra.get("complete") is False else "missing"
    rows = []
    for m in p.members:
        s = results.get(m.run_id, {})
        rows.append({"run_id": m.run_id, "values": m.values, "status": s.get("status", absent),
                     "memorized_step": s.get("memorized_step"), "grokked_step": s.get("grokked_step"),
                     "best_val_acc": s.get("best_val_acc"), "steps_run": s.get("steps_run")})
    point_keys = [k for k in p.grid if k not in SEED_FIELDS]
    points: dict[tuple, list[dict]] = {}
    for r in rows:
        points.setdefault(tuple(r["values"][k] for k in point_keys), []).append(r)
    table = []
    for key, rs in points.items():
        best = [r["best_val_acc"] for r in rs if isinstance(r["best_val_acc"], (int, float))]
        table.append({"point": dict(zip(point_keys, key, strict=True)), "runs": len(rs),
                      "finished": sum(r["status"] == "finished" for r in rs),
                      "memorized": _stats([r["memorized_step"] for r in rs]),
                      "grokked": _stats([r["grokked_step"] for r in rs]),
                      "best_val_acc": statistics.fmean(best) if best else None})
    return {"sweep_id": p.sweep_id, "created": datetime.now().isoformat(timespec="seconds"),
            "base": p.base.to_dict(), "grid": p.grid, "point_keys": point_keys, "points": table,
            "members": rows, **(extra or {})}


def _fmt_stat(st: dict) -> str:
    """'1240 ± 85 (4)': mean ± std over the seeds that reached it, and how many did; one value alone has
    no spread to show."""
    if st["mean"] is None:
        return "-"
    if st["n"] == 1:
        return f"{st['mean']:.0f} (1)"
    return f"{st['mean']:.0f} ± {st['std']:.0f} ({st['n']})"


def summary_csv(summary: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    keys = summary["point_keys"]
    w.writerow([*keys, "runs", "finished", "memorized_n", "memorized_mean", "memorized_std", "grokked_n",
                "grokked_mean", "grokked_std", "best_val_acc_mean"])
    for pt in summary["points"]:
        m, g = pt["memorized"], pt["grokked"]
        w.writerow([*(pt["point"][k] for k in keys), pt["runs"], pt["finished"], m["n"], m["mean"], m["std"],
                    g["n"], g["mean"], g["std"], pt["best_val_acc"]])
    return buf.getvalue()


def table_rows(summary: dict) -> list[dict[str, str]]:
    """The summary table as display strings, one dict per grid point (for the CLI and the TUI)."""
    out = []
    for pt in summary.get("points", []):
        row = {k: str(v) for k, v in pt["point"].items()}
        row.update({"runs": f"{pt['finished']}/{pt['runs']}",
                    "memorized": _fmt_stat(pt["memorized"]),
                    "grokked": _fmt_stat(pt["grokked"]),
                    "best val": "-" if pt["best_val_acc"] is None else f"{pt['best_val_acc']:.3f}"})
        out.append(row)
    return out


def save_summary(runs_dir: str | Path, summary: dict) -> Path:
    d = Path(runs_dir) / SWEEPS_DIR
    path = d / f"{summary['sweep_id']}.json"
    atomic_write_text(path, json.dumps(summary, indent=1))
    atomic_write_text(d / f"{summary['sweep_id']}.csv", summary_csv(summary))
    return path
