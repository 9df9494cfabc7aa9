"""Runs / compare: every run under the runs directory, and the selected ones overlaid on one chart.

A thread worker rescans the directory about once a second (runs started headless in another terminal
appear, running ones update) and reads the new rows of the selected runs with `store.files.JsonlTail`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from grok_tui.figures.export import (
    METRIC_NAMES,
    PALETTE,
    Series,
    default_log_y,
    metric_keys,
    metric_name,
    milestones_of,
    series,
)
from grok_tui.store import runs as store
from grok_tui.store.files import JsonlTail
from grok_tui.tui.screens.dialogs import ConfirmScreen, RunDetailsScreen
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.run_table import RunTable, short_id

SCAN_S = 1.0  # seconds between scans of the runs directory
DEFAULT_METRICS = tuple(METRIC_NAMES)


@dataclass
class Followed:
    """The rows of one selected run read so far (its files are tailed, not re-read)."""

    metrics: JsonlTail
    events: JsonlTail
    rows: dict[int, dict] = field(default_factory=dict)
    milestones: dict[str, int] = field(default_factory=dict)

    def read(self) -> bool:
        new = self.metrics.read()
        evs = self.events.read()
        if new:  # swap in a new dict: the UI thread may be reading the old one
            rows = dict(self.rows)
            rows.update({r["step"]: r for r in new if isinstance(r.get("step"), int)})
            self.rows = rows
        if evs:
            self.milestones = {**milestones_of(evs), **self.milestones}
        return bool(new or evs)

    def sorted_rows(self) -> list[dict]:
        return [self.rows[s] for s in sorted(self.rows)]


class RunsScreen(Screen):
    """Table of runs; space selects, m picks the metric, the chart overlays the selection."""

    BINDINGS = [
        Binding("space", "toggle_select", "Select"),
        Binding("m", "metric(1)", "Metric"),
        Binding("M", "metric(-1)", "Metric back", show=False),
        Binding("l", "logx", "Log x"),
        Binding("L", "logy", "Log y"),
        Binding("enter", "details", "Details", show=False),
        Binding("o", "details", "Open"),
        Binding("a", "attach", "Follow", show=False),  # in the palette; the footer keeps Export at 80 columns
        Binding("d", "delete", "Delete"),
        Binding("e", "export", "Export"),
    ]

    @dataclass
    class Scanned(Message):
        runs: list[store.RunInfo]
        changed: bool

    def __init__(self) -> None:
        super().__init__()
        self.selected: list[str] = []  # in selection order; colours follow it
        self.followed: dict[str, Followed] = {}
        self.metric = "val_acc"
        self.infos: dict[str, store.RunInfo] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-body"):
            yield RunTable(id="run-table")
            yield Static("", id="runs-hint")
            yield MetricChart(metric_name(self.metric), self.metric, logx=True, logy=False, id="overlay")
        yield Footer()

    def on_mount(self) -> None:
        self.scan()
        self.set_interval(SCAN_S, self._maybe_scan)
        self._update_hint()

    def on_screen_resume(self) -> None:
        self.scan()

    @property
    def runs_dir(self):
        return self.app.runs_dir

    @property
    def colors(self) -> dict[str, str]:
        return {rid: PALETTE[i % len(PALETTE)] for i, rid in enumerate(self.selected)}

    # -- scanning -------------------------------------------------------------------------------
    def _maybe_scan(self) -> None:
        if self.app.screen is self:
            self.scan()

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-scan", description="scan runs")
    def scan(self) -> None:
        runs = store.list_runs(self.runs_dir)
        changed = False
        for rid in list(self.selected):
            f = self.followed.get(rid)
            if f is None:
                path = self.runs_dir / rid
                f = self.followed[rid] = Followed(JsonlTail(path / "metrics.jsonl"),
                                                  JsonlTail(path / "events.jsonl"))
            changed |= f.read()
        self.post_message(self.Scanned(runs, changed))

    @on(Scanned)
    def _scanned(self, msg: Scanned) -> None:
        self.infos = {r.id: r for r in msg.runs}
        self.selected = [rid for rid in self.selected if rid in self.infos]
        self.query_one(RunTable).sync(msg.runs, self.colors)
        self.redraw()

    def redraw(self) -> None:
        colors = self.colors
        out: list[Series] = []
        for rid in self.selected:
            f = self.followed.get(rid)
            if f is None:
                continue
            info = self.infos.get(rid)
            ms = dict(f.milestones)
            if info is not None:
                ms.update({k: v for k, v in milestones_of([], info.summary).items() if k not in ms})
            s = series(f.sorted_rows(), self.metric, label=short_id(rid), milestones=ms, color=colors[rid])
            out.append(s)
        chart = self.query_one("#overlay", MetricChart)
        chart.show(out, title=f"{metric_name(self.metric)} ({self.metric})", metric=self.metric)

    def _update_hint(self) -> None:
        n = len(self.selected)
        self.query_one("#runs-hint", Static).update(
            f"[b]{n}[/] selected · metric [b]{self.metric}[/] (m) · log x {'on' if self.chart.logx else 'off'} (l) · "
            f"log y {'on' if self.chart.logy else 'off'} (L)" if n else
            "space: select runs to overlay · m: metric · o: details · d: delete · e: export")

    @property
    def chart(self) -> MetricChart:
        return self.query_one("#overlay", MetricChart)

    # -- actions ------------------------------------------------------------------------------
    def action_toggle_select(self) -> None:
        rid = self.query_one(RunTable).current_id
        if rid is None:
            return
        if rid in self.selected:
            self.selected.remove(rid)
            self.followed.pop(rid, None)
        else:
            self.selected.append(rid)
        self._update_hint()
        self.query_one(RunTable).sync(list(self.infos.values()), self.colors)
        self.redraw()
        self.scan()

    def _metric_choices(self) -> list[str]:
        rows = [r for f in self.followed.values() for r in list(f.rows.values())[-1:]]
        keys = metric_keys(rows) if rows else []
        return keys or list(DEFAULT_METRICS)

    def action_metric(self, step: int) -> None:
        choices = self._metric_choices()
        i = choices.index(self.metric) if self.metric in choices else -1
        self.metric = choices[(i + step) % len(choices)]
        self.chart.logy = default_log_y(self.metric)
        self._update_hint()
        self.redraw()

    def action_logx(self) -> None:
        self.chart.action_toggle_logx()
        self._update_hint()

    def action_logy(self) -> None:
        self.chart.action_toggle_logy()
        self._update_hint()

    def action_details(self) -> None:
        rid = self.query_one(RunTable).current_id
        if rid is not None and rid in self.infos:
            self._load_details(rid)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-details", description="read a run")
    def _load_details(self, rid: str) -> None:
        info = store.open_run(self.runs_dir, rid)
        checkpoints = [step for step, _ in info.checkpoints()]
        self.app.call_from_thread(self.app.push_screen, RunDetailsScreen(info, checkpoints))

    def action_attach(self) -> None:
        """Show the run under the cursor live in the Train view."""
        rid = self.query_one(RunTable).current_id
        if rid is None:
            return
        run = self.app.attach(rid)
        self.app.switch_mode("train")
        screen = self.app.screen
        if hasattr(screen, "show_run"):
            screen.show_run(run)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_details()

    def action_export(self) -> None:
        if not self.selected:
            self.notify("select runs to export first (space).", severity="warning")
            return
        self.chart.action_export()

    def action_delete(self) -> None:
        rid = self.query_one(RunTable).current_id
        info = self.infos.get(rid) if rid else None
        if info is None:
            return
        if info.active:
            self.notify(f"{rid} is still training; stop it before deleting it.", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self._delete(info)

        self.app.push_screen(ConfirmScreen(f"Delete run {rid} and all its checkpoints?"), done)

    @work(thread=True, exit_on_error=False, group="runs-delete", description="delete a run")
    def _delete(self, info: store.RunInfo) -> None:
        if info.active:  # it may have been resumed since the table was drawn
            self.app.call_from_thread(self.notify, f"{info.id} is training; stop it before deleting it.",
                                      severity="warning", markup=False)
            return
        try:
            shutil.rmtree(info.path)
        except OSError as e:
            self.app.call_from_thread(self.notify, f"cannot delete {info.id}: {e.strerror or e}",
                                      severity="error", markup=False)
            return
        self.app.call_from_thread(self._deleted, info)

    def _deleted(self, info: store.RunInfo) -> None:
        if info.id in self.selected:
            self.selected.remove(info.id)
        self.followed.pop(info.id, None)
        self.notify(f"deleted {info.id}", timeout=3)
        self._update_hint()
        self.scan()
