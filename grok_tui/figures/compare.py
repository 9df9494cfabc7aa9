"""Series math for comparing runs: TensorBoard's debiased EMA smoothing, and groups of runs reduced to
a mean line with a min-max or +-std band. Pure Python on lists (no torch, no UI imports); the TUI's
charts and `grok-tui plot` draw what these return.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from grok_tui.figures.export import short_value
from grok_tui.figures.series import Series

SMOOTH_LEVELS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)  # the app's `s` key steps through these
BANDS = ("minmax", "std")


def ema(y: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average debiased like Adam's moments.

    s_i = w s_{i-1} + (1 - w) y_i from s_0 = 0, divided by 1 - w^n (n finite values so far), so the
    first value is y_0 itself rather than pulled towards 0. Non-finite values pass through unchanged
    and do not enter the average. weight 0 returns y; it must be in [0, 1).
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"the smoothing weight must be in [0, 1), got {weight}.")
    if weight == 0.0:
        return list(y)
    out, last, n = [], 0.0, 0
    for v in y:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1.0 - weight) * v
        n += 1
        out.append(last / (1.0 - weight ** n))
    return out


def smooth(s: Series, weight: float) -> Series:
    """The series smoothed, its raw values kept in `raw` (drawn faint behind the smoothed line)."""
    if weight <= 0.0 or not s.y:
        return s
    return replace(s, y=ema(s.y, weight), raw=list(s.y))


def parse_smooth(text: str | float) -> float:
    """A smoothing weight from a flag: a weight in [0, 1) such as 0.9, or a window in steps of the
    average (>= 1, e.g. 10 -> weight 1 - 1/10)."""
    try:
        w = float(text)
    except ValueError:
        raise ValueError(f"the smoothing must be a weight in [0, 1) or a window >= 1, got '{text}'.") from None
    if not math.isfinite(w) or w < 0:
        raise ValueError(f"the smoothing must be a weight in [0, 1) or a window >= 1, got '{text}'.")
    return w if w < 1 else 1.0 - 1.0 / w


# --- groups ----------------------------------------------------------------------------------------

@dataclass
class Band:
    """A group of runs reduced to one line: the mean at each step with a band (min-max or +-std)."""

    label: str
    x: list[float]
    mean: list[float]
    lo: list[float]
    hi: list[float]
    n: list[int]  # runs that cover each step
    members: list[str] = field(default_factory=list)
    milestones: dict[str, int] = field(default_factory=dict)  # mean step over the members that reached it
    reached: dict[str, int] = field(default_factory=dict)  # how many members reached each milestone
    color: str | None = None
    style: str = "-"
    metric: str | None = None
    raw: list[float] | None = None  # the mean before smoothing (smooth_band)

    def as_series(self) -> Series:
        return Series(self.label, self.x, self.mean, dict(self.milestones), self.color, style=self.style,
                      metric=self.metric)


def _at(s: Series, x: float) -> float | None:
    """The series' value at x, linear between its points; None outside its range."""
    if not s.x or x < s.x[0] or x > s.x[-1]:
        return None
    i = bisect_left(s.x, x)
    if s.x[i] == x:
        return s.y[i]
    x0, x1, y0, y1 = s.x[i - 1], s.x[i], s.y[i - 1], s.y[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def aggregate(members: Sequence[Series], label: str, band: str = "minmax", color: str | None = None) -> Band:
    """The mean of the members at every step any of them has (each member counts only inside its own
    range, so a run stopped early does not pull the mean towards its last value), and the band."""
    if band not in BANDS:
        raise ValueError(f"the band must be {' or '.join(BANDS)}, got '{band}'.")
    xs = sorted({x for s in members for x in s.x})
    out = Band(label, [], [], [], [], [], [s.run or s.label for s in members], color=color)
    for x in xs:
        vals = [v for v in (_at(s, x) for s in members) if v is not None and math.isfinite(v)]
        if not vals:
            continue
        m = statistics.fmean(vals)
        if band == "std":
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            lo, hi = m - sd, m + sd
        else:
            lo, hi = min(vals), max(vals)
        out.x.append(x)
        out.mean.append(m)
        out.lo.append(lo)
        out.hi.append(hi)
        out.n.append(len(vals))
    for name in ("memorized", "grokked"):
        steps = [s.milestones[name] for s in members if name in s.milestones]
        out.reached[name] = len(steps)
        if steps:
            out.milestones[name] = round(statistics.fmean(steps))
    return out


def smooth_band(b: Band, weight: float) -> Band:
    """The band smoothed as a whole: its mean and both edges with the same EMA (a positive linear
    average, so the smoothed mean stays inside the smoothed band), the raw mean kept in `raw`."""
    if weight <= 0.0 or not b.mean:
        return b
    return replace(b, mean=ema(b.mean, weight), lo=ema(b.lo, weight), hi=ema(b.hi, weight), raw=list(b.mean))


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return "-" if v is None else str(v)


def group(items: Sequence[tuple[Series, Any]], field_name: str, band: str = "minmax",
          palette: Sequence[str] = ()) -> list[Band]:
    """Series grouped by a field's value (items: (series, value)), one Band per value in sorted order,
    labelled `field=value (n runs)`; colours from the palette in that order."""
    by_value: dict[Any, list[Series]] = {}
    for s, v in items:
        by_value.setdefault(v, []).append(s)

    def order(v: Any) -> tuple:
        return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))

    bands = []
    for i, v in enumerate(sorted(by_value, key=order)):
        members = by_value[v]
        color = palette[i % len(palette)] if palette else None
        bands.append(aggregate(members, f"{field_name}={fmt_value(v)} ({len(members)} run{'s' * (len(members) > 1)})",
                               band, color))
    return bands


def varying_fields(values: Sequence[dict[str, Any]], candidates: Sequence[str]) -> list[str]:
    """The candidate fields whose value differs between the given runs' field dicts."""
    return [f for f in candidates if len({repr(v.get(f)) for v in values}) > 1]


# Settings that change how a run is computed or recorded, not the experiment: a figure does not name them.
NOT_SETTINGS = ("device", "threads", "compile", "eval_every", "checkpoint_every", "sgn_every")


def differing_settings(fields: Mapping[str, Mapping[str, Any]], candidates: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The settings (of the candidates) whose value differs between runs (fields: run id -> its fields),
    as setting -> run id -> value. `data_seed` is left out where it is each run's seed."""
    out = {f: {r: v.get(f) for r, v in fields.items()}
           for f in varying_fields(list(fields.values()), [c for c in candidates if c not in NOT_SETTINGS])}
    if "data_seed" in out and all(v.get("data_seed") == v.get("seed") for v in fields.values()):
        del out["data_seed"]
    return out


def figure_title(name: str, settings: Mapping[str, Mapping[str, Any]], runs: Sequence[str],
                 group_field: str | None = None) -> str:
    """The metric(s), and what differs between the runs: `validation accuracy: lr=1e-3 vs lr=3e-3`;
    grouped, `validation accuracy by train_frac` and what else differs (`grok-tui plot` and the app's export)."""
    if group_field is not None:
        rest = settings_title({f: v for f, v in settings.items() if f != group_field}, runs)
        return f"{name} by {group_field}" + (f": {rest}" if rest else "")
    diff = settings_title(settings, runs)
    return f"{name}: {diff}" if diff else name


def settings_title(settings: Mapping[str, Mapping[str, Any]], runs: Sequence[str] | None = None,
                   most: int = 4) -> str:
    """What differs between the runs, for a title: `lr=1e-3 vs lr=3e-3` for up to `most` combinations,
    else each setting's values (`seed 0..7 (8 values), lr 1e-3, 3e-3`). Empty when nothing differs."""
    if not settings:
        return ""
    runs = list(runs) if runs is not None else list(dict.fromkeys(r for v in settings.values() for r in v))
    combos = dict.fromkeys(" ".join(f"{f}={short_value(v.get(r))}" for f, v in settings.items()) for r in runs)
    if len(combos) <= most:
        return " vs ".join(combos)
    parts = []
    for f, v in settings.items():
        vals = sorted({x for x in v.values() if x is not None}, key=lambda x: (isinstance(x, str), x))
        if len(vals) > most and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
            parts.append(f"{f} {short_value(vals[0])}..{short_value(vals[-1])} ({len(vals)} values)")
        else:
            parts.append(f"{f} {', '.join(short_value(x) for x in vals)}")
    return ", ".join(parts)
