"""Phase diagram view: a sweep over two fields as a grid of steps to grok (or best val acc, or the
memorized-to-grokked gap), the cells where no run grokked marked. Opened from the runs view (P).
Reads sweep summaries (runs/sweeps/<id>.json) only; the grid is computed by figures/phase.py."""

from __future__ import annotations

import csv
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from grok_tui.errors import GrokError
from grok_tui.figures import phase
from grok_tui.store.sweeps import list_sweeps, load_summary
from grok_tui.tui.messages import ExportDone
from grok_tui.tui.widgets.phase_map import PhaseMap

VALUE_ORDER = tuple(phase.VALUES)


class PhaseScreen(Screen):
    BINDINGS = [
        Binding("n", "sweep(1)", "Next sweep"),
        Binding("N", "sweep(-1)", "Prev sweep", show=False),
        Binding("x", "axis('x')", "x field"),
        Binding("y", "axis('y')", "y field"),
        Binding("v", "value", "Value"),
        Binding("e", "export", "Export"),
        Binding("escape", "close", "Back"),
    ]

    def __init__(self, runs_dir: Path):
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.summaries: list[dict] = []
        self.index = 0
        self.x: str | None = None
        self.y: str | None = None
        self.value = "grokked"
        self.grid: phase.PhaseGrid | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="phase-body"):
            yield Static("", id="phase-hint")
            yield PhaseMap(id="phase-map")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#phase-hint", Static).update("reading the sweep summaries...")
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="phase-load", description="read sweep summaries")
    def _load(self) -> None:
        summaries = []
        for p in list_sweeps(self.runs_dir):
            try:
                s = load_summary(p)
            except GrokError:
                continue
            if len(s.get("grid", {})) >= 2:
                summaries.append(s)
        # sweeps over two fields other than the seeds first (the phase diagram proper), newest first
        summaries.sort(key=lambda s: len([f for f in s["grid"] if f not in ("seed", "data_seed")]) < 2)
        self.app.call_from_thread(self._loaded, summaries)

    def _loaded(self, summaries: list[dict]) -> None:
        self.summaries = summaries
        self._pick_fields()
        self.redraw()

    @property
    def summary(self) -> dict | None:
        return self.summaries[self.index] if self.summaries else None

    def _fields(self) -> list[str]:
        return list(self.summary.get("grid", {})) if self.summary else []

    def _pick_fields(self) -> None:
        fields = [f for f in self._fields() if f not in ("seed", "data_seed")] or self._fields()
        if len(fields) < 2:
            fields = self._fields()
        self.x, self.y = (fields[0], fields[1]) if len(fields) >= 2 else (None, None)

    def redraw(self) -> None:
        hint = self.query_one("#phase-hint", Static)
        s = self.summary
        if s is None or self.x is None or self.y is None:
            self.grid = None
            hint.update("no sweep over two fields in this runs directory")
            self.query_one(PhaseMap).show(None)
            return
        self.grid = phase.phase_grid(s, self.x, self.y, self.value)
        hint.update(f"sweep [b]{s['sweep_id']}[/] ({self.index + 1}/{len(self.summaries)}, n) · x [b]{self.x}[/] (x) · "
                    f"y [b]{self.y}[/] (y) · [b]{phase.VALUES[self.value]}[/] (v) · e: export")
        self.query_one(PhaseMap).show(self.grid)

    # -- actions ------------------------------------------------------------------------------------
    def action_sweep(self, step: int) -> None:
        if len(self.summaries) < 2:
            self.notify("this is the only sweep over two fields." if self.summaries else
                        "no sweep over two fields yet.", severity="warning")
            return
        self.index = (self.index + step) % len(self.summaries)
        self._pick_fields()
        self.redraw()

    def action_axis(self, which: str) -> None:
        fields = self._fields()
        if len(fields) < 3:
            if len(fields) == 2 and self.x and self.y:  # two fields: swap them
                self.x, self.y = self.y, self.x
                self.redraw()
            else:
                self.notify("no sweep over two fields to choose from.", severity="warning")
            return
        other = self.y if which == "x" else self.x
        cur = self.x if which == "x" else self.y
        choices = [f for f in fields if f != other]
        nxt = choices[(choices.index(cur) + 1) % len(choices)] if cur in choices else choices[0]
        if which == "x":
            self.x = nxt
        else:
            self.y = nxt
        self.redraw()

    def action_value(self) -> None:
        self.value = VALUE_ORDER[(VALUE_ORDER.index(self.value) + 1) % len(VALUE_ORDER)]
        if self.summary is not None:
            self.redraw()

    def action_close(self) -> None:
        self.dismiss()

    def action_export(self) -> None:
        if self.grid is None:
            self.notify("nothing to export: no sweep over two fields.", severity="warning")
            return
        self._export(self.grid)

    @work(thread=True, exit_on_error=False, group="export", description="export phase diagram")
    def _export(self, g: phase.PhaseGrid) -> None:
        base = (self.runs_dir / "sweeps" / f"{g.sweep_id}-phase-{g.x}-{g.y}-{g.value}").resolve()
        paths, error = [], None
        try:
            with open(base.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(phase.csv_rows(g))
            paths.append(str(base.with_suffix(".csv")))
            paths.append(str(phase.save_phase(base.with_suffix(".png"), g)))
        except (GrokError, OSError) as e:
            error = str(e)
        self.app.post_message(ExportDone(paths, error))
