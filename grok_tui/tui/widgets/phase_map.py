"""The phase diagram of a sweep as coloured cells: one per (x, y) value, the value written in it; the
cells where no run grokked shown as `no grok` on a hatched grey. Draws a `figures.phase.PhaseGrid`."""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from grok_tui.figures.compare import fmt_value
from grok_tui.figures.phase import VALUES, PhaseGrid
from grok_tui.tui.widgets.connect_plot import color_of

NO_GROK = Style(color="grey70", bgcolor="grey23")


class PhaseMap(Widget):
    DEFAULT_CSS = "PhaseMap { height: 1fr; width: 1fr; }"

    def __init__(self, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.grid: PhaseGrid | None = None

    def show(self, grid: PhaseGrid | None) -> None:
        self.grid = grid
        self.refresh()

    def _norm(self):
        vals = self.grid.finite() if self.grid else []
        if not vals:
            return lambda v: 0.5
        lo, hi = min(vals), max(vals)
        log = self.grid.value != "best_val" and lo > 0 and hi / lo > 5
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        flip = self.grid.value != "best_val"  # fewer steps is the bright end, like a higher accuracy

        def f(v: float) -> float:
            v = math.log10(v) if log and v > 0 else v
            t = (v - lo) / (hi - lo) if hi > lo else 0.5
            return 1.0 - t if flip else t

        return f

    def render(self) -> Text:
        g = self.grid
        if g is None:
            return Text("no sweep with two swept fields yet: run e.g.\n"
                        "grok-tui sweep --preset smoke --train-frac 0.3,0.5,0.7 --weight-decay 0.3,1", style="dim")
        width, height = max(20, self.size.width), max(6, self.size.height)
        ylab = [fmt_value(v) for v in g.ys]
        lw = max(len(g.y), *(len(s) for s in ylab)) + 1
        nx, ny = len(g.xs), len(g.ys)
        cw = max(6, (width - lw) // max(1, nx))
        ch = max(1, (height - 4 - bool(g.legend)) // max(1, ny))
        norm = self._norm()
        out = [Text(f"{VALUES[g.value]} ({g.value})", style="bold")]
        if g.fixed:
            out.append(Text("mean over " + "; ".join(f"{k} {', '.join(fmt_value(v) for v in vs)}"
                                                      for k, vs in g.fixed.items()), style="dim"))
        for j in reversed(range(ny)):  # the largest y at the top, as in the figure
            for r in range(ch):
                line = Text((g.y if j == ny - 1 and r == 0 and ch > 1 else ylab[j] if r == ch // 2 else "").ljust(lw)[:lw])
                for i in range(nx):
                    c = g.cell(i, j)
                    label = c.text if r == ch // 2 else ""
                    if c.value is None:
                        style = NO_GROK
                        fill = "╱" if not label else " "
                    else:
                        bg = color_of(norm(c.value))
                        r_, g_, b_ = bg.triplet or (0, 0, 0)
                        dark = 0.299 * r_ + 0.587 * g_ + 0.114 * b_ < 128
                        style = Style(color="white" if dark else "black", bgcolor=bg, bold=True)
                        fill = " "
                    cell = label[: cw - 1].center(cw - 1) if label else fill * (cw - 1)
                    line.append(cell, style)
                    line.append(" ")
                out.append(line)
        axis = Text(" " * lw)
        for v in g.xs:
            axis.append(fmt_value(v)[: cw - 1].center(cw - 1) + " ")
        out.append(axis)
        out.append(Text(" " * lw + g.x.center(cw * nx), style="bold"))
        if g.legend:
            out.append(Text(g.legend, style="dim"))
        return Text("\n").join(out)
