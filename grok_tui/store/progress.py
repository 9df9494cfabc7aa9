"""A run's progress measures as files, without torch: ``<run>/progress.jsonl`` and the measures' metric
columns (docs/architecture.md, "Run directory"; the measures themselves: docs/metrics.md, "Progress
measures", computed by train/progress.py).

One row per measured evaluation (or per checkpoint, for a run measured after it trained:
``grok-tui inspect RUN --checkpoints``)::

    {"step": 1200, "basis": "additive", "spectrum": [...], "const_norm": 0.8, "key_freqs": [4, 11],
     "gini": 0.71, "ipr": 0.33, "restricted_loss": 0.02, "excluded_loss": 4.1}

``spectrum`` has one value per frequency k = 1..⌊n/2⌋ (n = p, or p − 1 in the multiplicative basis);
``restricted_loss`` and ``excluded_loss`` are null for an operation without them. Append-only, a torn
last line is ignored, and a resume drops the rows past its checkpoint as it does metrics.jsonl's.
The scalar measures are also metric columns of metrics.jsonl (``SCALARS``), absent where null.
This module is what the app's views and ``grok-tui plot`` read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from grok_tui.store import files

PROGRESS_FILE = "progress.jsonl"
SCALARS = ("gini", "ipr", "restricted_loss", "excluded_loss")  # also metric columns of metrics.jsonl
ROW_KEYS = ("step", "basis", "spectrum", "const_norm", "key_freqs", *SCALARS)


def _num(v: Any) -> float | None:
    """A finite float rounded to 7 significant digits (enough for a chart, a third of the bytes), or None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return float(f"{v:.7g}") if math.isfinite(v) else None


def progress_row(step: int, measures: dict[str, Any]) -> dict[str, Any]:
    """The progress.jsonl row of the measures at `step` (train/progress.py's ``to_host`` dict)."""
    row: dict[str, Any] = {"step": int(step), "basis": measures.get("basis"),
                           "spectrum": [_num(v) for v in measures.get("spectrum", [])],
                           "const_norm": _num(measures.get("const_norm")),
                           "key_freqs": [int(k) for k in measures.get("key_freqs", [])]}
    row.update({k: _num(measures.get(k)) for k in SCALARS})
    return row


def metric_columns(measures: dict[str, Any]) -> dict[str, float]:
    """The scalar measures as metrics.jsonl columns: absent (not zero, not null) where undefined."""
    out = {}
    for k in SCALARS:
        v = measures.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def valid_row(row: Any) -> bool:
    """Whether `row` is a progress row (an int step and a spectrum list)."""
    return (isinstance(row, dict) and isinstance(row.get("step"), int) and not isinstance(row.get("step"), bool)
            and isinstance(row.get("spectrum"), list))


def read_progress(run_dir: Path) -> list[dict]:
    """The progress rows of a run, by step, one per step (the last written wins); [] when it has none.
    A torn last line and rows that are not progress rows are left out."""
    by_step: dict[int, dict] = {}
    for row in files.read_jsonl(Path(run_dir) / PROGRESS_FILE):
        if valid_row(row):
            by_step[row["step"]] = row
    return [by_step[s] for s in sorted(by_step)]


def write_progress(run_dir: Path, rows: list[dict]) -> Path:
    """Replace the run's progress.jsonl by `rows` merged with the rows it has (a row of `rows` wins at
    its step), in step order, atomically. Only for a run no process is training (its lock held)."""
    merged = {r["step"]: r for r in read_progress(run_dir)}
    merged.update({r["step"]: r for r in rows})
    text = "".join(json.dumps(merged[s], allow_nan=False) + "\n" for s in sorted(merged))
    path = Path(run_dir) / PROGRESS_FILE
    files.atomic_write_text(path, text)
    return path


def with_progress(metric_rows: list[dict], progress_rows: list[dict]) -> list[dict]:
    """Metric rows with the progress scalars filled in from progress rows where a row lacks them (a run
    measured after it trained): at a step with a metric row its columns are added, at another step a
    row of the scalars alone. Rows that have the columns are kept as they are."""
    out = [dict(r) for r in metric_rows]
    at = {r.get("step"): r for r in out}
    for p in progress_rows:
        cols = metric_columns(p)
        row = at.get(p["step"])
        if row is None:
            out.append({"step": p["step"], **cols})
        else:
            for k, v in cols.items():
                row.setdefault(k, v)
    return sorted(out, key=lambda r: r.get("step") if isinstance(r.get("step"), (int, float)) else -1)


def spectrum_matrix(rows: list[dict]) -> tuple[list[int], list[list[float]], str | None]:
    """(steps, matrix, basis) for a frequency x step heatmap: matrix[i][k - 1] is the spectrum's value
    at frequency k in the i-th row (NaN for a missing value); rows whose spectrum length differs from
    the last row's (another basis) are left out."""
    if not rows:
        return [], [], None
    k, basis = len(rows[-1]["spectrum"]), rows[-1].get("basis")
    steps, matrix = [], []
    for r in rows:
        if len(r["spectrum"]) == k:
            steps.append(r["step"])
            matrix.append([float(v) if isinstance(v, (int, float)) else math.nan for v in r["spectrum"]])
    return steps, matrix, basis


def bars(spectrum: list[float], width: int = 24, key: list[int] | None = None) -> list[str]:
    """The spectrum as text bars, one line per frequency ('  5 ████████▍  0.83 *' for a key one)."""
    blocks = " ▏▎▍▌▋▊▉█"
    vals = [v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0 for v in spectrum]
    top = max(vals, default=0.0) or 1.0
    keys = set(key or [])
    lines = []
    for i, v in enumerate(vals, start=1):
        eighths = round(v / top * width * 8)
        bar = "█" * (eighths // 8) + (blocks[eighths % 8] if eighths % 8 else "")
        lines.append(f"{i:>3} {bar:<{width}} {v:8.3g}{' *' if i in keys else ''}")
    return lines
