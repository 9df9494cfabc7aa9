"""Inside: the circuit forming in the run the Train view follows (docs/metrics.md, "Progress measures").

The run's progress rows (progress.jsonl, tailed by the run's one follower) as the last spectrum's bars
with its key frequencies named, the frequency x step heatmap of the spectrum's history, and the
restricted and excluded losses beside the train and val loss on a log-step axis with the milestone
marks; a status line with Gini, IPR, the basis and the step of the last measurement. It shows
`app.live` (a run started, attached, or followed from the Runs view) and switches when that changes.
Like the Train view it redraws when `RunUpdated` says its run changed, at most once a chart interval.
"""

from __future__ import annotations

import time

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from grok_tui.figures.series import Series
from grok_tui.store.progress import with_progress
from grok_tui.tui.followed import LiveRun
from grok_tui.tui.messages import RunUpdated
from grok_tui.tui.screens.train import CHART_DUTY, CHART_MAX_S, CHART_MIN_S
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.spectrum import SpectrumBars, SpectrumHeatmap

LOSSES = ("train_loss", "val_loss", "restricted_loss", "excluded_loss")
COLORS = {"train_loss": "cyan", "val_loss": "magenta", "restricted_loss": "green", "excluded_loss": "orange"}
NO_RUN = "no run followed: start or attach one in the Train view (t), or follow one from Runs (r, then a)."


def no_measures(run: LiveRun) -> str:
    """The sentence for a run without progress rows."""
    if run.active:
        return (f"no progress measures yet in {run.run_id}: they come with its measured evaluations "
                f"(measure_every).")
    return (f"no progress measures in this run: `grok-tui inspect {run.run_id} --checkpoints` computes "
            f"them from its checkpoints.")


def _num(v, fmt: str = ".3g") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else "—"


def loss_series(run: LiveRun) -> list[Series]:
    """Train, val, restricted and excluded loss from the run's kept columns; the progress scalars from
    its progress rows when metrics.jsonl lacks them (a run measured after it trained). The milestone
    marks ride on the first series."""
    out = []
    from_progress = None
    for k in LOSSES:
        s = run.series(k)
        if not s.x and k in ("restricted_loss", "excluded_loss") and run.progress:
            if from_progress is None:
                from_progress = with_progress([], run.progress)
            xs = [r["step"] for r in from_progress if isinstance(r.get(k), (int, float))]
            s = Series(k, xs, [r[k] for r in from_progress if isinstance(r.get(k), (int, float))])
        if s.x:
            out.append(Series(k, s.x, s.y, dict(run.milestones) if not out else {}, COLORS.get(k)))
    return out


class InsideScreen(Screen):
    """The progress measures of the followed run, live."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: LiveRun | None = None
        self._next = 0.0
        self._timer = None
        self.interval = CHART_MIN_S  # longer when a redraw costs more than CHART_DUTY of a core (as in Train)
        self._cost = 0.0

    def compose(self) -> ComposeResult:
        yield Static(NO_RUN, id="inside-status")
        with Vertical(id="inside-body"):
            with Horizontal(id="inside-top"):
                yield SpectrumBars(id="inside-spectrum")
                yield SpectrumHeatmap(id="inside-heatmap")
            yield MetricChart("loss · restricted · excluded", "loss", logx=True, logy=True, id="inside-loss")
        yield Footer()

    @property
    def run(self) -> LiveRun | None:
        return getattr(self.app, "live", None)

    def on_mount(self) -> None:
        self.refresh_run()

    def on_screen_resume(self) -> None:
        self.refresh_run()

    @on(RunUpdated)
    def _run_updated(self, msg: RunUpdated) -> None:
        run = self.run
        if run is not None and msg.run_id == run.run_id:
            self.refresh_run()

    def refresh_run(self) -> None:
        """Now when the run shown changed, else at most once an interval (1-3 s: what the last redraw cost)."""
        if self.app.screen is not self:
            return
        now = time.monotonic()
        if now >= self._next or self.run is not self._shown:
            self._due()
        elif self._timer is None:
            self._timer = self.set_timer(self._next - now, self._due)

    def _due(self) -> None:
        self._timer = None
        if self.app.screen is self:
            self.update_view(self.run)
            cost = sum(w.redraw_s for w in (self.query_one(SpectrumBars), self.query_one(SpectrumHeatmap),
                                            self.query_one("#inside-loss", MetricChart)))
            spent, self._cost = cost - self._cost, cost
            self.interval = min(CHART_MAX_S, max(CHART_MIN_S, spent / CHART_DUTY))
            self._next = time.monotonic() + self.interval

    def update_view(self, run: LiveRun | None) -> None:
        self._shown = run
        status = self.query_one("#inside-status", Static)
        bars = self.query_one(SpectrumBars)
        heat = self.query_one(SpectrumHeatmap)
        chart = self.query_one("#inside-loss", MetricChart)
        if run is None:
            status.update(NO_RUN)
            bars.show(None, NO_RUN)
            heat.show([], message=" ")
            chart.show([])
            return
        epoch, rows = run.follower.progress_and_epoch()
        status.update(self.status_text(run, rows[-1] if rows else None))
        if rows:
            bars.show(rows[-1])
            heat.show(rows, epoch, run.milestones)
        else:
            bars.show(None, no_measures(run))
            heat.show([], message="the spectrum's history comes with the measures.")
        last = rows[-1] if rows else {}
        none = bool(rows) and last.get("restricted_loss") is None and last.get("excluded_loss") is None
        title = "loss · restricted · excluded" + ("  (none for this operation)" if none else "")
        chart.show(loss_series(run), title=title)

    def status_text(self, run: LiveRun, row: dict | None) -> str:
        head = f"[b]{escape(run.run_id)}[/]  {run.state}  step {run.step}/{run.total_steps}"
        if row is None:
            return head + "\n[dim]no progress measures[/]"
        losses = (f"restricted [green]{_num(row.get('restricted_loss'))}[/]  "
                  f"excluded [orange1]{_num(row.get('excluded_loss'))}[/]"
                  if row.get("restricted_loss") is not None or row.get("excluded_loss") is not None
                  else "restricted/excluded loss: none for this operation")
        return (f"{head}  {losses}\nGini [b]{_num(row.get('gini'))}[/]  IPR [b]{_num(row.get('ipr'))}[/]  "
                f"{escape(str(row.get('basis') or '?'))} basis  measured at step [b]{row['step']}[/]")
