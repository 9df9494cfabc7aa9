"""Runs / compare: every run under the runs directory, and the selected ones overlaid on one chart.

A thread worker rescans the directory every second or so (runs started headless in another terminal
appear, running ones update) through `store.scan.RunScanner`, which re-reads only the runs whose files
changed; the table is touched only when a scan found a change, and then only the rows that changed. A
large directory is scanned less often (a scan takes at most about SCAN_DUTY of a core) and its first
scan shows its runs in batches. The selected runs are the app's followed runs (one follower per run
for every view); the chart is redrawn when one of them has new rows or the view changed.
Like a lab notebook: `/` filters the table with a query (store/query.py), `O` sorts it, `s` smooths
the chart (TensorBoard's debiased EMA, the raw curve dim behind), `g` groups the selected runs by a
config field (mean line and band, figures/compare.py), `P` opens the phase diagram of a sweep.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from grok_tui.figures import compare
from grok_tui.figures.export import (
    METRIC_NAMES,
    PALETTE,
    default_log_y,
    metric_keys,
    metric_name,
    milestones_of,
)
from grok_tui.store import query
from grok_tui.store import runs as store
from grok_tui.store.delete import DeleteError, delete_run
from grok_tui.store.scan import RunScanner
from grok_tui.tui.messages import RunUpdated
from grok_tui.tui.overlay import GROUP_FIELDS, SORT_COLUMNS, OverlayView, overlay, partner
from grok_tui.tui.screens.dialogs import ConfirmScreen, RunDetailsScreen
from grok_tui.tui.screens.phase import PhaseScreen
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.run_table import RunTable

SCAN_S = 1.0  # seconds between scans of the runs directory, at least
SCAN_MAX_S = 10.0  # and at most, however large the directory
SCAN_DUTY = 0.02  # a scan's share of a core: a scan that takes 50 ms waits 2.5 s for the next
FIRST_BATCH, BATCH = 25, 200  # runs read before the table first shows, then per update of a first scan
DEFAULT_METRICS = tuple(METRIC_NAMES)


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
        Binding("s", "smooth(1)", "Smooth"),
        Binding("S", "smooth(-1)", "Smooth less", show=False),
        Binding("g", "group", "Group"),
        Binding("b", "band", "Band", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("O", "sort", "Sort"),
        Binding("P", "phase", "Phase"),
        Binding("v", "pair", "Train+val"),
        Binding("F", "summary_figure", "Summary fig"),
    ]

    @dataclass
    class Scanned(Message):
        """The runs of a scan that found a change (none is posted when nothing changed)."""

        runs: list[store.RunInfo]

    def __init__(self) -> None:
        super().__init__()
        self.selected: list[str] = []  # in selection order; colours follow it (the app follows them)
        self.scanner: RunScanner | None = None
        self.scan_interval = SCAN_S
        self._next_scan = 0.0
        self._drawn: tuple | None = None  # what the chart shows: the view and each selected run's version
        self.metric = "val_acc"
        self.infos: dict[str, store.RunInfo] = {}  # every run in the directory
        self.shown: list[store.RunInfo] = []  # the table's runs: filtered and sorted
        self.smoothing = 0.0
        self.group_by: str | None = None
        self.band = "minmax"
        self.where: query.Query | None = None
        self.sort: str | None = None
        self.paired = False  # the metric's other split too (train_acc with val_acc), dotted

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-body"):
            yield Input(placeholder="query, e.g. optimizer=adamw train_frac>=0.5 grokked (enter; empty: all)",
                        id="runs-filter", compact=True)
            yield RunTable(id="run-table")
            yield Static("", id="runs-hint")
            yield MetricChart(metric_name(self.metric), self.metric, logx=True, logy=False, id="overlay")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RunTable).focus()
        self.scanner = RunScanner(self.runs_dir)
        self.scan()
        self.set_interval(SCAN_S, self._maybe_scan)
        self._update_hint()

    def on_screen_resume(self) -> None:
        self.scan()
        self.redraw()  # the selected runs' rows that came while another view was shown

    @property
    def runs_dir(self):
        return self.app.runs_dir

    @property
    def colors(self) -> dict[str, str]:
        return {rid: PALETTE[i % len(PALETTE)] for i, rid in enumerate(self.selected)}

    @property
    def followed(self) -> dict:
        """The app's followed runs (the selected ones among them)."""
        return self.app.followed

    # -- scanning -------------------------------------------------------------------------------
    def _maybe_scan(self) -> None:
        if self.app.screen is self and time.monotonic() >= self._next_scan:
            self.scan()

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-scan", description="scan runs")
    def scan(self) -> None:
        scanner = self.scanner
        if scanner is None:
            return
        t0 = time.perf_counter()
        limit = FIRST_BATCH if not scanner.opened else None  # a first scan shows its runs in batches
        while True:
            runs, changed = scanner.scan(limit=limit)
            if changed:
                for r in runs:  # a killed run's headline reads its metrics file: here, not on the UI thread
                    r.steps_and_best()  # (once per RunInfo; the scanner keeps those of unchanged runs)
                self.post_message(self.Scanned(runs))
            if scanner.complete:
                break
            limit = BATCH
        cost = time.perf_counter() - t0
        self.scan_interval = min(SCAN_MAX_S, max(SCAN_S, cost / SCAN_DUTY))
        self._next_scan = time.monotonic() + self.scan_interval

    @on(Scanned)
    def _scanned(self, msg: Scanned) -> None:
        self.infos = {r.id: r for r in msg.runs}
        gone = [rid for rid in self.selected if rid not in self.infos]
        for rid in gone:
            self.selected.remove(rid)
            self.app.unfollow(rid, "runs")
        self._sync_table()
        self._update_hint()  # "12/1000 where ...": the counts change as a first scan comes in
        self.redraw()

    @on(RunUpdated)
    def _run_updated(self, msg: RunUpdated) -> None:
        if msg.run_id in self.selected:
            self.redraw()

    def _sync_table(self) -> None:
        runs = list(self.infos.values())
        if self.where is not None:
            runs = self.where.filter(runs)
        if self.sort is not None:
            runs = query.sort_runs(runs, self.sort)
        self.shown = runs
        self.query_one(RunTable).sync(runs, self.colors)

    def redraw(self) -> None:
        """Compose the chart again, when the view or a selected run changed since it was drawn."""
        view = OverlayView(self.metric, self.paired, self.smoothing, self.group_by, self.band)
        followed = self.followed
        key = (view, tuple((rid, followed[rid].version if rid in followed else -1, id(self.infos.get(rid)))
                           for rid in self.selected), self.chart.logx, self.chart.logy)
        if key == self._drawn:
            return
        self._drawn = key
        out, bands, title = overlay(view, self.selected, followed, self.infos, self.colors)
        self.chart.show(out, title=title, metric=self.metric, bands=bands)

    def _update_hint(self) -> None:
        n = len(self.selected)
        parts = [f"[b]{n}[/] selected" if n else "space: select runs",
                 f"[b]{self.metric}[/]{' + ' + str(partner(self.metric)) if self.paired and partner(self.metric) else ''} (m, v)"]
        parts.append(f"smooth [b]{self.smoothing:g}[/] (s)")
        if self.group_by:
            parts.append(f"by [b]{self.group_by}[/] (g) {'min-max' if self.band == 'minmax' else '±std'} (b)")
        else:
            parts.append("group (g)")
        if self.where is not None and self.where.text:
            parts.append(f"[b]{len(self.shown)}[/]/{len(self.infos)} where [b]{self.where.text}[/] (/)")
        else:
            parts.append("filter (/)")
        if self.sort:
            parts.append(f"sort [b]{self.sort}[/] (O)")
        parts.append("? keys")
        self.query_one("#runs-hint", Static).update(" · ".join(parts))

    @property
    def chart(self) -> MetricChart:
        return self.query_one("#overlay", MetricChart)

    # -- actions ------------------------------------------------------------------------------
    def action_toggle_select(self) -> None:
        rid = self.query_one(RunTable).current_id
        if rid is None:
            self.notify("no run to select: the table is empty" + (" for this filter (/)." if self.where else "."),
                        severity="warning")
            return
        if rid in self.selected:
            self.selected.remove(rid)
            self.app.unfollow(rid, "runs")
        else:
            self.selected.append(rid)
            self.app.follow(rid, "runs")  # read by the app's follower thread: RunUpdated comes
        if self.group_by is not None and self.group_by not in self._group_choices():
            self.group_by = None
        self._update_hint()
        self._sync_table()
        self.redraw()

    def _metric_choices(self) -> list[str]:
        rows = [r for rid in self.selected if rid in self.followed for r in self.followed[rid].rows[-1:]]
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
        else:
            self.notify("no run under the cursor.", severity="warning")

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-details", description="read a run")
    def _load_details(self, rid: str) -> None:
        info = store.open_run(self.runs_dir, rid)
        checkpoints = [step for step, _ in info.checkpoints()]
        info.steps_and_best()  # read here, not in the dialog on the UI thread
        self.app.call_from_thread(self.app.push_screen, RunDetailsScreen(info, checkpoints))

    def action_attach(self) -> None:
        """Show the run under the cursor live in the Train view."""
        rid = self.query_one(RunTable).current_id
        if rid is None:
            self.notify("no run under the cursor to follow.", severity="warning")
            return
        run = self.app.attach(rid)
        self.app.switch_mode("train")
        screen = self.app.screen
        if hasattr(screen, "show_run"):
            screen.show_run(run)

    def action_smooth(self, step: int) -> None:
        levels = compare.SMOOTH_LEVELS
        i = min(range(len(levels)), key=lambda k: abs(levels[k] - self.smoothing))
        self.smoothing = levels[(i + step) % len(levels)]
        self._update_hint()
        self.redraw()

    def _group_choices(self) -> list[str]:
        values = [query.run_fields(self.infos[rid]) for rid in self.selected if rid in self.infos]
        return compare.varying_fields(values, GROUP_FIELDS) if len(values) > 1 else []

    def action_group(self) -> None:
        choices = self._group_choices()
        if not choices:
            self.group_by = None
            self.notify("select two or more runs that differ in a config field to group them (space)."
                        if len(self.selected) < 2 else "the selected runs share every config field: nothing to group by.",
                        severity="warning")
        else:
            cycle = [*choices, None]
            self.group_by = cycle[(cycle.index(self.group_by) + 1) % len(cycle)] if self.group_by in cycle else cycle[0]
        self._update_hint()
        self.redraw()

    def action_band(self) -> None:
        if self.group_by is None:
            self.notify("the band belongs to groups: group the selected runs first (g).", severity="warning")
            return
        self.band = "std" if self.band == "minmax" else "minmax"
        self._update_hint()
        self.redraw()

    def action_filter(self) -> None:
        inp = self.query_one("#runs-filter", Input)
        inp.display = True
        inp.focus()

    @on(Input.Submitted, "#runs-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        try:
            self.where = query.parse(text) if text else None
        except query.QueryError as e:
            self.query_one("#runs-hint", Static).update(f"[red]{e}[/]")
            self.notify(str(e), title="query", severity="error", markup=False)
            return
        event.input.display = bool(text)
        self.query_one(RunTable).focus()
        self._sync_table()
        self._update_hint()

    def key_escape(self) -> None:
        inp = self.query_one("#runs-filter", Input)
        if inp.has_focus:
            self.query_one(RunTable).focus()
            inp.display = self.where is not None

    def action_sort(self) -> None:
        cols = [None, *SORT_COLUMNS]
        i = cols.index(self.sort) if self.sort in cols else 0
        self.sort = cols[(i + 1) % len(cols)]
        self._sync_table()
        self._update_hint()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in ("sel",):
            return
        self.sort = f"-{key}" if self.sort == key else key
        self._sync_table()
        self._update_hint()

    def action_pair(self) -> None:
        if partner(self.metric) is None:
            self.notify(f"{self.metric} has no train/val counterpart; pick an accuracy or a loss (m).",
                        severity="warning")
            return
        self.paired = not self.paired
        self._update_hint()
        self.redraw()

    def action_summary_figure(self) -> None:
        rid = self.query_one(RunTable).current_id
        info = self.infos.get(rid) if rid else None
        if info is None:
            self.notify("no run under the cursor.", severity="warning")
            return
        self._summary_figure(info)

    @work(thread=True, exit_on_error=False, group="export", description="summary figure")
    def _summary_figure(self, info: store.RunInfo) -> None:
        from grok_tui.errors import GrokError
        from grok_tui.figures.panels import save_panels, summary_panels
        from grok_tui.tui.messages import ExportDone

        path = (info.path / "figures" / "summary.png").resolve()
        rows = info.metrics()
        if not rows:
            self.app.post_message(ExportDone([], f"{info.id} has no metric rows yet: nothing to draw."))
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_panels(path, summary_panels(info.id, rows, milestones_of(info.events(), info.summary)), info.id)
        except GrokError as e:
            self.app.post_message(ExportDone([], str(e)))
            return
        except OSError as e:
            self.app.post_message(ExportDone([], f"cannot write {path}: {e.strerror or e}."))
            return
        self.app.post_message(ExportDone([str(path)], None))

    def action_phase(self) -> None:
        self.app.push_screen(PhaseScreen(self.runs_dir))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_details()

    def action_export(self) -> None:
        if not self.selected:
            self.notify("select runs to export first (space).", severity="warning")
            return
        self.chart.export_dir = self.runs_dir / self.selected[0] / "figures"
        self.chart.action_export()

    def action_delete(self) -> None:
        rid = self.query_one(RunTable).current_id
        info = self.infos.get(rid) if rid else None
        if info is None:
            self.notify("no run under the cursor.", severity="warning")
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
        try:  # refused while a process holds the run's lock (it may have been resumed since the table was drawn)
            delete_run(info.path)
        except DeleteError as e:
            self.app.call_from_thread(self.notify, str(e), severity="error", markup=False)
            return
        self.app.call_from_thread(self._deleted, info)

    def _deleted(self, info: store.RunInfo) -> None:
        if info.id in self.selected:
            self.selected.remove(info.id)
            self.app.unfollow(info.id, "runs")
        self.notify(f"deleted {info.id}", timeout=3)
        self._update_hint()
        self.scan()
