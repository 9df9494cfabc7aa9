"""Panels of the connectivity view: line plots against t (or alpha) and a landscape heat map.

`ConnectPlot` keeps its lines and re-plots them before each build (plotext rebuilds on every resize),
then refreshes only itself (a refresh of the screen would render every widget again). Results have tens of points, so no downsampling.
`LandscapeHeatmap` draws a grid of values with half-block characters, two grid rows per line, colours
on a log scale when the values span decades (losses), with letters at marked points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widget import Widget
from textual_plotext import PlotextPlot

COLORS = ("cyan", "magenta", "yellow", "green", "red")


@dataclass
class Line:
    label: str
    x: list[float]
    y: list[float]


class ConnectPlot(PlotextPlot):
    """A titled panel of lines; vertical marks (e.g. a chain's checkpoints) optional."""

    def __init__(self, title: str = "", id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.title = title
        self.xlabel = "t"
        self.lines: list[Line] = []
        self.marks: list[float] = []

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()

    def show(self, title: str, lines: list[Line], xlabel: str = "t", marks: list[float] | None = None) -> None:
        self.title, self.lines, self.xlabel, self.marks = title, lines, xlabel, list(marks or [])
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title(self.title)
        for i, ln in enumerate(self.lines):
            pts = [(x, y) for x, y in zip(ln.x, ln.y, strict=True) if math.isfinite(y)]
            if pts:
                plt.plot([p[0] for p in pts], [p[1] for p in pts], label=ln.label, color=COLORS[i % len(COLORS)],
                         marker="braille")
        for m in self.marks:
            plt.vline(m, color="gray")
        if self.lines:
            plt.xlabel(self.xlabel)
        self.refresh()


def _lerp(a: tuple[int, int, int], b: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(a[i] + (b[i] - a[i]) * f) for i in range(3))  # type: ignore[return-value]


RAMP = ((13, 8, 135), (126, 3, 168), (204, 71, 120), (248, 149, 64), (240, 249, 33))  # plasma-like


def color_of(f: float) -> Color:
    """A colour for f in [0, 1] (low: dark blue, high: yellow)."""
    f = min(1.0, max(0.0, f)) * (len(RAMP) - 1)
    i = min(int(f), len(RAMP) - 2)
    return Color.from_rgb(*_lerp(RAMP[i], RAMP[i + 1], f - i))


@dataclass
class HeatData:
    title: str
    values: list[list[float]]  # values[i][j]: alpha index i (x, left to right), beta index j (y, bottom up)
    log: bool = False
    marks: list[tuple[str, int, int]] = field(default_factory=list)  # (letter, i, j)


class LandscapeHeatmap(Widget):
    """A heat map of a 2-D landscape with a one-line title and scale."""

    DEFAULT_CSS = "LandscapeHeatmap { height: 1fr; width: 1fr; }"

    def __init__(self, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.data: HeatData | None = None

    def show(self, data: HeatData) -> None:
        self.data = data
        self.refresh()

    def _scale(self) -> tuple[float, float, bool]:
        vals = [v for row in self.data.values for v in row if math.isfinite(v)] if self.data else []
        if not vals:
            return 0.0, 1.0, False
        lo, hi = min(vals), max(vals)
        log = bool(self.data and self.data.log and lo > 0 and hi / lo > 10)
        return (math.log10(lo), math.log10(hi), True) if log else (lo, hi, False)

    def render(self) -> Text:
        width, height = max(1, self.size.width), max(1, self.size.height)
        if self.data is None or not self.data.values:
            return Text("no landscape yet", style="dim")
        lo, hi, log = self._scale()
        lines = [Text(f"{self.data.title}  {'log ' if log else ''}[{_fmt(lo, log)} .. {_fmt(hi, log)}]",
                      style="bold")]
        nx, ny = len(self.data.values), len(self.data.values[0])
        rows = max(1, height - 1)
        marks = {(int(i * width / nx), int(j * 2 * rows / ny)): c for c, i, j in self.data.marks}

        def val(cx: int, cy: int) -> float:  # cy counts grid rows from the top
            i = min(nx - 1, int(cx * nx / width))
            j = min(ny - 1, int((2 * rows - 1 - cy) * ny / (2 * rows)))
            v = self.data.values[i][j]
            v = math.log10(v) if log and v > 0 else v
            return (v - lo) / (hi - lo) if hi > lo and math.isfinite(v) else 0.0

        for r in range(rows):
            line = Text()
            for cx in range(width):
                mark = marks.get((cx, 2 * rows - 1 - 2 * r)) or marks.get((cx, 2 * rows - 2 - 2 * r))
                top, bottom = color_of(val(cx, 2 * r)), color_of(val(cx, 2 * r + 1))
                if mark:
                    line.append(mark, Style(color="white", bgcolor=bottom, bold=True))
                else:
                    line.append("▀", Style(color=top, bgcolor=bottom))
            lines.append(line)
        return Text("\n").join(lines)


def _fmt(v: float, log: bool) -> str:
    return f"{10 ** v:.3g}" if log else f"{v:.3g}"
