"""Sweeps: a grid of configs, grouped into ensembles, each member an ordinary run directory.

Grid values come from a TOML file (``[grid]`` table) or from flag text such as ``0..7``,
``0..20:5``, ``0.3..0.8:0.1`` or ``0.3,0.4,0.5``. Members that can share one ensemble (same
architecture, steps, batch size, eval/checkpoint cadence, device, table and optimizer family) are
trained together by ``ensemble.Ensemble`` (see ``group.py``); members with an optimizer that has
no vectorised step run one after another with ``train.run_training``.

The summary (``<runs_dir>/sweeps/<sweep-id>.json`` and ``.csv``) has one row per grid point (the
swept values other than the seeds): steps to memorize and to grok, mean ± std over the seeds.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from grok_tui.errors import ConfigError
from grok_tui.spec import config as config_mod
from grok_tui.spec.config import Config
from grok_tui.spec.ops import get_op
from grok_tui.store.files import atomic_write_text
from grok_tui.store.runs import new_id
from grok_tui.store.sweeps import SWEEPS_DIR
from grok_tui.train import model, vecoptim
from grok_tui.train.device import resolve_device as device_of

MAX_MEMBERS = 4096
SEED_FIELDS = ("seed", "data_seed")  # averaged over in the summary


# --- grid values ------------------------------------------------------------------------------

def _num(spec: config_mod.FieldSpec, text: str) -> int | float:
    try:
        return int(text) if spec.type is int else float(text)
    except ValueError:
        raise ConfigError(f"--{spec.name.replace('_', '-')} value '{text}' is not a{'n integer' if spec.type is int else ' number'}.") from None


def parse_values(name: str, text: str) -> list[Any]:
    """The values of one grid field from flag text: ``a,b,c``, ``lo..hi`` (ints) or ``lo..hi:step``."""
    specs = config_mod.field_specs()
    key = name.replace("-", "_")
    if key not in specs:
        raise ConfigError(f"unknown setting '{name}' (known: {', '.join(sorted(specs))}).")
    spec = specs[key]
    flag = "--" + key.replace("_", "-")
    out: list[Any] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ConfigError(f"{flag} has an empty value in '{text}'.")
        if ".." in part and spec.type in (int, float):
            lo_text, _, rest = part.partition("..")
            hi_text, _, step_text = rest.partition(":")
            lo, hi = _num(spec, lo_text), _num(spec, hi_text)
            if step_text:
                step = _num(spec, step_text)
            elif spec.type is int:
                step = 1
            else:
                raise ConfigError(f"{flag} range '{part}' of a real setting needs a step (e.g. 0.3..0.8:0.1).")
            if not all(math.isfinite(v) for v in (lo, hi, step)):
                raise ConfigError(f"{flag} range '{part}' needs finite numbers.")
            if not step > 0:
                raise ConfigError(f"{flag} range '{part}' needs a positive step.")
            if hi < lo:
                raise ConfigError(f"{flag} range '{part}' ends before it starts.")
            count = (hi - lo) / step + 1e-9
            if not count < MAX_MEMBERS:
                raise ConfigError(f"{flag} range '{part}' has more than {MAX_MEMBERS} values.")
            n = int(math.floor(count)) + 1
            out.extend(lo + i * step if spec.type is int else round(lo + i * step, 12) for i in range(n))
        elif spec.type is bool:
            low = part.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{flag} value '{part}' is not true or false.")
            out.append(low in ("true", "1", "yes"))
        elif spec.type in (int, float):
            out.append(_num(spec, part))
        else:
            out.append(part)
    return out


def _dedupe(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def load_grid_file(path: str | Path, base: Config | None = None) -> tuple[Config, dict[str, list[Any]]]:
    """A sweep file: an optional ``preset``, base settings (sections or flat keys) and a ``[grid]``.

    The file's own preset applies only when no base is given (--preset and --config come first).
    """
    path = Path(path)
    raw = config_mod.read_toml(path, "sweep file")
    grid_raw = raw.pop("grid", {})
    if not isinstance(grid_raw, dict):
        raise ConfigError(f"[grid] in {path} must be a table of setting = [values].")
    if base is None and isinstance(raw.get("preset"), str):
        base = config_mod.preset(raw["preset"])
    cfg = config_mod.from_dict(raw, base, where=f"in {path} ")
    specs = config_mod.field_specs()
    grid: dict[str, list[Any]] = {}
    for key, value in grid_raw.items():
        if key not in specs:
            raise ConfigError(f"unknown setting '{key}' in [grid] of {path}.")
        if isinstance(value, str):
            grid[key] = parse_values(key, value)
        elif isinstance(value, list) and value:
            grid[key] = [config_mod._coerce(specs[key], v, f"in [grid] of {path} ") for v in value]
        else:
            raise ConfigError(f"{key} in [grid] of {path} must be a non-empty list or a range string like '0..7'.")
    return cfg, grid


# --- members and groups -----------------------------------------------------------------------

@dataclass
class Member:
    index: int
    run_id: str
    cfg: Config
    values: dict[str, Any]  # the swept values of this member

    def payload(self) -> dict[str, Any]:
        """Plain data for another process (a worker, a Ray task)."""
        return {"index": self.index, "run_id": self.run_id, "config": self.cfg.to_dict(), "values": self.values}

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Member:
        return cls(d["index"], d["run_id"], config_mod.from_dict(d["config"]), d["values"])


def group_info(g: list[Member]) -> dict[str, Any]:
    """What a progress display shows of a group: its members, whether they train as one, their steps."""
    return {"members": [m.run_id for m in g], "vectorised": vectorised(g[0].cfg), "steps": g[0].cfg.train.steps}


@dataclass
class Plan:
    sweep_id: str
    base: Config
    grid: dict[str, list[Any]]
    members: list[Member]
    groups: list[list[Member]] = field(default_factory=list)
    workers: int = 1  # worker processes training groups side by side (1: in this process)

    def describe(self) -> dict:
        return {"sweep_id": self.sweep_id, "members": len(self.members), "grid": self.grid, "workers": self.workers,
                "groups": [group_info(g) for g in self.groups]}


def vectorised(cfg: Config) -> bool:
    return vecoptim.family(cfg) is not None


def group_key(cfg: Config, device: str) -> tuple:
    """What members of one ensemble must share."""
    t = cfg.train
    return (model.arch_from_config(cfg), get_op(cfg.data.op).b_nonzero, vecoptim.family(cfg), t.steps,
            t.batch_size, t.eval_every, t.checkpoint_every, t.loss, t.precision, t.sgn_every, device)


def resolve_device(cfg: Config) -> str:
    return str(device_of(cfg.train.device))


def new_sweep_id(runs_dir: Path, base: Config, name: str | None = None) -> str:
    """`name`, or <date>-<time>-sweep-<op>-p<p> with neither a summary nor a first member yet."""
    root = Path(runs_dir)
    return new_id("sweep", f"sweep-{get_op(base.data.op).name}-p{base.data.p}", name,
                  lambda i: (root / SWEEPS_DIR / f"{i}.json").exists() or (root / f"{i}-000").exists())


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(device: str, members: int) -> int:
    """On the CPU one worker process per core (up to one per member): a single process cannot keep
    two cores busy with the small operations of these models (an OpenMP fork/join per operation),
    several single-threaded ones can. On a GPU one process, whose ensemble fills the device."""
    return 1 if device.startswith("cuda") else max(1, min(cpu_count(), members))


def plan(base: Config, grid: dict[str, list[Any]], runs_dir: str | Path, name: str | None = None,
         chunk: int = 0, workers: int = 1) -> Plan:
    """Expand the grid over base, validate every member, group them; raises ConfigError.

    workers > 1 cuts groups into chunks of at most ceil(members / workers), so that every worker
    gets a share (0: default_workers for the device)."""
    grid = {k.replace("-", "_"): _dedupe(v) for k, v in grid.items() if v}
    total = math.prod(len(v) for v in grid.values()) if grid else 1
    if total > MAX_MEMBERS:
        raise ConfigError(f"the grid has {total} members (at most {MAX_MEMBERS}).")
    if chunk < 0:
        raise ConfigError(f"the chunk size must be >= 0 (0: whole groups), got {chunk}.")
    if workers < 0:
        raise ConfigError(f"the number of workers must be >= 0 (0: one per CPU core, 1 on a GPU), got {workers}.")
    sweep_id = new_sweep_id(Path(runs_dir), base, name)
    members = []
    for i, combo in enumerate(itertools.product(*grid.values())):
        values = dict(zip(grid, combo, strict=True))
        cfg = config_mod.apply_overrides(base, values, where="in the sweep grid ")
        errs = config_mod.validate(cfg)
        if errs:
            at = ", ".join(f"{k}={v}" for k, v in values.items()) or "the base config"
            raise ConfigError(f"grid point {at}: {' '.join(errs)}")
        members.append(Member(i, f"{sweep_id}-{i:03d}", cfg, values))
    taken = [m.run_id for m in members if (Path(runs_dir) / m.run_id).exists()]
    if taken:
        raise ConfigError(f"run directory {Path(runs_dir) / taken[0]} already exists (choose another --name).")
    by_key: dict[tuple, list[Member]] = {}
    for m in members:
        by_key.setdefault(group_key(m.cfg, resolve_device(m.cfg)), []).append(m)
    if workers == 0:
        workers = default_workers(resolve_device(base), len(members))
    share = -(-len(members) // workers)
    groups: list[list[Member]] = []
    for g in by_key.values():
        size = min(chunk or len(g), share)
        groups.extend(g[i:i + size] for i in range(0, len(g), size))
    return Plan(sweep_id, base, grid, members, groups, min(workers, len(groups)))


# --- the summary ------------------------------------------------------------------------------

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
    if st["mean"] is None:
        return "-"
    return f"{st['mean']:.0f} ± {st['std']:.0f}"


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
                    "memorized": f"{_fmt_stat(pt['memorized'])} ({pt['memorized']['n']})",
                    "grokked": f"{_fmt_stat(pt['grokked'])} ({pt['grokked']['n']})",
                    "best val": "-" if pt["best_val_acc"] is None else f"{pt['best_val_acc']:.3f}"})
        out.append(row)
    return out


def save_summary(runs_dir: str | Path, summary: dict) -> Path:
    d = Path(runs_dir) / SWEEPS_DIR
    path = d / f"{summary['sweep_id']}.json"
    atomic_write_text(path, json.dumps(summary, indent=1))
    atomic_write_text(d / f"{summary['sweep_id']}.csv", summary_csv(summary))
    return path
