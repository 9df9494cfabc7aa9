"""Figures for papers: one or several panels, each with series (smoothed ones over their faint raw
values, several metrics of a run in one colour and different line styles) and group bands (mean line,
min-max or +-std band); milestones as vertical lines. Also the panel sets of a run's summary and of
connectivity results. matplotlib (a dependency) is imported only when a file is written, so listing runs and
the app's first frame do not pay for it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grok_tui.figures.compare import Band
from grok_tui.figures.export import (
    PALETTE,
    PAPER,
    ExportError,
    Series,
    Settings,
    check_figure_path,
    default_log_y,
    figure,
    metric_name,
    series,
    setting_cells,
    visible,
)


@dataclass
class Panel:
    title: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    logx: bool = False
    logy: bool = False
    xlabel: str = "step"

    @property
    def empty(self) -> bool:
        return not any(s.x for s in self.series) and not any(b.x for b in self.bands)


def _color(c: str | None, i: int) -> str:
    c = c or PALETTE[i % len(PALETTE)]
    return PAPER.get(c, c)


def _milestones(ax, ms: dict[str, int], color: str, label: str | None, logx: bool, many: bool) -> None:
    for name, step in sorted(ms.items(), key=lambda kv: kv[1]):
        if step > 0 or not logx:
            ax.axvline(step, color=color, linestyle="--" if name == "grokked" else ":", linewidth=1.0, alpha=0.8,
                       label=f"{label}: {name} @ {step}" if many and label else f"{name} @ {step}")


def draw_panel(ax, p: Panel) -> None:
    many = sum(bool(s.milestones) for s in p.series) + len(p.bands) > 1  # whose milestone is it?
    for i, b in enumerate(p.bands):
        color = _color(b.color, i)
        x, lo = visible(b.x, b.lo, p.logx, p.logy)
        _, hi = visible(b.x, b.hi, p.logx, p.logy)
        xm, mean = visible(b.x, b.mean, p.logx, p.logy)
        if len(x) == len(hi):
            ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)
        ax.plot(xm, mean, color=color, linewidth=1.6, label=b.label, linestyle=b.style)
        _milestones(ax, b.milestones, color, b.label.split(" (")[0], p.logx, many)
    for i, s in enumerate(p.series, start=len(p.bands)):
        color = _color(s.color, i)
        if s.raw is not None:
            rx, ry = visible(s.x, s.raw, p.logx, p.logy)
            ax.plot(rx, ry, color=color, linewidth=0.8, alpha=0.25, linestyle=s.style)
        x, y = visible(s.x, s.y, p.logx, p.logy)
        ax.plot(x, y, label=s.label, color=color, linewidth=1.4, linestyle=s.style)
        _milestones(ax, s.milestones, color, s.label, p.logx, many)
    if p.logx:
        ax.set_xscale("log")
    if p.logy:
        ax.set_yscale("log")
    ax.set_xlabel(p.xlabel)
    ax.set_ylabel(p.ylabel)
    ax.set_title(p.title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if p.series or p.bands:
        ax.legend(fontsize="x-small")


def save_panels(path: str | Path, panels: Sequence[Panel], title: str | None = None, cols: int | None = None,
                size: tuple[float, float] | None = None) -> Path:
    """The panels in a grid (2 columns from 3 panels on) as one PNG, SVG or PDF."""
    path = Path(path)
    check_figure_path(path)
    n = max(1, len(panels))
    cols = cols or (1 if n == 1 else 2)
    rows = math.ceil(n / cols)
    with figure(path, "the CSV export works without it", nrows=rows, ncols=cols, squeeze=False,
                figsize=size or (6.4 * cols if cols > 1 else 6.4, 4.0 * rows), layout="constrained") as (fig, axes):
        for k, ax in enumerate(axes.flat):
            if k < len(panels):
                draw_panel(ax, panels[k])
            else:
                ax.set_visible(False)
        if title:
            fig.suptitle(title)
    return path


def write_panels_csv(path: str | Path, panels: Sequence[Panel], label: str = "run",
                     settings: Settings | None = None) -> Path:
    """Every series and band of the panels in long format: label (a series' run id, a band's group),
    x, metric, value (+ lo, hi, n of bands), then a column per setting that differs between the runs
    (`settings`; a band's cell is its members' value where they share one)."""
    path = Path(path)
    xname = panels[0].xlabel if panels else "step"
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([label, xname, "metric", "value", "raw", "lo", "hi", "n", *(settings or {})])
            for p in panels:
                for s in p.series:
                    run = s.run or s.label
                    cells = setting_cells(settings, [run])
                    for i, (x, y) in enumerate(zip(s.x, s.y, strict=True)):
                        w.writerow([run, int(x) if xname == "step" else repr(x), s.metric or p.ylabel,
                                    repr(y), repr(s.raw[i]) if s.raw is not None else "", "", "", "", *cells])
                for b in p.bands:
                    cells = setting_cells(settings, b.members)
                    for i, x in enumerate(b.x):
                        w.writerow([b.label, int(x) if xname == "step" else repr(x), b.metric or p.ylabel,
                                    repr(b.mean[i]), repr(b.raw[i]) if b.raw is not None else "",
                                    repr(b.lo[i]), repr(b.hi[i]), b.n[i], *cells])
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}.") from None
    return path


# --- panel sets --------------------------------------------------------------------------------------

SUMMARY_PANELS = (  # title, metrics (solid, dashed, ...), log y
    ("accuracy", ("train_acc", "val_acc"), False),
    ("loss", ("train_loss", "val_loss"), True),
    ("norms", ("weight_norm", "grad_norm"), True),
    ("effective lr  η/‖θ‖²", ("eff_lr",), True),
)
STYLES = ("-", "--", ":", "-.")


def metrics_panel(runs: Sequence[tuple[str, list[dict], dict[str, int]]], metrics: Sequence[str], title: str,
                  logx: bool = True, logy: bool | None = None, colors: Sequence[str] | None = None) -> Panel:
    """Several metrics of several runs (run id, metric rows, milestones) in one panel: a colour per run,
    a line style per metric; milestones on the first metric's line of each run."""
    out = Panel(title, ", ".join(metric_name(m) for m in metrics), logx=logx,
                logy=default_log_y(metrics[0]) if logy is None else logy)
    for i, (label, rows, ms) in enumerate(runs):
        color = (colors[i] if colors else None) or PALETTE[i % len(PALETTE)]
        for k, m in enumerate(metrics):
            name = label if len(metrics) == 1 else (f"{label}: {metric_name(m)}" if len(runs) > 1 else metric_name(m))
            s = series(rows, m, label=name, milestones=ms if k == 0 else None, color=color)
            s.style, s.metric, s.run = STYLES[k % len(STYLES)], m, label
            if s.x:
                out.series.append(s)
    return out


def summary_panels(label: str, rows: list[dict], milestones: dict[str, int], logx: bool = True) -> list[Panel]:
    """A run at a glance: accuracy, loss, norms and the effective lr (the lr where it has none)."""
    panels = []
    for title, metrics, logy in SUMMARY_PANELS:
        if metrics == ("eff_lr",) and not any("eff_lr" in r for r in rows):
            title, metrics = "learning rate", ("lr",)
        p = metrics_panel([(label, rows, milestones)], metrics, title, logx, logy)
        for s in p.series:
            s.label = metric_name(s.metric or "")
        if not p.empty:
            panels.append(p)
    return panels


CONNECT_PANELS = (  # title, (train key, val key), log y
    ("cross-entropy", ("train_loss", "val_loss"), True),
    ("cross-entropy + L2", ("train_loss_l2", "val_loss_l2"), True),
    ("error (1 - acc)", ("train_err", "val_err"), False),
    ("mean stochastic-gradient norm", ("grad_norm",), True),
)


def connect_panels(results: Sequence[dict]) -> list[Panel]:
    """Saved connectivity results (curves, or 1-D landscape lines) overlaid panel by panel: a colour
    per result, train solid and val dashed. Raises ExportError for a 2-D landscape."""
    if not results:
        raise ExportError("no connectivity results to draw.")
    panels = []
    for title, keys, logy in CONNECT_PANELS:
        p = Panel(title, title, logy=logy)
        for i, r in enumerate(results):
            if r.get("kind") not in ("curve", "landscape1d"):
                raise ExportError(f"result '{r.get('name')}' is a {r.get('kind')}: "
                                  "plot draws curves and 1-D landscape lines.")
            d = r["data"]
            xkey = "t" if "t" in d else "alpha"
            p.xlabel = xkey
            for k, key in enumerate(keys):
                if key not in d:
                    continue
                xs, ys = [], []
                for x, y in zip(d[xkey], d[key], strict=True):
                    if isinstance(y, (int, float)) and math.isfinite(y):
                        xs.append(float(x))
                        ys.append(float(y))
                lab = r.get("name", "?") if len(keys) == 1 else f"{r.get('name', '?')} {key.split('_')[0]}"
                p.series.append(Series(lab, xs, ys, {}, PALETTE[i % len(PALETTE)], style=STYLES[k], metric=key))
        if p.series:
            panels.append(p)
    return panels


def save_figure(path: str | Path, all_series: Sequence[Series], title: str, ylabel: str,
                logx: bool = False, logy: bool = False, size: tuple[float, float] = (6.4, 4.0), bands=()) -> Path:
    """The series (and group bands) as one matplotlib panel (PNG, SVG or PDF by the file's suffix),
    milestones as dashed lines."""
    return save_panels(path, [Panel(title, ylabel, list(all_series), list(bands), logx, logy)], size=size)
