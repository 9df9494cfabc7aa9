"""Train: the configuration form, start/attach/pause/resume/stop, a status line and four live charts.

The run shown is `app.live`: one the app started (a detached process) or any run training under the
runs directory, attached by keyboard (a) or the palette. The app's follower thread reads its run
directory and posts `RunUpdated` when it changed; only then does this screen redraw its status line,
and its charts at most once a chart interval (never per metric row). Nothing is drawn while nothing
changes.
"""

from __future__ import annotations

import time

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Select, Static

from grok_tui.display import device_text, gpu_text, threads_text
from grok_tui.figures.export import Series
from grok_tui.host import usable_cpus
from grok_tui.store import control_groups
from grok_tui.store import runs as store
from grok_tui.tui.followed import LiveRun, try_control
from grok_tui.tui.messages import RunUpdated
from grok_tui.tui.screens.dialogs import AttachScreen
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.config_form import ConfigForm

# id, title, metric keys (a key ending in '*' takes every top-level key with that prefix), log x, log y
CHARTS = (
    ("acc", "accuracy", ("train_acc", "val_acc"), True, False),
    ("loss", "loss", ("train_loss", "val_loss"), True, True),
    ("wnorm", "weight norm", ("weight_norm",), True, False),
    ("grad", "grad norm / eff lr", ("grad_norm", "eff_lr*"), True, True),
)
COLORS = {"train_acc": "cyan", "val_acc": "magenta", "train_loss": "cyan", "val_loss": "magenta",
          "weight_norm": "green", "grad_norm": "orange"}
# Charts re-plot at most once a second, only when there is new data, and slower when drawing them
# costs more than CHART_DUTY of one core (a large terminal, a loaded machine): training shares the CPU,
# and on a small CPU box every slice the UI takes stalls all of the child's threads at their next barrier.
CHART_MIN_S, CHART_MAX_S, CHART_DUTY = 1.0, 3.0, 0.04


def _keys(patterns: tuple[str, ...], row: dict) -> list[str]:
    keys: list[str] = []
    for p in patterns:
        if p.endswith("*"):
            keys += sorted(k for k in row if k.startswith(p[:-1]) and "." not in k)
        else:
            keys.append(p)
    return keys


def run_series(run: LiveRun, patterns: tuple[str, ...], milestones: dict[str, int]) -> list[Series]:
    """The series of one train chart, from the columns the run keeps (only its new rows are read); the
    milestone marks ride on the first series."""
    keys = _keys(patterns, run.last)
    out = []
    for i, k in enumerate(keys):
        s = run.series(k)
        if s.x:
            out.append(Series(k, s.x, s.y, dict(milestones) if i == 0 else {}, COLORS.get(k)))
    return out


def _fmt_acc(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


class TrainScreen(Screen):
    """Configure a run, start it, watch it."""

    BINDINGS = [
        Binding("s", "start", "Start"),
        Binding("a", "attach", "Attach"),
        Binding("p", "pause_resume", "Pause/Resume"),
        Binding("x", "stop", "Stop"),
        Binding("f", "toggle_form", "Form"),
        Binding("escape", "leave_field", "Leave field"),
        # the same keys when the ones above cannot act (hidden from the footer): they say why
        Binding("s", "refuse('start')", show=False),
        Binding("p", "refuse('pause_resume')", show=False),
        Binding("x", "refuse('stop')", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._next_chart = 0.0
        self.chart_interval = CHART_MIN_S
        self._chart_cost = 0.0
        self._shown: LiveRun | None = None
        self._last_state: tuple = (None, None)
        self._chart_timer = None  # a redraw of the charts waiting for the chart interval

    def compose(self) -> ComposeResult:
        with Horizontal(id="train-body"):
            yield ConfigForm(id="form")
            with Vertical(id="train-right"):
                yield Static("no run yet: fill the form (or load a preset) and press [b]s[/] to start",
                             id="status")
                with Horizontal(id="controls"):
                    yield Button("Start", id="start", variant="success", compact=True)
                    yield Button("Pause", id="pause", compact=True, disabled=True)
                    yield Button("Resume", id="resume", compact=True, disabled=True)
                    yield Button("Stop", id="stop", variant="error", compact=True, disabled=True)
                with Grid(id="charts"):
                    for cid, title, _pats, logx, logy in CHARTS:
                        yield MetricChart(title, title, logx=logx, logy=logy, id=f"chart-{cid}")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_run()

    def on_screen_resume(self) -> None:
        self.refresh_run()  # what changed while another view was shown

    @property
    def child(self) -> LiveRun | None:
        """The run shown (the app's `live` run)."""
        return getattr(self.app, "live", None)

    # -- what the follower says ---------------------------------------------------------------
    @on(RunUpdated)
    def _run_updated(self, msg: RunUpdated) -> None:
        child = self.child
        if child is not None and msg.run_id == child.run_id:
            self.refresh_run()

    def refresh_run(self) -> None:
        """Show the run's state now, and its charts now or when the chart interval has passed."""
        if self.app.screen is not self:
            return
        child = self.child
        self._update_controls(child)
        if child is None:
            return
        status = self.query_one("#status", Static)
        lines = 3 if child.state in ("failed", "interrupted") and child.error else 2
        if status.styles.height is None or status.styles.height.value != lines:
            status.styles.height = lines
        # a fixed height and no layout pass: a re-layout of the whole screen 4 times a second costs more
        # CPU than the charts (measured), and the CPU is shared with the training child
        status.update(self.status_text(child), layout=False)
        now = time.monotonic()
        if now >= self._next_chart or child is not self._shown:
            self._charts_due()
        elif self._chart_timer is None:
            self._chart_timer = self.set_timer(self._next_chart - now, self._charts_due)

    def _charts_due(self) -> None:
        self._chart_timer = None
        child = self.child
        if child is not None and self.app.screen is self:
            self.update_charts(child)
            self._next_chart = time.monotonic() + self.chart_interval

    def update_charts(self, child: LiveRun) -> None:
        self._shown = child
        charts = [self.query_one(f"#chart-{cid}", MetricChart) for cid, *_ in CHARTS]
        changed = False
        for chart, (_cid, _title, patterns, _lx, _ly) in zip(charts, CHARTS, strict=True):
            changed |= chart.show(run_series(child, patterns, dict(child.milestones)))
        if changed:  # what the last round cost (its re-plot and render) sets the pace of the next
            cost = sum(c.redraw_s for c in charts)
            spent, self._chart_cost = cost - self._chart_cost, cost
            self.chart_interval = min(CHART_MAX_S, max(CHART_MIN_S, spent / CHART_DUTY))

    def status_text(self, c: LiveRun) -> str:
        last = c.last
        rate = c.steps_per_s()
        icon = {"running": "[green]●[/]", "paused": "[yellow]❚❚[/]", "finished": "[green]✔[/]",
                "failed": "[red]✖[/]", "stopped": "[yellow]■[/]", "interrupted": "[red]✖[/]"}.get(c.state, "[dim]…[/]")
        m, g = c.milestones.get("memorized"), c.milestones.get("grokked")
        # a speed only while it trains: paused, stopped or finished, the last rows' rate would be stale
        rate_s = (f"{rate:,.0f} steps/s  " if rate else "- steps/s  ") if c.state == "running" else ""
        if c.compiling:
            rate_s = "compiling the step…  "
        device = escape(device_text(c.device, c.gpu))
        threads = threads_text(c.threads, usable_cpus())
        line1 = (f"{icon} [b]{c.state}[/]  step {c.step}/{c.total_steps}  {rate_s}{device}"
                 f"{', ' + threads if threads else ''}  {c.run_id}")
        gpu = gpu_text(last)
        line2 = (f"train [cyan]{_fmt_acc(last.get('train_acc'))}[/]  val [magenta]{_fmt_acc(last.get('val_acc'))}[/]  "
                 f"memorized [b]{m if m is not None else '-'}[/]  grokked [b]{g if g is not None else '-'}[/]"
                 f"{'  gpu ' + gpu if gpu else ''}")
        text = line1 + "\n" + line2
        if c.state in ("failed", "interrupted") and c.error:
            text += f"\n[red]error:[/] {escape(c.error)}"
        return text

    def _update_controls(self, child: LiveRun | None) -> None:
        state = child.state if child else None
        if (child, state) == self._last_state:
            return
        self._last_state = (child, state)
        active = child is not None and child.active
        self.query_one("#start", Button).disabled = active
        self.query_one("#pause", Button).disabled = state != "running"
        self.query_one("#resume", Button).disabled = state != "paused"
        self.query_one("#stop", Button).disabled = state not in ("running", "paused")
        self.query_one(ConfigForm).disabled = active
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # the footer shows start, pause/resume and stop only when they can act; pressed when they
        # cannot, their key falls through to `refuse`, which says why
        if action in ("start", "pause_resume", "stop"):
            return self.refusal(action) is None
        if action == "leave_field":  # shown while a text field has the keys (they type, not act)
            return isinstance(self.focused, (Input, Select))
        return True

    def action_refuse(self, action: str) -> None:
        self._refused(action)

    def refusal(self, action: str) -> str | None:
        """Why `action` (start, pause_resume, stop) cannot act now, or None when it can."""
        child = self.child
        if action == "start":
            if child is not None and child.active:
                return f"{child.run_id} is {child.state}; stop it first (x) or wait for it to end."
            return None
        if child is None:
            return "no run to control: start one (s) or attach one that is training (a)."
        if child.state in ("running", "paused"):
            return None
        if child.state in ("starting", "stopping"):
            return f"{child.run_id} is {child.state}; wait a moment."
        return f"{child.run_id} is {child.state}: there is nothing to {'stop' if action == 'stop' else 'pause'}."

    def _refused(self, action: str) -> bool:
        why = self.refusal(action)
        if why:
            self.notify(why, title="not now", severity="warning", timeout=4, markup=False)
        return why is not None

    # -- actions ------------------------------------------------------------------------------
    def action_start(self) -> None:
        if self._refused("start"):
            return
        cfg, errors, general = self.query_one(ConfigForm).read()
        if cfg is None:
            problems = list(errors.values()) + general
            self.notify("\n".join(problems[:4]) or "the configuration is not valid.", title="cannot start",
                        severity="error", markup=False)
            return
        child = self.app.start_run(cfg)
        for chart in self.query(MetricChart):
            chart.show([])
        self.query_one("#status", Static).update(f"[dim]…[/] starting {child.run_id}")
        if self.has_class("-narrow"):
            self.query_one("#form").display = False
        self.query_one("#chart-acc").focus()
        self._update_controls(child)

    def _control(self, what: str) -> None:
        child = self.child
        if child is None:
            return
        why = try_control(child, what)
        if why:
            self.notify(why, severity="warning", markup=False)
            return
        if what == "stop":
            self.notify(f"stopping {child.run_id} (a final checkpoint is written)", timeout=3, markup=False)
        self._tell_others(child.run_id, {"resume": "continue"}.get(what, what))

    @work(thread=True, group="others", exit_on_error=False, description="runs controlled with this one")
    def _tell_others(self, run_id: str, verb: str) -> None:
        """A sweep member shares its process with the other members: say that they {verb} too."""
        text = control_groups.controlled_with_text(self.app.runs_dir, run_id, verb)
        if text:
            self.app.call_from_thread(self.notify, f"{run_id}: {text}.", timeout=6, markup=False)

    def action_pause_resume(self) -> None:
        if not self._refused("pause_resume"):
            self._control("pause" if self.child.state == "running" else "resume")

    def action_stop(self) -> None:
        if not self._refused("stop"):
            self._control("stop")

    def action_attach(self) -> None:
        self._list_active()

    @work(thread=True, exclusive=True, exit_on_error=False, group="attach", description="list active runs")
    def _list_active(self) -> None:
        self.app.call_from_thread(self._choose, store.active_run_ids(self.app.runs_dir))

    def _choose(self, ids: list[str]) -> None:
        if not ids:
            self.notify(f"no run is training under {self.app.runs_dir}.", severity="warning", markup=False)
            return

        def chosen(run_id: str | None) -> None:
            if run_id is not None:
                self.show_run(self.app.attach(run_id))

        self.app.push_screen(AttachScreen(ids), chosen)

    def show_run(self, run: LiveRun) -> None:
        for chart in self.query(MetricChart):
            chart.show([])
        self.query_one("#status", Static).update(f"[dim]…[/] following {run.run_id}")
        self._update_controls(run)
        if run.seen:  # read already (another view follows it): no update may come soon
            self.refresh_run()

    def action_toggle_form(self) -> None:
        form = self.query_one("#form")
        form.display = not form.display

    def action_leave_field(self) -> None:
        self.query_one("#chart-acc").focus()

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#pause")
    def _pause_pressed(self) -> None:
        if self.child is not None and self.child.state == "running":
            self._control("pause")

    @on(Button.Pressed, "#resume")
    def _resume_pressed(self) -> None:
        if self.child is not None and self.child.state == "paused":
            self._control("resume")

    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_stop()
