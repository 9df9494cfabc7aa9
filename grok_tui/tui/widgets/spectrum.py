"""The embedding spectrum in character cells (store/progress.py's rows): the last row's spectrum as bars,
and the frequency x step heatmap of its history.

Both are drawn as lines of segments (Textual's line API), built once per change of their data or size
and kept: a refresh, a scroll or another widget's redraw costs a lookup per line. The heatmap's step
axis is logarithmic like the charts'; it gets one column per step bucket of its width (the newest row
of the bucket; a bucket without a row repeats the one before), so a rebuild costs one pass over the
rows' steps plus the cells drawn, whatever the length of the run. No plotext, no tensor math.
"""

from __future__ import annotations

import math
import textwrap
import time

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from grok_tui.figures.series import log_ticks
from grok_tui.figures.spectrum import energy_shares

BLOCKS = " ▁▂▃▄▅▆▇█"
SHADES = "·░▒▓█"  # a cell's share of the largest share drawn, in five steps
KEY = Style(color="yellow", bold=True)
BAR = Style(color="cyan")
DIM = Style(dim=True)
TITLE = Style(bold=True)
SHADE_COLORS = ("blue", "magenta", "red", "yellow", "bright_yellow")
MARK = {"memorized": "M", "grokked": "G"}


def key_text(key: list[int], width: int) -> str:
    """'key: 4, 11, 17', cut to `width` with the count of the frequencies left out."""
    names = [str(k) for k in key]
    text = "key: " + (", ".join(names) if names else "-")
    n = len(names)
    while len(text) > width and n > 1:
        n -= 1
        text = f"key: {', '.join(names[:n])}, … ({len(names)})"
    return text


SHADE_STYLES = tuple(Style(color=c) for c in SHADE_COLORS)


def _shade(level: int, length: int) -> Segment:
    return Segment(" " * length) if level < 0 else Segment(SHADES[level] * length, SHADE_STYLES[level])


class CellPlot(Widget):
    """A widget drawn as kept lines of segments, rebuilt only when `signature()` or the size changed."""

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._strips: list[Strip] = []
        self._built: tuple | None = None
        self.message: str | None = None
        self.redraws = 0
        self.redraw_s = 0.0  # time spent building the lines, for the tests and the note in docs

    def signature(self) -> tuple:
        raise NotImplementedError

    def build(self, width: int, height: int) -> list[list[Segment]]:
        raise NotImplementedError

    def rebuild(self) -> bool:
        """Build the lines again if the data or the size changed; True when it did."""
        w, h = self.size
        sig = (self.signature(), self.message, w, h)
        if sig == self._built or w <= 0 or h <= 0:
            return False
        t0 = time.perf_counter()
        self._built = sig
        if self.message:
            lines = [[Segment(t, DIM)] for t in textwrap.wrap(self.message, max(10, w))[:h]]
        else:
            lines = self.build(w, h)
        self._strips = [Strip(line).adjust_cell_length(w) for line in lines]
        self.redraws += 1
        self.redraw_s += time.perf_counter() - t0
        self.refresh()
        return True

    @property
    def text(self) -> list[str]:
        """The lines drawn, as plain text (what a reader of the terminal sees)."""
        return [s.text for s in self._strips]

    def on_resize(self) -> None:
        self.rebuild()

    def render_line(self, y: int) -> Strip:
        strip = self._strips[y] if y < len(self._strips) else Strip.blank(self.size.width)
        return strip.apply_style(self.rich_style)


class SpectrumBars(CellPlot):
    """One progress row's spectrum: frequency k across, its norm up; the key frequencies highlighted
    and named in the title line."""

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.row: dict | None = None

    @property
    def values(self) -> list[float]:
        spec = self.row.get("spectrum", []) if self.row else []
        return [v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0 for v in spec]

    @property
    def key(self) -> list[int]:
        return list(self.row.get("key_freqs") or []) if self.row else []

    def show(self, row: dict | None, message: str | None = None) -> bool:
        self.row, self.message = row, message
        return self.rebuild()

    def signature(self) -> tuple:
        r = self.row or {}
        return (r.get("step"), id(r))

    def build(self, width: int, height: int) -> list[list[Segment]]:
        vals, keys = self.values, set(self.key)
        step = (self.row or {}).get("step")
        head = f"spectrum at step {step}  "
        names = key_text(self.key, width - len(head) if width - len(head) >= 20 else width)
        lines = [[Segment(head, TITLE), Segment(names, KEY)] if len(head) + len(names) <= width
                 else [Segment(names, KEY)]]
        if not vals or height < 3:
            return lines
        gutter = 6
        pw, bh = max(1, width - gutter), height - 2
        n = len(vals)
        per = max(1, math.ceil(n / pw))  # frequencies per column group
        groups = [range(i, min(n, i + per)) for i in range(0, n, per)]
        cw = max(1, pw // len(groups))  # columns per group
        bw = cw - 1 if cw >= 2 else cw  # a gap between bars that have room for one
        top = max(vals) or 1.0
        heights = [round(max(vals[i] for i in g) / top * bh * 8) for g in groups]
        styles = [KEY if any(i + 1 in keys for i in g) else BAR for g in groups]
        for line in range(bh - 1, -1, -1):
            label = f"{top:.3g}" if line == bh - 1 else ("0" if line == 0 else "")
            segs = [Segment(f"{label:>{gutter - 1}} ", DIM)]
            for eighths, style in zip(heights, styles, strict=True):
                level = eighths - line * 8
                ch = "█" if level >= 8 else BLOCKS[level] if level > 0 else " "
                segs.append(Segment(ch * bw, style))
                if cw > bw:
                    segs.append(Segment(" " * (cw - bw)))
            lines.append(segs)
        axis = [" "] * pw
        nxt = 0
        for gi, g in enumerate(groups):  # k labels where they fit, the first frequency of a group
            pos, lab = gi * cw, str(g[0] + 1)
            if pos >= nxt and pos + len(lab) <= pw:
                axis[pos:pos + len(lab)] = lab
                nxt = pos + len(lab) + 2
        lines.append([Segment(f"{'k':>{gutter - 1}} ", DIM), Segment("".join(axis), DIM)])
        return lines


class SpectrumHeatmap(CellPlot):
    """Frequency (up) x step (across, log) of the progress rows: each step's share of the embedding's
    Fourier energy per frequency, as in `grok-tui plot --spectrum`."""

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.rows: list[dict] = []
        self.epoch = 0
        self.milestones: dict[str, int] = {}
        self.columns: list[int] = []  # the step each column with a row of its own shows
        self.plot_width = 0

    def show(self, rows: list[dict], epoch: int = 0, milestones: dict[str, int] | None = None,
             message: str | None = None) -> bool:
        """The rows (a list that may grow in place: its length is part of the signature)."""
        self.rows, self.epoch, self.message = rows, epoch, message
        self.milestones = dict(milestones or {})
        if message:
            self.columns = []
        return self.rebuild()

    def signature(self) -> tuple:
        return (id(self.rows), self.epoch, len(self.rows), tuple(sorted(self.milestones.items())))

    def build(self, width: int, height: int) -> list[list[Segment]]:
        rows = self.rows
        k = len(rows[-1]["spectrum"]) if rows else 0
        picked = [r for r in rows if r["step"] > 0 and len(r["spectrum"]) == k]  # one basis, a log axis
        marks = "  ".join(f"{MARK.get(n, n)} {s}" for n, s in sorted(self.milestones.items(), key=lambda kv: kv[1]))
        title = "energy share, k × step"
        lines = [[Segment(title, TITLE), Segment(f"  {marks}" if marks else "", DIM)]]
        gutter = 4
        pw, ph = max(1, width - gutter), height - 2
        self.plot_width = pw
        self.columns = []
        if not picked or ph < 1:
            return lines
        # step buckets on a log axis: the newest row of each bucket
        lo, hi = math.log10(picked[0]["step"]), math.log10(picked[-1]["step"])
        span = hi - lo
        at: dict[int, dict] = {}
        for r in picked:
            at[round((math.log10(r["step"]) - lo) / span * (pw - 1)) if span > 0 else 0] = r
        self.columns = [at[c]["step"] for c in sorted(at)]
        shown = [at[c] for c in sorted(at)]
        shares = energy_shares([[float(v) if isinstance(v, (int, float)) else math.nan for v in r["spectrum"]]
                                for r in shown])
        per = max(1, math.ceil(k / ph))  # frequencies per line
        bands = [range(i, min(k, i + per)) for i in range(0, k, per)]
        top = max((v for s in shares for v in s if math.isfinite(v)), default=0.0) or 1.0
        n = len(SHADES)

        def levels(share: list[float]) -> list[int]:  # per line: the shade of its largest share, -1 for none
            out = []
            for band in bands:
                vs = [share[i] for i in band if math.isfinite(share[i])]
                out.append(min(n - 1, int(max(vs) / top * n)) if vs else -1)
            return out

        by_col = {c: levels(sh) for c, sh in zip(sorted(at), shares, strict=True)}
        cols, cur = [], None
        for c in range(pw):  # a column without a row of its own repeats the one before
            cur = by_col.get(c, cur)
            cols.append(cur)
        keys = set(rows[-1].get("key_freqs") or [])
        body = []
        for bi in range(len(bands) - 1, -1, -1):  # frequency 1 at the bottom
            band = bands[bi]
            key = next((i + 1 for i in band if i + 1 in keys), None)  # a line with a key frequency: named by it
            segs = [Segment(f"{key or band[0] + 1:>3} ", KEY if key else DIM)]
            run_lvl, run_len = None, 0
            for col in cols:  # runs of one shade: one segment each
                lvl = col[bi] if col is not None else -1
                if lvl != run_lvl and run_len:
                    segs.append(_shade(run_lvl, run_len))
                    run_len = 0
                run_lvl, run_len = lvl, run_len + 1
            if run_len:
                segs.append(_shade(run_lvl, run_len))
            body.append(segs)
        lines += [[Segment("")]] * max(0, ph - len(body)) + body
        axis = [" "] * pw
        if span > 0:
            for name, s in self.milestones.items():  # the marks first; tick labels where they leave room
                if s > 0 and 10 ** lo <= s <= 10 ** hi:
                    axis[round((math.log10(s) - lo) / span * (pw - 1))] = MARK.get(name, name[:1])
            pos, labels = log_ticks(10 ** lo, 10 ** hi, max_ticks=max(2, pw // 10))
            for p, lab in zip(pos, labels, strict=True):
                c = min(round((p - lo) / span * (pw - 1)), pw - len(lab))
                if c >= 0 and all(ch == " " for ch in axis[max(0, c - 1):c + len(lab) + 1]):
                    axis[c:c + len(lab)] = lab
        else:
            lab = str(picked[0]["step"])
            axis[:len(lab)] = lab
        lines.append([Segment("    ", DIM), Segment("".join(axis), DIM)])
        return lines
