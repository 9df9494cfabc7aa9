"""The frequency x step heatmap of a run's embedding spectrum (store/progress.py's rows): each step's
share of the embedding's Fourier energy per frequency, on a log step axis like the other figures, the
key frequencies of the last row named. matplotlib is imported inside ``save_spectrum``; no torch."""

from __future__ import annotations

import math
from pathlib import Path

from grok_tui.figures.export import ExportError, check_figure_path, figure, log_ticks
from grok_tui.store.progress import spectrum_matrix


def energy_shares(matrix: list[list[float]]) -> list[list[float]]:
    """Each row's energies (value²) as shares of the row's total (NaN stays NaN; a zero row stays 0)."""
    out = []
    for row in matrix:
        e = [v * v if math.isfinite(v) else math.nan for v in row]
        total = sum(x for x in e if math.isfinite(x))
        out.append([x / total if total > 0 and math.isfinite(x) else (x if not math.isfinite(x) else 0.0) for x in e])
    return out


def _edges(steps: list[float], log: bool) -> list[float]:
    """Cell edges around each step: midpoints (geometric on a log axis), the ends mirrored."""
    if len(steps) == 1:
        s = steps[0]
        return [s / 1.5, s * 1.5] if log else [s - 0.5, s + 0.5]
    f = (lambda a, b: math.sqrt(a * b)) if log else (lambda a, b: (a + b) / 2)
    mids = [f(a, b) for a, b in zip(steps, steps[1:], strict=False)]
    first = steps[0] ** 2 / mids[0] if log else 2 * steps[0] - mids[0]
    last = steps[-1] ** 2 / mids[-1] if log else 2 * steps[-1] - mids[-1]
    return [first, *mids, last]


def save_spectrum(path: str | Path, rows: list[dict], title: str, logx: bool = True,
                  milestones: dict[str, int] | None = None) -> Path:
    """The heatmap of the progress rows as PNG, SVG or PDF; ExportError with one sentence when there is
    nothing to draw."""
    path = Path(path)
    check_figure_path(path)
    steps, matrix, basis = spectrum_matrix(rows)
    if logx:
        kept = [(s, m) for s, m in zip(steps, matrix, strict=True) if s > 0]
        steps, matrix = [s for s, _ in kept], [m for _, m in kept]
    if not steps:
        raise ExportError("no progress rows to draw (train with measure_every > 0, or run "
                          "grok-tui inspect RUN --checkpoints).")
    shares = energy_shares(matrix)
    k = len(matrix[0])
    data = [[shares[i][j] for i in range(len(steps))] for j in range(k)]  # frequency up, step across
    xs = _edges([float(s) for s in steps], logx)
    ys = [j + 0.5 for j in range(k + 1)]
    key = rows[-1].get("key_freqs") or []
    with figure(path, figsize=(7.2, 4.4), layout="constrained") as (fig, ax):
        mesh = ax.pcolormesh(xs, ys, data, cmap="magma", shading="flat")
        if logx:
            ax.set_xscale("log")
            pos, labels = log_ticks(xs[0], xs[-1])
            ax.set_xticks([10 ** p for p in pos], labels)
            ax.minorticks_off()
        for name, step in (milestones or {}).items():
            if step > 0 or not logx:
                ax.axvline(step, color="#7fdbff", linestyle="--", linewidth=1)
                ax.text(step, k + 0.4, f" {name}", color="#7fdbff", fontsize=8, va="top")
        for f in key:
            ax.annotate(str(f), xy=(xs[-1], f), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=7, color="#cc3300", annotation_clip=False)
        ax.set_xlabel("step")
        ax.set_ylabel(f"frequency k ({basis} basis)" if basis else "frequency k")
        ax.set_ylim(0.5, k + 0.5)
        named = ", ".join(map(str, key)) if len(key) <= 12 else ", ".join(map(str, key[:12])) + ", ..."
        ax.set_title(f"{title}\nkey frequencies at step {steps[-1]}: {named or '-'}", fontsize=10)
        fig.colorbar(mesh, ax=ax, label="share of the embedding's Fourier energy", pad=0.06)
    return path
