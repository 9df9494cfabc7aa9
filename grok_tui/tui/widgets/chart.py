"""A metric chart: several series against step, log axes drawn as log10 with readable ticks.

`show()` only stores the series; the chart re-plots when the data or the axes changed, and only its
own widget is refreshed (textual-plotext issue #11). Callers call `show()` when their data changed, at
most a few times per second, never per metric row. plotext gets at most about two points per column
of each series (the lowest and highest of each column's steps, `minmax_downsample`), whatever the
length of the run; an export takes the series whole.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual_plotext import PlotextPlot

from grok_tui.figures.compare import Band
from grok_tui.figures.series import PALETTE, Series, linear_ticks, log_ticks, minmax_downsample

MARKS = {"memorized": "M", "grokked": "G"}


def _signature(series: list[Series], bands: list[Band] = ()) -> tuple:
    return (tuple((s.label, len(s.x), s.x[-1] if s.x else None, s.y[-1] if s.y else None,
                   tuple(sorted(s.milestones.items())), s.color, s.raw is not None and s.y[-1]) for s in series),
            tuple((b.label, len(b.x), b.mean[-1] if b.mean else None, b.color) for b in bands))


_SGR = re.compile("\x1b\\[([0-9;]*)m")


@lru_cache(maxsize=512)
def _sgr_style(code: str) -> Style | None:
    """What one SGR sequence sets, parsed once by Rich (None: a reset)."""
    if code in ("", "0"):
        return None
    spans = Text.from_ansi(f"\x1b[{code}m.").spans
    style = spans[0].style if spans else None
    return Style.parse(style) if isinstance(style, str) else style


def ansi_lines(text: str) -> list[list[Segment]]:
    """Lines of segments from plotext's output, which only sets colours and resets (SGR codes): the
    same result as Text.from_ansi + render, several times faster on the UI thread."""
    lines = []
    for line in text.removesuffix("\n").split("\n"):
        segs: list[Segment] = []
        style: Style | None = None
        pos = 0
        for m in _SGR.finditer(line):
            if m.start() > pos:
                segs.append(Segment(line[pos:m.start()], style))
            new = _sgr_style(m.group(1))
            style = None if new is None else new if style is None else style + new
            pos = m.end()
        if pos < len(line):
            segs.append(Segment(line[pos:], style))
        lines.append(segs)
    return lines


class _Lines:
    """Lines of segments, rendered once: Textual takes them as they are, where a Text from ANSI would go
    through Textual's content conversion again on every render (a third of a chart's redraw)."""

    def __init__(self, lines: list[list[Segment]]):
        self.lines = lines

    def __rich_console__(self, console, options):
        for line in self.lines:
            yield from line
            yield Segment.line()


class MetricChart(PlotextPlot):
    """Series of one kind (accuracy, loss, ...) against step."""

    can_focus = True
    BINDINGS = [
        Binding("l", "toggle_logx", "Log x"),
        Binding("L", "toggle_logy", "Log y"),
        Binding("e", "export", "Export"),
        Binding("z", "zoom", "Zoom"),
    ]

    @dataclass
    class ExportRequested(Message):
        """Export this chart's series (figure + CSV)."""

        chart: MetricChart

    def __init__(self, title: str, metric: str, *, logx: bool = True, logy: bool = False,
                 id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.title = title
        self.metric = metric  # the metric name written in an exported CSV
        self.logx, self.logy = logx, logy
        self.series: list[Series] = []
        self.bands: list[Band] = []
        self.export_dir = None  # where an export goes by default (a run's figures/); None: the current directory
        self.export_settings = None  # the settings that differ between the runs drawn: CSV columns (runs view)
        self.export_title = None  # the exported figure's title, where it is not the chart's (runs view)
        self._drawn: tuple | None = None
        self.redraws = 0
        self.redraw_s = 0.0  # time spent building plots (re-plot + render), for the tests and the note
        self.plotted = 0  # the most points one line of the last re-plot handed plotext

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()  # the title and an empty frame until data comes

    # -- data -----------------------------------------------------------------------------------
    def show(self, series: list[Series], title: str | None = None, metric: str | None = None,
             bands: list[Band] | None = None) -> bool:
        """Store the series (and group bands); re-plot and refresh only when something changed. True when it did.

        A smoothed series (its `raw` kept) is drawn over its raw values in a dim line."""
        self.series = series
        if bands is not None:
            self.bands = bands
        if title is not None:
            self.title = title
        if metric is not None:
            self.metric = metric
        sig = (_signature(series, self.bands), self.logx, self.logy, self.title, self.size.width)
        if sig == self._drawn:
            return False
        self._drawn = sig
        self.replot()
        return True

    @property
    def points(self) -> int:
        return sum(len(s.x) for s in self.series) + sum(len(b.x) for b in self.bands)

    def _line(self, x: list[float], y: list[float], n: int, keep=(), **kw) -> tuple[list[float], list[float]]:
        x, y = minmax_downsample(x, y, n, self.logx, self.logy, keep)
        self.plotted = max(self.plotted, len(x))
        if not x:
            return [], []
        px = [math.log10(v) for v in x] if self.logx else x
        py = [math.log10(v) for v in y] if self.logy else y
        self.plt.plot(px, py, **{"marker": "braille", **kw})
        return px, py

    def replot(self) -> None:
        t0 = time.perf_counter()
        plt = self.plt
        plt.clear_figure()
        n = max(self.size.width or 80, 20)  # buckets: two points (lowest, highest) each
        self.plotted = 0
        xs_all: list[float] = []
        ys_all: list[float] = []
        marks: list[str] = []  # per series, in legend order
        lines = [(b.as_series(), b) for b in self.bands] + [(s, None) for s in self.series]
        for i, (s, band) in enumerate(lines):
            color = s.color or PALETTE[i % len(PALETTE)]
            if band is not None:  # the band's edges, dim, behind its mean
                for edge in (band.lo, band.hi):
                    ex, ey = self._line(band.x, edge, n, color=color, style="dim")
                    xs_all += ex
                    ys_all += ey
            if s.raw is not None:  # the raw curve, dim, behind the smoothed one
                rx, ry = self._line(s.x, s.raw, n, color=color, style="dim")
                xs_all += rx
                ys_all += ry
            px, py = self._line(s.x, s.y, n, s.milestones.values(), label=s.label, color=color,
                                **({"marker": "dot"} if s.style != "-" else {}))
            if not px:
                continue
            xs_all += px
            ys_all += py
            own = []
            for name, step in sorted(s.milestones.items(), key=lambda kv: kv[1]):
                if step <= 0 and self.logx:
                    continue
                plt.vline(math.log10(step) if self.logx else step, color=color)
                own.append(f"{MARKS.get(name, name)} {step}")
            if own:
                marks.append(" ".join(own))
        title = self.title + (f"  [{' | '.join(marks)}]" if marks else "")
        plt.title(title)
        if xs_all:
            self._ticks(xs_all, ys_all)
        self.refresh()
        self.redraws += 1
        self.redraw_s += time.perf_counter() - t0

    def _ticks(self, xs: list[float], ys: list[float]) -> None:
        plt = self.plt
        if self.logx:
            lo, hi = min(xs), max(xs)
            hi = hi if hi > lo else lo + 1
            pos, labels = log_ticks(10 ** lo, 10 ** hi, max_ticks=max(2, (self.size.width or 60) // 10))
            plt.xticks(pos, labels)
            plt.xlim(lo, hi)
        if self.logy:
            lo, hi = min(ys), max(ys)
            hi = hi if hi > lo else lo + 1
            pos, labels = log_ticks(10 ** lo, 10 ** hi, max_ticks=max(2, (self.size.height or 12) // 3))
            plt.yticks(pos, labels)
            plt.ylim(lo, hi)
        else:  # round ticks, no more than the rows hold: plotext's own skip a label on a short chart
            lo, hi = min(ys), max(ys)
            if hi > lo:
                rows = (self.size.height or 12) - 4  # less the title, the frame and the x labels
                pos, labels = linear_ticks(lo, hi, max_ticks=max(2, rows // 2 + 1))
                plt.yticks(pos, labels)

    def render(self):
        """PlotextPlot.render (size and theme set before each build, as it does), with plotext's ANSI
        output turned into segments by ansi_lines rather than Text.from_ansi."""
        t0 = time.perf_counter()
        plt, (w, h) = self.plt, self.size
        plt.plotsize(w, h)
        plt._set_size(w, h)
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        out = _Lines(ansi_lines(plt.build()))
        self.redraw_s += time.perf_counter() - t0
        return out

    # -- actions ------------------------------------------------------------------------------
    def action_toggle_logx(self) -> None:
        self.logx = not self.logx
        self.show(self.series)

    def action_toggle_logy(self) -> None:
        self.logy = not self.logy
        self.show(self.series)

    def action_export(self) -> None:
        self.post_message(self.ExportRequested(self))

    def action_zoom(self) -> None:
        if self.is_maximized:
            self.screen.minimize()
        else:
            self.screen.maximize(self, container=False)
