"""Curves and figures to files: CSV (every point, runs by id, the settings that differ between them) and
matplotlib figures (PNG, SVG or PDF), matplotlib imported only inside the functions that draw."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grok_tui.errors import GrokError
from grok_tui.figures.series import Series

# matplotlib is a dependency of grok-tui; this is said only where an environment lost it.
MISSING_MATPLOTLIB = ("exporting figures needs matplotlib, a dependency of grok-tui that this environment "
                      "lacks: pip install matplotlib")


class ExportError(GrokError):
    exit_code = 2


def pyplot(hint: str = ""):
    """matplotlib.pyplot on the headless Agg backend (imported here, never at a module's import); an
    ExportError with one sentence (plus `hint`) where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ExportError(MISSING_MATPLOTLIB + (f" ({hint})" if hint else "") + ".") from None
    return plt


@contextmanager
def figure(path: Path, hint: str = "", **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """A new figure and its axes (`plt.subplots(**subplots)`), written to `path` (PNG, SVG or PDF by its
    suffix) when the block ends without an error, and closed either way; a failed write is one sentence."""
    plt = pyplot(hint)
    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        try:
            fig.savefig(path, dpi=150)
        except OSError as e:
            raise ExportError(f"cannot write {path}: {e.strerror or e}.") from None
    finally:
        plt.close(fig)


# --- files ---------------------------------------------------------------------------------------

Settings = Mapping[str, Mapping[str, Any]]  # setting -> run id -> its value: what differs between the runs


def setting_cells(settings: Settings | None, runs: Sequence[str]) -> list[str]:
    """The values of the differing settings for a CSV row of these runs (one run, or a group's members:
    empty where its members differ)."""
    out = []
    for values in (settings or {}).values():
        have = {short_value(values[r]) for r in runs if r in values}
        out.append(have.pop() if len(have) == 1 else "")
    return out


def short_value(v: Any) -> str:
    """A setting's value as a title shows it: 0.001 -> '1e-3', 3e-05 -> '3e-5', 0.5 -> '0.5'."""
    if isinstance(v, float):
        if v != 0 and math.isfinite(v) and (abs(v) < 1e-2 or abs(v) >= 1e5):
            mant, exp = f"{v:.3e}".split("e")
            return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
        return f"{v:g}"
    return "-" if v is None else str(v)


def write_csv(path: str | Path, all_series: Sequence[Series], metric: str, xname: str = "step",
              run_label: str = "run", settings: Settings | None = None) -> Path:
    """Long format: run (its id), step, metric, value; one row per point (every point, not downsampled;
    the raw value where the series is smoothed, with a smoothed column then); then a column per setting
    that differs between the runs (`settings`, e.g. lr)."""
    path = Path(path)
    smoothed = any(s.raw is not None for s in all_series)
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([run_label, xname, "metric", "value", *(["smoothed"] if smoothed else []), *(settings or {})])
            for s in all_series:
                raw = s.raw if s.raw is not None else s.y
                run = s.run or s.label
                cells = setting_cells(settings, [run])
                for i, (x, y) in enumerate(zip(s.x, raw, strict=True)):
                    xv = int(x) if xname == "step" else repr(x)
                    w.writerow([run, xv, s.metric or metric, repr(y),
                                *([repr(s.y[i]) if s.raw is not None else ""] if smoothed else []), *cells])
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}.") from None
    return path


def check_figure_path(path: Path) -> None:
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ExportError(f"the figure must be .png, .svg or .pdf, got '{path.name}'.")
