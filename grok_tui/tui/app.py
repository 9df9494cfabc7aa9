"""The Textual app: modes (train, runs; connect when it exists), the child run, exports.

`make_app(runs_dir)` is the factory the CLI and the tests use. The app owns the long-lived work: the
training child (a process, followed by a thread worker) and exports (thread workers).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from grok_tui.figures.export import ExportError, save_figure, write_csv
from grok_tui.spec.config import Config
from grok_tui.store import runs as store
from grok_tui.tui.live import ChildRun
from grok_tui.tui.messages import ChildEnded, ChildEvent, ExportDone
from grok_tui.tui.screens.connect import ConnectScreen
from grok_tui.tui.screens.dialogs import ConfirmScreen, ExportScreen
from grok_tui.tui.screens.runs import RunsScreen
from grok_tui.tui.screens.train import TrainScreen
from grok_tui.tui.widgets.chart import MetricChart


class GrokApp(App):
    """grok-tui: train and watch a run, compare runs."""

    TITLE = "grok-tui"
    CSS_PATH = "app.tcss"
    MODES = {"train": TrainScreen, "runs": RunsScreen, "connect": ConnectScreen}
    DEFAULT_MODE = "train"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("t", "switch_mode('train')", "Train"),
        Binding("r", "switch_mode('runs')", "Runs"),
        Binding("c", "switch_mode('connect')", "Connect"),
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Keys", show=False),  # the views' hint lines say "? keys"
    ]

    def __init__(self, runs_dir: Path, python: str | None = None):
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.python = python
        self.child: ChildRun | None = None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "switch_mode":
            return bool(parameters) and parameters[0] in self.MODES
        return True

    def action_help(self) -> None:
        from grok_tui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode in self.MODES:
            yield SystemCommand(f"View: {mode}", f"switch to the {mode} view", lambda m=mode: self.switch_mode(m))
        if isinstance(screen, TrainScreen):
            yield SystemCommand("Run: start", "start a run with the form's settings (s)", screen.action_start)
            yield SystemCommand("Run: pause / resume", "pause or resume the run (p)", screen.action_pause_resume)
            yield SystemCommand("Run: stop", "stop the run with a final checkpoint (x)", screen.action_stop)
        if isinstance(screen, RunsScreen):
            yield SystemCommand("Runs: next metric", "overlay the next metric (m)", lambda: screen.action_metric(1))
            yield SystemCommand("Runs: open details", "details of the run under the cursor (o)", screen.action_details)
            yield SystemCommand("Runs: export", "export the overlay chart (e)", screen.action_export)
            yield SystemCommand("Runs: filter", "filter the runs with a query (/)", screen.action_filter)
            yield SystemCommand("Runs: phase diagram", "steps to grok over a sweep's two fields (P)", screen.action_phase)

    # -- the training child -------------------------------------------------------------------
    def start_child(self, cfg: Config) -> ChildRun:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        run_id = store.new_run_id(self.runs_dir, cfg)
        child = ChildRun(self.runs_dir, run_id, cfg, **({"python": self.python} if self.python else {}))
        self.child = child
        self._follow_child(child)
        return child

    @work(thread=True, exit_on_error=False, group="child", description="training child")
    def _follow_child(self, child: ChildRun) -> None:
        try:
            child.start()
        except OSError as e:
            child.state, child.error, child.returncode = "failed", f"cannot start the runner: {e}.", -1
            self.post_message(ChildEnded(child.run_id, child.state, -1, child.error))
            return

        def on_message(kind: str, msg: dict) -> None:
            if kind == "event" and msg.get("event") not in ("checkpoint", "started"):
                self.post_message(ChildEvent(child.run_id, {k: v for k, v in msg.items() if k != "type"}))

        child.follow(on_message)
        self.post_message(ChildEnded(child.run_id, child.state, child.returncode or 0, child.error))

    @on(ChildEvent)
    def _child_event(self, msg: ChildEvent) -> None:
        name = msg.event.get("event")
        if name in store.MILESTONES:
            self.notify(f"{msg.run_id}: {name} at step {msg.event.get('step')}", title=name, timeout=4)

    @on(ChildEnded)
    def _child_ended(self, msg: ChildEnded) -> None:
        if msg.status == "failed":
            self.notify(msg.error or "training failed.", title=f"{msg.run_id} failed", severity="error",
                        timeout=10, markup=False)
        else:
            self.notify(f"{msg.run_id} {msg.status}", timeout=4)
        self.refresh_bindings()

    # -- export ---------------------------------------------------------------------------------
    @on(MetricChart.ExportRequested)
    def _export_requested(self, msg: MetricChart.ExportRequested) -> None:
        chart = msg.chart
        all_series = [s for s in chart.series if s.x]
        bands = [b for b in chart.bands if b.x]
        if not all_series and not bands:
            self.notify("this chart has no data yet.", severity="warning")
            return
        metric, logx, logy, title = chart.metric, chart.logx, chart.logy, chart.title
        stem = f"grok-{metric.replace(' ', '-').replace('/', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
        if chart.export_dir is not None:  # the run's figures/ directory; the toast says where
            stem = str(Path(chart.export_dir) / stem)

        def chosen(result: tuple[str, str] | None) -> None:
            if result is not None:
                self._export(result[0], result[1], all_series, metric, title, logx, logy, bands)

        self.push_screen(ExportScreen(stem, title), chosen)

    @work(thread=True, exit_on_error=False, group="export", description="export chart")
    def _export(self, stem: str, fmt: str, all_series, metric: str, title: str, logx: bool, logy: bool,
                bands=()) -> None:
        from grok_tui.figures.panels import Panel, write_panels_csv

        base = Path(stem).expanduser().resolve()
        if base.suffix.lower() in (".png", ".svg", ".pdf", ".csv"):
            base = base.with_suffix("")
        paths: list[str] = []
        error = None
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            if bands:
                paths.append(str(write_panels_csv(base.with_suffix(".csv"), [Panel(title, title, list(all_series),
                                                                                   list(bands))])))
            else:
                paths.append(str(write_csv(base.with_suffix(".csv"), all_series, metric)))
            paths.append(str(save_figure(base.with_suffix("." + fmt), all_series, title, title, logx, logy,
                                         bands=bands)))
        except OSError as e:
            error = f"cannot write {base.parent}: {e.strerror or e}."
        except ExportError as e:
            error = str(e)
        self.post_message(ExportDone(paths, error))

    @on(ExportDone)
    def _export_done(self, msg: ExportDone) -> None:
        if msg.paths:
            self.notify("wrote " + ", ".join(msg.paths), title="export", timeout=6, markup=False)
        if msg.error:
            self.notify(msg.error, title="export", severity="error", timeout=10, markup=False)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(f"{event.worker.description or event.worker.name}: {event.worker.error}",
                        title="error", severity="error", timeout=10, markup=False)

    # -- quitting ---------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        child = self.child
        if child is None or not child.active:
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                child.stop()
                self.exit()

        self.push_screen(ConfirmScreen(f"{child.run_id} is training. Stop it (with a final checkpoint) and quit?"),
                         answer)

    def on_unmount(self) -> None:
        child = self.child
        if child is not None and child.proc is not None and child.proc.poll() is None:
            child.stop()
            if not child.wait(15):  # the runner writes its final checkpoint, then exits
                child.proc.kill()


def make_app(runs_dir: Path, python: str | None = None) -> GrokApp:
    """The app on a runs directory (the CLI's bare `grok-tui`, the tests and the snapshots use this)."""
    return GrokApp(runs_dir=runs_dir, python=python)
