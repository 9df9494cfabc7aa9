"""Result files of the connectivity and landscape work: names, summaries, JSON + CSV.

``<run>/connect/<name>.json`` holds everything (inputs, arrays, summaries), ``<name>.csv`` the arrays
one row per point (fitted bends are checkpoint files beside them, written by job.py). Reading results
needs no torch (the app lists and loads them in its own process; the computing runs in a child).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grok_tui.errors import ConfigError
from grok_tui.store.files import atomic_write, atomic_write_text, read_json

if TYPE_CHECKING:
    from grok_tui.connect.problem import Endpoint, Problem


def summarize(values: list[float], t: list[float]) -> dict[str, float]:
    finite = [v for v in values if math.isfinite(v)] or [math.nan]
    top = max(range(len(values)), key=lambda i: values[i] if math.isfinite(values[i]) else -math.inf)
    return {"start": values[0], "end": values[-1], "min": min(finite), "max": max(finite),
            "mean": sum(finite) / len(finite), "t_max": t[top]}


def _label(e: Endpoint, home: str | None) -> str:
    if e.run is None:
        return e.path.stem
    head = "" if e.run == home else f"{e.run}."
    return f"{head}{e.step if e.step is not None else e.path.stem}"


def default_name(kind: str, problem: Problem, bends: int = 0) -> str:
    home = problem.ends[0].run or problem.ends[-1].run
    parts = [f"{kind}{bends if kind in ('polyline', 'bezier') else ''}", *(_label(e, home) for e in problem.ends)]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


def results_dir(problem: Problem, out: Path | None = None) -> Path:
    if out is not None:
        return Path(out)
    return (problem.home or Path(".")) / "connect"


def check_out(out: Path | None) -> None:
    """Make the --out directory now (ConfigError when it cannot be one), before any work is done."""
    if out is None:
        return
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"--out {out} is a file, not a directory.") from None
    except OSError as e:
        raise ConfigError(f"--out {out} cannot be made a directory: {e.strerror or e}.") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out} is not writable.")


def result_name(directory: Path, name: str | None, default: str) -> str:
    """The name a new result is saved under: `name` when no result of that name exists in `directory`
    (else ConfigError: a result is never replaced silently), or `default` made unique (-2, -3, ...)."""
    if name is not None:
        if (Path(directory) / f"{name}.json").exists():
            raise ConfigError(f"a result named '{name}' exists already in {directory} (choose another --name).")
        return name
    new, n = default, 1
    while (Path(directory) / f"{new}.json").exists():
        n += 1
        new = f"{default}-{n}"
    return new


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float as None, for JSON that any parser reads (NaN is not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def endpoints_info(problem: Problem) -> list[dict[str, Any]]:
    return [{"ref": e.ref, "path": str(e.path), "step": e.step, "run": e.run} for e in problem.ends]


def save_result(result: dict[str, Any], directory: Path, columns: list[str]) -> Path:
    """Write <name>.json (everything) and <name>.csv (the arrays in `columns`, one row per point)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result['name']}.json"
    atomic_write_text(path, json.dumps(result, indent=1, allow_nan=True))
    arrays = result["data"]
    n = len(arrays[columns[0]])

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for i in range(n):
                w.writerow([f"{arrays[c][i]:.8g}" for c in columns])

    atomic_write(path.with_suffix(".csv"), write_csv)
    return path


def list_results(run_path: Path) -> list[dict[str, Any]]:
    """Saved results of one run (newest first): name, kind, created, path."""
    found = []
    for p in sorted((Path(run_path) / "connect").glob("*.json")):
        r = read_json(p)
        if "kind" in r and "data" in r:
            found.append({"name": r.get("name", p.stem), "kind": r["kind"], "created": r.get("created", ""),
                          "path": p})
    return sorted(found, key=lambda r: r["created"], reverse=True)


def load_result(path: Path) -> dict[str, Any]:
    r = read_json(Path(path))
    if "kind" not in r or "data" not in r:
        raise ConfigError(f"{path} is not a saved connectivity or landscape result.")
    return r
