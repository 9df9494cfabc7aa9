"""The Textual app: modes (train, runs, connect), the runs it follows, exports.

`make_app(runs_dir)` is the factory the CLI and the tests use. The app owns the long-lived work: one
follower thread that tails the run directory of every run a view follows (its own launch, one from
before a restart, one started in another terminal or by a sweep, the runs selected in the Runs view),
one `LiveRun` per run whoever shows it, and posts a typed `RunUpdated` when a run changed, which the app
hands to the screen shown; the launch of detached runs, and exports (thread workers). A run no view
holds any more is not read again. Quitting never stops a run unless asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from grok_tui.figures.export import ExportError, write_csv
from grok_tui.figures.panels import save_figure
from grok_tui.spec.config import Config
from grok_tui.store import ids
from grok_tui.store import runs as store
from grok_tui.store.follow import Polled
from grok_tui.tui.followed import Launch, LiveRun, try_control
from grok_tui.tui.messages import ExportDone, RunEnded, RunEvent, RunUpdated
from grok_tui.tui.screens.connect import ConnectScreen
from grok_tui.tui.screens.dialogs import ExportScreen, QuitScreen
from grok_tui.tui.screens.inside import InsideScreen
from grok_tui.tui.screens.runs import RunsScreen
from grok_tui.tui.screens.train import TrainScreen
from grok_tui.tui.widgets.chart import MetricChart

FOLLOW_S = 0.25  # the follower's poll interval (an unchanged run costs a few stat calls per poll)
NOTIFY_EVENTS = ("memorized", "grokked", "warning")  # a warning: e.g. torch.compile failed, eager goes on


class GrokApp(App):
    """grok-tui: train and watch a run, compare runs."""

    TITLE = "grok-tui"
    CSS_PATH = "app.tcss"
    MODES = {"train": TrainScreen, "runs": RunsScreen, "connect": ConnectScreen, "inside": InsideScreen}
    DEFAULT_MODE = "train"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("t", "switch_mode('train')", "Train"),
        Binding("r", "switch_mode('runs')", "Runs"),
        Binding("c", "switch_mode('connect')", "Connect"),
        Binding("i", "switch_mode('inside')", "Inside: the circuit forming", show=False),  # ? and the README
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Keys", show=False),  # the views' hint lines say "? keys"
    ]

    child_threads = 0  # --threads of the connectivity and landscape children (0: one per core)

    def __init__(self, runs_dir: Path, python: str | None = None, attach_on_start: bool = True):
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.python = python
        self.live: LiveRun | None = None  # the run the Train view shows
        self.followed: dict[str, LiveRun] = {}  # every run the follower reads: held by a view, or launched
        self._holders: dict[str, set[str]] = {}  # run id -> the views holding it ("train", "runs")
        self.attach_on_start = attach_on_start
        self._stop_following = threading.Event()
        self._follower: threading.Thread | None = None
        self._sending = threading.Lock()
        self._unsent: dict[str, RunUpdated] = {}  # what changed while the run's last RunUpdated was queued
        self._in_flight: set[str] = set()  # runs with a RunUpdated the app has not handled yet

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
            yield SystemCommand("Run: attach", "follow a run: those training, then the recent ones (a)",
                                screen.action_attach)
            yield SystemCommand("Run: new from this one", "the followed run's config into the form (n)",
                                screen.action_new_from_run)
            yield SystemCommand("Run: pause / continue", "pause or continue the run (p)", screen.action_pause_continue)
            yield SystemCommand("Run: stop", "stop the run with a final checkpoint (x)", screen.action_stop)
        if isinstance(screen, RunsScreen):
            yield SystemCommand("Runs: next metric", "overlay the next metric (m)", lambda: screen.action_metric(1))
            yield SystemCommand("Runs: open details", "details of the run under the cursor (o)", screen.action_details)
            yield SystemCommand("Runs: follow in Train", "show the run under the cursor live (a)", screen.action_attach)
            yield SystemCommand("Runs: new run from this one", "its config into the Train view's form (n)",
                                screen.action_new_from_run)
            yield SystemCommand("Runs: export", "export the overlay chart (e)", screen.action_export)
            yield SystemCommand("Runs: filter", "filter the runs with a query (/)", screen.action_filter)
            yield SystemCommand("Runs: phase diagram", "steps to grok over a sweep's two fields (P)", screen.action_phase)

    def on_mount(self) -> None:
        self._follower = threading.Thread(target=self._follow_loop, name="grok-tui run follower", daemon=True)
        self._follower.start()
        self.scan_active(attach=self.attach_on_start)

    def on_unmount(self) -> None:
        self._stop_following.set()  # the runs go on: they live on their own
        if self._follower is not None:
            self._follower.join(2)

    # -- following runs through their directories --------------------------------------------------
    def _follow_loop(self) -> None:
        """The follower thread: every followed run's new rows and state, as typed messages."""
        while not self._stop_following.is_set():
            for run in list(self.followed.values()):
                first, was_active = not run.seen, run.active
                try:
                    polled = run.update()
                except Exception as e:  # noqa: BLE001 - a run directory must never take the follower down
                    run.state, run.error = "failed", f"cannot read the run directory: {e}."
                    polled = Polled(0, True, [])
                run.seen = True
                if not first:
                    for e in polled.events:
                        if e.get("event") in NOTIFY_EVENTS:
                            self.post_message(RunEvent(run.run_id, e))
                    if polled.state_changed and was_active and not run.active:
                        self.post_message(RunEnded(run.run_id, run.state, run.error))
                self._send(run.run_id, polled)
            self._stop_following.wait(FOLLOW_S)

    def _send(self, run_id: str, polled: Polled | None) -> None:
        """Post what changed in a run as one RunUpdated, unless its last one is still queued: then it is
        added to the next (sent by a later poll, once the app has handled the last)."""
        with self._sending:
            msg = self._unsent.pop(run_id, None)
            if polled is not None and polled.changed:
                if msg is None:
                    msg = RunUpdated(run_id, 0, False)
                msg.rows = polled.rows if polled.restarted else msg.rows + polled.rows
                msg.state_changed |= polled.state_changed
                msg.restarted |= polled.restarted
                msg.progress = polled.progress if polled.progress_restarted else msg.progress + polled.progress
            if msg is None:
                return
            if run_id in self._in_flight:
                self._unsent[run_id] = msg
                return
            self._in_flight.add(run_id)
        self.post_message(msg)

    @on(RunUpdated)
    def _run_updated(self, msg: RunUpdated) -> None:
        with self._sending:
            self._in_flight.discard(msg.run_id)
        if msg.state_changed:
            self.refresh_bindings()
        # the screen shown reads the run if it shows it (a message to a screen does not bubble back here)
        self.screen.post_message(RunUpdated(msg.run_id, msg.rows, msg.state_changed, msg.restarted, msg.progress))

    def follow(self, run_id: str, holder: str) -> LiveRun:
        """The one LiveRun of `run_id`, read by the follower thread until every holder lets it go."""
        run = self.followed.get(run_id)
        if run is None:
            run = self.followed[run_id] = LiveRun(self.runs_dir / run_id)
        self._holders.setdefault(run_id, set()).add(holder)
        return run

    def unfollow(self, run_id: str, holder: str) -> None:
        """`holder` no longer shows `run_id`: the follower stops reading it when no view holds it, unless
        the app launched it and it still trains (the quit dialog asks about it)."""
        held = self._holders.get(run_id, set())
        held.discard(holder)
        if held:
            return
        self._holders.pop(run_id, None)
        run = self.followed.get(run_id)
        if run is not None and run is not self.live and not (run.launch is not None and run.active):
            del self.followed[run_id]

    def attach(self, run_id: str) -> LiveRun:
        """Show run `run_id` in the Train view (following it from now on)."""
        run = self.follow(run_id, "train")
        self._show(run)
        return run

    def _show(self, run: LiveRun) -> None:
        old, self.live = self.live, run
        if old is not None and old is not run:
            self.unfollow(old.run_id, "train")

    @work(thread=True, exclusive=True, exit_on_error=False, group="scan-active", description="scan active runs")
    def scan_active(self, attach: bool = False) -> None:
        ids = store.active_run_ids(self.runs_dir)
        if attach and ids:
            self.call_from_thread(self._attach_first, ids)

    def _attach_first(self, ids: list[str]) -> None:
        if self.live is None or not self.live.active:
            self.attach(ids[0])
            more = f" ({len(ids) - 1} more training: a to attach)" if len(ids) > 1 else ""
            self.notify(f"following {ids[0]}, training{more}", timeout=5, markup=False)

    def start_run(self, cfg: Config) -> LiveRun:
        """Start a detached run of cfg and show it. The files are written and the process started in a
        thread; a runs directory that cannot be written ends the run as failed with one sentence."""
        # the config as the form gave it, threads included: the child is `grok-tui run --config` of exactly
        # this (threads 0 means one per core there too; OpenMP's threads spin only briefly, cli/main.py).
        # The launch claims its id (a start in the same second takes the next one): follow the id it got.
        launch = Launch(self.runs_dir, ids.new_run_id(self.runs_dir, cfg), cfg,
                        **({"python": self.python} if self.python else {}))
        run_id = launch.run_id
        run = LiveRun(self.runs_dir / run_id, launch)
        self.followed[run_id] = run
        self._holders.setdefault(run_id, set()).add("train")
        self._show(run)
        self._launch(run)
        return run

    @work(thread=True, exit_on_error=False, group="launch", description="start a run")
    def _launch(self, run: LiveRun) -> None:
        try:
            if self.runs_dir.exists() and not self.runs_dir.is_dir():
                raise NotADirectoryError(20, "it is not a directory")
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            run.launch.start()
        except OSError as e:
            self.followed.pop(run.run_id, None)
            run.error = f"cannot write the runs directory {self.runs_dir}: {e.strerror or e}."
            run.state = "failed"
            run.seen = True
            run.launch.returncode = -1
            self.post_message(RunEnded(run.run_id, run.state, run.error))
            self._send(run.run_id, Polled(0, True, []))

    @on(RunEvent)
    def _run_event(self, msg: RunEvent) -> None:
        name = msg.event.get("event")
        if name == "warning":
            self.notify(f"{msg.run_id}: {msg.event.get('message')}", title="warning", severity="warning", timeout=8,
                        markup=False)
            return
        self.notify(f"{msg.run_id}: {name} at step {msg.event.get('step')}", title=name, timeout=4, markup=False)

    @on(RunEnded)
    def _run_ended(self, msg: RunEnded) -> None:
        run = self.followed.get(msg.run_id)
        if run is not None and not self._holders.get(msg.run_id) and run is not self.live:
            del self.followed[msg.run_id]  # a launched run that no view shows: nothing more to follow
        if msg.status in ("failed", "interrupted"):
            self.notify(msg.error or f"the run was {msg.status}.", title=f"{msg.run_id} {msg.status}",
                        severity="error", timeout=10, markup=False)
        else:
            self.notify(f"{msg.run_id} {msg.status}", timeout=4, markup=False)
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
        metric, logx, logy = chart.metric, chart.logx, chart.logy
        title = chart.export_title or chart.title  # the runs view's: the metric and what differs between the runs
        settings, ylabel = chart.export_settings, chart.title
        # the metrics drawn, in order (train and val together: both), else the chart's own
        shown = list(dict.fromkeys(m for m in [*(s.metric for s in all_series), *(b.metric for b in bands)] if m))
        name = "+".join(shown) if len(shown) > 1 else metric
        stem = f"grok-{name.replace(' ', '-').replace('/', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
        if chart.export_dir is not None:  # the run's figures/ directory; the toast says where
            stem = str(Path(chart.export_dir) / stem)

        def chosen(result: tuple[str, str] | None) -> None:
            if result is not None:
                self._export(result[0], result[1], all_series, metric, title, logx, logy, bands, settings, ylabel)

        self.push_screen(ExportScreen(stem, title), chosen)

    @work(thread=True, exit_on_error=False, group="export", description="export chart")
    def _export(self, stem: str, fmt: str, all_series, metric: str, title: str, logx: bool, logy: bool,
                bands=(), settings=None, ylabel: str | None = None) -> None:
        """The figure and the CSV: runs named by id (Series.run), a column per setting that differs."""
        from grok_tui.figures.panels import Panel, write_panels_csv

        base = Path(stem).expanduser().resolve()
        if base.suffix.lower() in (".png", ".svg", ".pdf", ".csv"):
            base = base.with_suffix("")
        paths: list[str] = []
        error = None
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            if bands:
                paths.append(str(write_panels_csv(base.with_suffix(".csv"), [Panel(title, ylabel or title, list(all_series),
                                                                                   list(bands))], settings=settings)))
            else:
                paths.append(str(write_csv(base.with_suffix(".csv"), all_series, metric, settings=settings)))
            paths.append(str(save_figure(base.with_suffix("." + fmt), all_series, title, ylabel or title, logx, logy,
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
        active = [r for r in self.followed.values() if r.active]
        if not active:
            self.exit()
            return

        def answer(choice: str | None) -> None:
            if choice == "stop":
                for r in active:
                    why = try_control(r, "stop")
                    if why:
                        self.notify(why, severity="warning", markup=False)
            if choice in ("leave", "stop"):
                self.exit()

        self.push_screen(QuitScreen([r.run_id for r in active]), answer)


def make_app(runs_dir: Path, python: str | None = None, attach_on_start: bool = True) -> GrokApp:
    """The app on a runs directory (the CLI's bare `grok-tui`, the tests and the snapshots use this).
    It follows the newest run training there, if any (a run from before a restart shows live)."""
    return GrokApp(runs_dir=runs_dir, python=python, attach_on_start=attach_on_start)
