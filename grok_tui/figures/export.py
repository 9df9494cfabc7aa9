"""Curves of runs as data: series from run-store rows, downsampling, log ticks, CSV and figures.

The TUI's charts and `grok-tui plot` draw the same `Series` (the TUI through plotext, figures/ through
matplotlib, a dependency imported only inside the functions that write a figure). No tensor math, no UI
imports.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grok_tui.errors import GrokError

# Metric keys a chart can show, with a readable name. Other numeric keys of a row are shown as they are.
METRIC_NAMES: dict[str, str] = {
    "val_acc": "validation accuracy", "train_acc": "train accuracy",
    "val_loss": "validation loss", "train_loss": "train loss",
    "weight_norm": "weight norm", "grad_norm": "gradient norm", "lr": "learning rate",
}
NOT_METRICS = ("step", "epoch", "wall_s")
# The kinds of metric that read best on a log value axis.
LOG_Y_BY_DEFAULT = ("loss", "grad_norm", "lr", "eff_lr")
MILESTONE_STYLE = {"memorized": "M", "grokked": "G"}
HUGE = 1e30  # values beyond this are not drawn (no metric of a run means anything there)
# Line colours: plotext names, also valid matplotlib names (so a TUI chart and its export agree).
PALETTE = ("cyan", "magenta", "green", "orange", "blue", "red", "yellow", "gray")
# The same hues, dark enough for a white page.
PAPER = {"cyan": "#0097a7", "magenta": "#c2185b", "green": "#2e7d32", "orange": "#ef6c00", "blue": "#1565c0",
         "red": "#c62828", "yellow": "#b59f00", "gray": "#616161"}


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


@dataclass
class Series:
    """One curve: y against optimizer step, with the milestones of the run it comes from."""

    label: str
    x: list[float]
    y: list[float]
    milestones: dict[str, int] = field(default_factory=dict)
    color: str | None = None
    raw: list[float] | None = None  # the values before smoothing (drawn faint behind y)
    style: str = "-"  # matplotlib line style: several metrics of one run share its colour
    metric: str | None = None  # the metric key, where series of several metrics share a figure or a CSV
    run: str | None = None  # the id of the run it comes from (a CSV names runs by id, not by the legend's label)


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key.replace("_", " "))


def default_log_y(key: str) -> bool:
    return any(k in key for k in LOG_Y_BY_DEFAULT)


def metric_keys(rows: Iterable[dict]) -> list[str]:
    """Numeric metric keys present in rows, the well-known ones first."""
    seen: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool):
                seen.setdefault(k, None)
    known = [k for k in METRIC_NAMES if k in seen]
    rest = sorted(k for k in seen if k not in METRIC_NAMES)
    return known + [k for k in rest if "." not in k] + [k for k in rest if "." in k]  # per-group keys last


def series(rows: Sequence[dict], key: str, label: str | None = None,
           milestones: dict[str, int] | None = None, color: str | None = None) -> Series:
    """The (step, rows[key]) points of rows, skipping rows without a finite value or with a huge one
    (a chart's range over +-1e308 overflows plotext and matplotlib)."""
    xs, ys = [], []
    for r in rows:
        v, s = r.get(key), r.get("step")
        if isinstance(v, (int, float)) and isinstance(s, (int, float)) and not isinstance(v, bool):
            try:
                x, y = float(s), float(v)
            except OverflowError:  # a hand-edited row with a huge integer
                continue
            if math.isfinite(y) and abs(y) <= HUGE and abs(x) <= HUGE:
                xs.append(x)
                ys.append(y)
    return Series(label or key, xs, ys, dict(milestones or {}), color)


def milestones_of(events: Iterable[dict], summary: dict | None = None) -> dict[str, int]:
    """First step of each milestone, from a run's events (or its summary)."""
    out: dict[str, int] = {}
    for e in events:
        name, step = e.get("event"), e.get("step")
        if name in MILESTONE_STYLE and isinstance(step, int):
            out.setdefault(name, step)
    for name in MILESTONE_STYLE:
        v = (summary or {}).get(f"{name}_step")
        if isinstance(v, int):
            out.setdefault(name, v)
    return out


def visible(x: list[float], y: list[float], logx: bool, logy: bool) -> tuple[list[float], list[float]]:
    """The points that a log axis can show (positive coordinates)."""
    if not (logx or logy):
        return x, y
    keep = [(a, b) for a, b in zip(x, y, strict=True) if (a > 0 or not logx) and (b > 0 or not logy)]
    return [a for a, _ in keep], [b for _, b in keep]


def downsample(x: Sequence[float], y: Sequence[float], n: int, logx: bool = False) -> tuple[list[float], list[float]]:
    """At most about n points: the last point of each of n equal buckets of x (log10 x when logx).

    The first and the last point are always kept, so the curve spans the same range.
    """
    if len(x) <= n or n < 2:
        return list(x), list(y)
    fx = [math.log10(v) for v in x] if logx else list(x)
    lo, hi = fx[0], fx[-1]
    width = (hi - lo) / n or 1.0
    # one point per bucket (the last one in it), after the first point
    out_x, out_y = [x[0]], [y[0]]
    prev = -1
    for i in range(1, len(x)):
        b = min(int((fx[i] - lo) / width), n - 1)
        if b == prev:
            out_x[-1], out_y[-1] = x[i], y[i]
        else:
            out_x.append(x[i])
            out_y.append(y[i])
        prev = b
    return out_x, out_y


def minmax_downsample(x: Sequence[float], y: Sequence[float], buckets: int, logx: bool = False,
                      logy: bool = False, keep: Iterable[float] = ()) -> tuple[list[float], list[float]]:
    """At most 2 * buckets + 2 points (plus those at the `keep` x values) of a curve whose x ascends (a
    run's steps): the lowest and the highest point of each of `buckets` equal buckets of x (log10 x when
    logx), so a spike between two drawn points is never lost; the first and the last point always; only
    the points a log axis can show (`visible`). Bucket bounds are found by bisection and each bucket's
    extremes by the built-in min and max, so a long curve costs little more than a short one."""
    n = len(x)
    start = bisect.bisect_right(x, 0.0) if logx else 0
    if n - start <= 2 * buckets + 2 or buckets < 1:
        return visible(list(x[start:]), list(y[start:]), logx, logy)
    lo, hi = x[start], x[-1]
    f = math.log10 if logx else float
    flo, fhi = f(lo), f(hi)
    width = (fhi - flo) / buckets
    idx = {start, n - 1}
    for k in keep:
        i = bisect.bisect_left(x, k, start)
        if i < n and x[i] == k:
            idx.add(i)
    i0 = start
    for b in range(1, buckets + 1):
        edge = flo + b * width
        i1 = n if b == buckets else max(i0, bisect.bisect_left(x, 10 ** edge if logx else edge, i0))
        if i1 > i0:
            part = y[i0:i1]
            if logy and min(part) <= 0:  # only the points a log axis shows
                pos = [(v, i0 + j) for j, v in enumerate(part) if v > 0]
                if pos:
                    idx.add(min(pos)[1])
                    idx.add(max(pos)[1])
            else:
                idx.add(i0 + part.index(min(part)))
                idx.add(i0 + part.index(max(part)))
        i0 = i1
    out = sorted(i for i in idx if not logy or y[i] > 0)
    return [x[i] for i in out], [y[i] for i in out]


def human(v: float) -> str:
    """10 -> '10', 1000 -> '1k', 1e-3 -> '1e-3': short labels for log ticks."""
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    if v >= 1:
        return f"{v:.3g}"
    return f"{v:.0e}".replace("e-0", "e-")


def log_ticks(lo: float, hi: float, max_ticks: int = 6) -> tuple[list[float], list[str]]:
    """Tick positions in log10 units inside [lo, hi] (both > 0) and their labels in real units.

    Whole decades where the range holds at least three; otherwise 1x, 2x and 5x of each decade.
    """
    llo, lhi = math.log10(lo), math.log10(hi)
    eps = 1e-9
    decades = [float(d) for d in range(math.ceil(llo - eps), math.floor(lhi + eps) + 1)]
    if len(decades) >= 3:
        stride = max(1, math.ceil(len(decades) / max_ticks))
        pos = decades[::stride]
    else:
        pos = [d + math.log10(m) for d in range(math.floor(llo), math.ceil(lhi) + 1) for m in (1, 2, 5)]
        pos = [p for p in pos if llo - eps <= p <= lhi + eps]
        pos = pos[::max(1, math.ceil(len(pos) / max_ticks))]
        if len(pos) < 2:
            pos = sorted({llo, lhi})
    return pos, [human(10 ** p) for p in pos]


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
