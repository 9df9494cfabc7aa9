"""The phase diagram of grokking: a sweep over two fields as a grid of cells, each the steps to grok
(or the best validation accuracy, or the memorized-to-grokked gap) over the cell's runs, with the cells
where no run grokked marked. Read from a sweep summary (runs/sweeps/<id>.json, sweep/plan.py); drawn by
the TUI's phase view and by `grok-tui plot --phase` (save_phase, matplotlib). No torch, no UI imports.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grok_tui.figures.compare import fmt_value
from grok_tui.figures.export import check_figure_path, figure, pyplot

VALUES = {"grokked": "steps to grok", "best_val": "best val acc", "gap": "steps from memorized to grokked"}


@dataclass
class Cell:
    runs: int = 0
    grokked: int = 0  # runs of the cell that grokked
    value: float | None = None  # mean over the runs that have one; None: no run has a value
    std: float | None = None

    @property
    def text(self) -> str:
        """A cell as the TUI writes it: the value, or 'no grok' / '-'."""
        if self.value is None:
            return "no grok" if self.runs else "-"
        v = self.value
        s = f"{v:.3f}" if abs(v) < 10 else f"{v:,.0f}"
        return s + (f" {self.grokked}/{self.runs}" if self.grokked < self.runs else "")


@dataclass
class PhaseGrid:
    sweep_id: str
    x: str
    y: str
    value: str
    xs: list[Any]
    ys: list[Any]
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)  # (i of x, j of y) -> cell
    fixed: dict[str, Any] = field(default_factory=dict)  # other swept fields: averaged over, listed here

    def cell(self, i: int, j: int) -> Cell:
        return self.cells.get((i, j), Cell())

    @property
    def title(self) -> str:
        return f"{VALUES[self.value]} · sweep {self.sweep_id}"

    def finite(self) -> list[float]:
        return [c.value for c in self.cells.values() if c.value is not None and math.isfinite(c.value)]


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def phase_grid(summary: dict, x: str, y: str, value: str = "grokked") -> PhaseGrid:
    """The cells of the sweep's members over (x, y); ValueError with one sentence when the sweep does
    not vary x or y. Other swept fields (seeds included) are averaged over."""
    x, y = x.replace("-", "_"), y.replace("-", "_")
    if value not in VALUES:
        raise ValueError(f"the phase value must be one of {', '.join(VALUES)}, got '{value}'.")
    grid = summary.get("grid", {})
    varied = ", ".join(grid) or "nothing"
    for f in (x, y):
        if f not in grid:
            raise ValueError(f"sweep {summary.get('sweep_id')} does not vary '{f}' (it varies {varied}).")
    if x == y:
        raise ValueError(f"give two different fields for x and y (both are '{x}').")
    xs, ys = _sorted(list(grid[x])), _sorted(list(grid[y]))
    out = PhaseGrid(summary.get("sweep_id", "?"), x, y, value, xs, ys,
                    fixed={k: v for k, v in grid.items() if k not in (x, y)})
    groups: dict[tuple[int, int], list[dict]] = {}
    for m in summary.get("members", []):
        vals = m.get("values", {})
        if vals.get(x) in xs and vals.get(y) in ys:
            groups.setdefault((xs.index(vals[x]), ys.index(vals[y])), []).append(m)
    for key, members in groups.items():
        cell = Cell(runs=len(members), grokked=sum(isinstance(m.get("grokked_step"), int) for m in members))
        if value == "grokked":
            got = [m["grokked_step"] for m in members if isinstance(m.get("grokked_step"), int)]
        elif value == "gap":
            got = [m["grokked_step"] - m["memorized_step"] for m in members
                   if isinstance(m.get("grokked_step"), int) and isinstance(m.get("memorized_step"), int)]
        else:
            got = [m["best_val_acc"] for m in members if isinstance(m.get("best_val_acc"), (int, float))]
        if got:
            cell.value = statistics.fmean(got)
            cell.std = statistics.stdev(got) if len(got) > 1 else 0.0
        out.cells[key] = cell
    return out


def csv_rows(g: PhaseGrid) -> list[list[Any]]:
    rows: list[list[Any]] = [[g.x, g.y, "runs", "grokked_runs", g.value, f"{g.value}_std"]]
    for j, yv in enumerate(g.ys):
        for i, xv in enumerate(g.xs):
            c = g.cell(i, j)
            rows.append([xv, yv, c.runs, c.grokked, c.value, c.std])
    return rows


def save_phase(path: str | Path, g: PhaseGrid, title: str | None = None) -> Path:
    """The grid as a matplotlib heat map (PNG, SVG or PDF): one cell per (x, y) value, its number
    written in it, cells where no run grokked hatched and labelled 'no grok'."""
    path = Path(path)
    check_figure_path(path)
    plt = pyplot()
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Rectangle

    nx, ny = len(g.xs), len(g.ys)
    data = [[math.nan] * nx for _ in range(ny)]
    for (i, j), c in g.cells.items():
        if c.value is not None:
            data[j][i] = c.value
    vals = g.finite()
    cmap = plt.get_cmap("viridis_r" if g.value != "best_val" else "viridis").with_extremes(bad="#eeeeee")
    log = g.value != "best_val" and vals and min(vals) > 0 and max(vals) / min(vals) > 5
    norm = LogNorm(min(vals), max(vals)) if log else Normalize(min(vals) if vals else 0, max(vals) if vals else 1)
    with figure(path, figsize=(1.3 * nx + 2.6, 0.9 * ny + 1.8), layout="constrained") as (fig, ax):
        im = ax.imshow(data, origin="lower", cmap=cmap, norm=norm, aspect="auto")
        for (i, j), c in g.cells.items():
            if c.value is None:
                ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#999999",
                                       linewidth=0))
                ax.text(i, j, "no grok" if c.runs else "-", ha="center", va="center", fontsize=9, color="#444444")
            else:
                rgba = cmap(norm(c.value))
                dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
                ax.text(i, j, c.text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
        ax.set_xticks(range(nx), [fmt_value(v) for v in g.xs])
        ax.set_yticks(range(ny), [fmt_value(v) for v in g.ys])
        ax.set_xlabel(g.x)
        ax.set_ylabel(g.y)
        fixed = "; ".join(f"{k} over {', '.join(fmt_value(v) for v in vs)}" for k, vs in g.fixed.items())
        ax.set_title((title or g.title) + (f"\n(mean over {fixed})" if fixed else ""), fontsize=10)
        fig.colorbar(im, ax=ax, label=VALUES[g.value])
    return path
