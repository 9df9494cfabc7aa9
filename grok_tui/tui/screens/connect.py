"""Connectivity view: two checkpoints from any runs, a curve, a job in a child process, three panels.

Panels against t: cross-entropy with the L2 term, error (train, val), mean stochastic-gradient norm.
The landscape action computes a 1-D line and a 2-D plane of random directions around the first
checkpoint and draws the line and two heat maps. Earlier results of the first run can be reopened.
The computing is `grok-tui connect` / `landscape` in a child process of its own session (`tui.jobs`),
followed through its progress file by one exclusive thread worker; cancel (x) signals the child. The
file reading (runs, checkpoints, results) is in thread workers too; each answers with a message
(errors become notifications, never a crash). This process imports no torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, ProgressBar, Select, Static
from textual.worker import get_current_worker

from grok_tui.connect.results import list_results, load_result
from grok_tui.errors import GrokError
from grok_tui.host import usable_cpus
from grok_tui.store import refs
from grok_tui.store import runs as store
from grok_tui.tui.jobs import ConnectJob, eta_text, new_job_id
from grok_tui.tui.widgets.connect_plot import ConnectPlot, HeatData, LandscapeHeatmap, Line

CURVE_OPTIONS = [("segment", "segment"), ("polyline", "polyline"), ("Bezier", "bezier"), ("chain", "chain")]
POLL_S = 0.2  # how often the worker reads a child's progress file
CANCEL_WAIT_S = 30.0  # a cancelled child that has not ended by then is killed


def checkpoint_options(info: store.RunInfo) -> list[tuple[str, str]]:
    """Choices for a run's checkpoint: its milestones, last, then every saved step."""
    steps = [s for s, _ in info.checkpoints()]
    opts = [(f"{m} ({s})", m) for m, s in refs.milestone_checkpoints(info).items()]
    if steps:
        opts.append((f"last ({steps[-1]})", "last"))
    opts += [(f"step {s}", str(s)) for s in steps]
    return opts


class ConnectScreen(Screen):
    """Pick A and B, a curve, run; panels of loss+L2, error and gradient norm against t."""

    BINDINGS = [
        Binding("g", "go", "Run"),
        Binding("L", "landscape", "Landscape"),
        Binding("x", "cancel", "Cancel"),
        Binding("f5", "rescan", "Rescan"),
        Binding("w", "l2", "CE / CE+L2"),
        Binding("e", "export", "Export"),
    ]

    @dataclass
    class Progressed(Message):
        job: str  # connect, landscape 1-D, landscape 2-D
        stage: str  # fit or eval
        done: int
        total: int
        eta_s: float | None = None

        def can_replace(self, message: Message) -> bool:  # latest state only
            return isinstance(message, ConnectScreen.Progressed)

    @dataclass
    class Finished(Message):
        results: list[dict]
        error: str | None = None

    @dataclass
    class Scanned(Message):
        """The runs with checkpoints and each one's checkpoint choices (read off the UI thread)."""

        infos: dict[str, store.RunInfo]
        options: dict[str, list[tuple[str, str]]]

    @dataclass
    class ResultsListed(Message):
        run_id: str | None
        options: list[tuple[str, str]]
        select: str | None = None

    @dataclass
    class Loaded(Message):
        """A saved result read from its file (or why it could not be)."""

        results: list[dict]
        error: str | None = None

    def __init__(self, runs_dir: Path | None = None, **kw):
        super().__init__(**kw)
        self._runs_dir = runs_dir
        self.infos: dict[str, store.RunInfo] = {}
        self.ckpt_options: dict[str, list[tuple[str, str]]] = {}
        self.shown: list[dict] = []
        self.with_l2 = False  # the loss panel: cross-entropy alone (the barrier shows), or with the L2 term
        self.last_progress: tuple[str, int, int] | None = None
        self.jobs: list[ConnectJob] = []  # the child processes of the job running now (or last)

    @property
    def runs_dir(self) -> Path:
        return Path(self._runs_dir if self._runs_dir is not None else getattr(self.app, "runs_dir", "runs"))

    def compose(self) -> ComposeResult:
        with Vertical(id="connect-body"):
            with Horizontal(classes="connect-row"):
                yield Label("A ", classes="connect-label")
                yield Select([], prompt="run A", id="run-a", compact=True)
                yield Select([], prompt="ckpt", id="ckpt-a", compact=True, classes="connect-ckpt")
                yield Label(" B ", classes="connect-label")
                yield Select([], prompt="run B", id="run-b", compact=True)
                yield Select([], prompt="ckpt", id="ckpt-b", compact=True, classes="connect-ckpt")
            with Horizontal(classes="connect-row"):
                yield Select(CURVE_OPTIONS, value="segment", allow_blank=False, id="curve", compact=True)
                yield Label(" bends ", classes="connect-label")
                yield Input("1", id="bends", type="integer", compact=True, classes="connect-num")
                yield Label(" points ", classes="connect-label")
                yield Input("41", id="points", type="integer", compact=True, classes="connect-num")
                yield Label(" fit steps ", classes="connect-label")
                yield Input("500", id="fit-steps", type="integer", compact=True, classes="connect-num")
                yield Button("Run", id="go", compact=True, variant="primary")
                yield Button("Landscape", id="land", compact=True)
            with Horizontal(classes="connect-row"):
                yield Select([], prompt="earlier results of run A", id="results", compact=True)
                bar = ProgressBar(id="connect-progress", show_eta=False)
                bar.display = False  # shown while a job runs: an idle bar would pulse as if one did
                yield bar
            yield Static("pick two checkpoints and a curve, then Run (g)", id="connect-status")
            with Horizontal(id="connect-panels"):
                yield ConnectPlot("loss + L2", id="panel-loss")
                yield ConnectPlot("error", id="panel-err")
                yield ConnectPlot("grad norm", id="panel-grad")
                yield LandscapeHeatmap(id="heat-train")
                yield LandscapeHeatmap(id="heat-val")
        yield Footer()

    def on_mount(self) -> None:
        self._layout("curve")
        self.action_rescan()

    def on_screen_resume(self) -> None:
        self.action_rescan()

    # -- pickers (the files are read in thread workers) ---------------------------------------------
    def action_rescan(self) -> None:
        self._scan(self.runs_dir)

    @work(thread=True, exclusive=True, exit_on_error=False, group="connect-scan", description="list checkpoints")
    def _scan(self, runs_dir: Path) -> None:
        infos, options = {}, {}
        for r in store.list_runs(runs_dir):
            opts = checkpoint_options(r)
            if opts:
                infos[r.id], options[r.id] = r, opts
        self.post_message(self.Scanned(infos, options))

    @on(Scanned)
    def _scanned(self, msg: Scanned) -> None:
        self.infos, self.ckpt_options = msg.infos, msg.options
        opts = [(rid, rid) for rid in self.infos]
        for sid in ("#run-a", "#run-b"):
            sel = self.query_one(sid, Select)
            keep = sel.value
            sel.set_options(opts)
            if keep in self.infos:
                sel.value = keep
            elif opts:
                sel.value = opts[-1][1]

    @on(Select.Changed, "#run-a, #run-b")
    def _run_changed(self, event: Select.Changed) -> None:
        side = event.select.id[-1]
        ckpt = self.query_one(f"#ckpt-{side}", Select)
        opts = self.ckpt_options.get(event.value, []) if isinstance(event.value, str) else []
        ckpt.set_options(opts)
        values = [v for _, v in opts]
        want = ("memorized", "last") if side == "a" else ("grokked", "last")
        for w in want:
            if w in values:
                ckpt.value = w
                break
        if side == "a":
            self._list_results()

    def _list_results(self, select: str | None = None) -> None:
        run = self.query_one("#run-a", Select).value
        info = self.infos.get(run) if isinstance(run, str) else None
        self._read_results(info.id if info else None, info.path if info else None, select)

    @work(thread=True, exclusive=True, exit_on_error=False, group="connect-results", description="list results")
    def _read_results(self, run_id: str | None, path: Path | None, select: str | None) -> None:
        found = list_results(path) if path is not None else []
        self.post_message(self.ResultsListed(run_id, [(f"{r['name']} ({r['kind']})", str(r["path"])) for r in found],
                                             select))

    @on(ResultsListed)
    def _results_listed(self, msg: ResultsListed) -> None:
        sel = self.query_one("#results", Select)
        with sel.prevent(Select.Changed):
            sel.set_options(msg.options)
            if msg.select is not None and any(v == msg.select for _, v in msg.options):
                sel.value = msg.select

    def ref(self, side: str) -> str | None:
        run = self.query_one(f"#run-{side}", Select).value
        ck = self.query_one(f"#ckpt-{side}", Select).value
        if not isinstance(run, str) or not isinstance(ck, str):
            return None
        return f"{run}@{ck}"

    def _int(self, wid: str, lo: int) -> int | None:
        try:
            v = int(self.query_one(wid, Input).value)
        except ValueError:
            v = None
        if v is None or v < lo:
            self.notify(f"{wid[1:].replace('-', ' ')} must be a whole number >= {lo}.", severity="error")
            return None
        return v

    # -- actions: a child process per job ---------------------------------------------------------
    def _job(self, args: list[str], label: str) -> ConnectJob:
        """A child running `grok-tui <args>`; its progress file and log go under run A's connect/."""
        run = self.query_one("#run-a", Select).value
        info = self.infos.get(run) if isinstance(run, str) else None
        home = (info.path if info else self.runs_dir) / "connect"
        # the threads run A was set to train with (one on a shared machine: its curves too), else the app's
        threads = (info.config.train.threads if info and info.config else 0) or getattr(self.app, "child_threads", 0)
        threads = min(threads, usable_cpus())  # a run from a bigger machine: the CPUs this one has
        return ConnectJob([*args, "--runs-dir", str(self.runs_dir), "--threads", str(threads)], home, new_job_id(),
                          getattr(self.app, "python", None), label)

    @on(Button.Pressed, "#go")
    def action_go(self) -> None:
        a, b = self.ref("a"), self.ref("b")
        if a is None or b is None:
            self.notify("pick a run and a checkpoint for both A and B.", severity="warning")
            return
        bends, points, steps = self._int("#bends", 1), self._int("#points", 2), self._int("#fit-steps", 0)
        if bends is None or points is None or steps is None:
            return
        curve = str(self.query_one("#curve", Select).value)
        self._status(f"{curve}: {a} -> {b} ...")
        self._start([self._job(["connect", a, b, "--curve", curve, "--bends", str(bends), "--points", str(points),
                                "--fit-steps", str(steps)], curve)])

    @on(Button.Pressed, "#land")
    def action_landscape(self) -> None:
        a = self.ref("a")
        if a is None:
            self.notify("pick a run and a checkpoint for A.", severity="warning")
            return
        self._status(f"landscape around {a} ...")
        self._start([self._job(["landscape", a, "--dims", "1"], "landscape 1-D"),
                     self._job(["landscape", a, "--dims", "2", "--points", "15"], "landscape 2-D")])

    def _start(self, jobs: list[ConnectJob]) -> None:
        self.last_progress = None
        bar = self.query_one("#connect-progress", ProgressBar)
        bar.update(total=1, progress=0)  # a known total does not animate
        bar.display = True
        self.jobs = jobs
        self._compute(jobs)

    def action_cancel(self) -> None:
        if self.workers.cancel_group(self, "connect"):
            self._status("cancelling ...")
        else:
            self.notify("nothing to cancel: no connectivity or landscape job is running.", severity="warning")

    @work(thread=True, exclusive=True, exit_on_error=False, group="connect", description="connectivity")
    def _compute(self, jobs: list[ConnectJob]) -> None:
        """Run the jobs one after another, each a child process followed through its progress file."""
        worker = get_current_worker()
        paths: list[str] = []
        try:
            for job in jobs:
                if worker.is_cancelled:
                    break
                try:
                    job.start()
                except OSError as e:
                    self.post_message(self.Finished([], f"cannot start the {job.label} job: {e.strerror or e}."))
                    return
                self._follow(job, worker)
                outcome = job.outcome or {}
                if outcome.get("status") == "finished" and outcome.get("path"):
                    paths.append(str(outcome["path"]))
                    continue
                cancelled = outcome.get("status") == "cancelled" or job.signalled
                self.post_message(self.Finished([], "cancelled." if cancelled else job.error()))
                return
            if worker.is_cancelled:
                self.post_message(self.Finished([], "cancelled."))
                return
            try:
                results = [{**load_result(Path(p)), "path": p} for p in paths]
            except GrokError as e:
                self.post_message(self.Finished([], str(e)))
                return
            self.post_message(self.Finished(results))
        finally:
            for job in jobs:
                if job.poll() is not None or job.proc is None:
                    job.cleanup()

    def _follow(self, job: ConnectJob, worker) -> None:
        """Until the child ends: its progress as messages; a cancelled worker signals it."""
        cancelled_at = None
        while True:
            rc = job.poll()
            for row in job.read():
                self.post_message(self.Progressed(job.label, str(row.get("stage", "")), int(row.get("done", 0)),
                                                  int(row.get("total", 0)), row.get("eta_s")))
            if rc is not None:
                job.read()
                return
            if worker.is_cancelled:
                if cancelled_at is None:
                    job.cancel()
                    cancelled_at = time.monotonic()
                elif time.monotonic() - cancelled_at > CANCEL_WAIT_S:
                    job.proc.kill()
            time.sleep(POLL_S)

    @on(Progressed)
    def _progressed(self, msg: Progressed) -> None:
        self.last_progress = (msg.stage, msg.done, msg.total)
        bar = self.query_one("#connect-progress", ProgressBar)
        bar.update(total=msg.total, progress=msg.done)
        eta = eta_text(msg.eta_s)
        self._status(f"{msg.job}: {msg.stage} {msg.done}/{msg.total}{', ' + eta if eta else ''}  (x cancels)")

    @on(Finished)
    def _finished(self, msg: Finished) -> None:
        self.query_one("#connect-progress", ProgressBar).display = False
        if msg.error:
            self._status(msg.error)
            self.notify(msg.error, severity="warning" if msg.error == "cancelled." else "error", timeout=8,
                        markup=False)
            return
        self.draw(msg.results)
        self._list_results(select=msg.results[-1]["path"])
        self.notify("saved " + ", ".join(Path(r["path"]).name for r in msg.results), timeout=4, markup=False)

    @on(Select.Changed, "#results")
    def _reopen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._load(Path(event.value))

    @work(thread=True, exclusive=True, exit_on_error=False, group="connect-load", description="load a result")
    def _load(self, path: Path) -> None:
        try:
            self.post_message(self.Loaded([{**load_result(path), "path": str(path)}]))  # the path: for the export
        except GrokError as e:
            self.post_message(self.Loaded([], str(e)))

    @on(Loaded)
    def _loaded(self, msg: Loaded) -> None:
        if msg.error:
            self.notify(msg.error, severity="error", markup=False)
        elif msg.results:
            self.draw(msg.results)

    # -- drawing ------------------------------------------------------------------------------------
    def _status(self, text: str) -> None:
        self.query_one("#connect-status", Static).update(text)

    def _layout(self, kind: str) -> None:
        show = {"curve": ("panel-loss", "panel-err", "panel-grad"),
                "landscape1d": ("panel-loss", "panel-err"),
                "grid": ("heat-train", "heat-val"),
                "both": ("panel-loss", "heat-train", "heat-val")}[kind]
        for wid in ("panel-loss", "panel-err", "panel-grad", "heat-train", "heat-val"):
            self.query_one(f"#{wid}").display = wid in show

    def draw(self, results: list[dict]) -> None:
        """Draw saved results: one curve, one landscape, or a 1-D line with a 2-D plane."""
        self.shown = results
        kinds = [r["kind"] for r in results]
        loss, err, grad = (self.query_one(f"#panel-{p}", ConnectPlot) for p in ("loss", "err", "grad"))
        for r in results:
            d = r["data"]
            if r["kind"] == "curve":
                self._layout("curve")
                marks = r.get("knots", [])[1:-1]
                key = "_loss_l2" if self.with_l2 or "train_loss" not in d else "_loss"
                loss.show("cross-entropy + L2 (w)" if key == "_loss_l2" else "cross-entropy (w: + L2)",
                          [Line("train", d["t"], d["train" + key]), Line("val", d["t"], d["val" + key])], marks=marks)
                err.show("error", [Line("train", d["t"], d["train_err"]), Line("val", d["t"], d["val_err"])], marks=marks)
                grad.show("grad norm", [Line("train", d["t"], d["grad_norm"])] if "grad_norm" in d else [], marks=marks)
                s = r["summary"]["train_err"]
                self._status(f"{r['name']}: train err max {s['max']:.3f} at t={s['t_max']:.2f}, mean "
                             f"{s['mean']:.3f}; val err {r['summary']['val_err']['start']:.3f} -> "
                             f"{r['summary']['val_err']['end']:.3f}")
            elif r["kind"] == "landscape1d":
                self._layout("both" if "landscape2d" in kinds else "landscape1d")
                loss.show("loss (1-D)", [Line("train", d["alpha"], d["train_loss"]),
                                         Line("val", d["alpha"], d["val_loss"])], xlabel="alpha", marks=[0.0])
                err.show("error (1-D)", [Line("train", d["alpha"], d["train_err"]),
                                         Line("val", d["alpha"], d["val_err"])], xlabel="alpha", marks=[0.0])
                self._status(f"{r['name']}: around {r['inputs']['endpoints'][0]['ref']}")
            else:  # landscape2d or plane
                if "landscape1d" not in kinds:
                    self._layout("grid")
                self._heat(r)
        self.refresh_bindings()

    def action_l2(self) -> None:
        self.with_l2 = not self.with_l2
        if any(r["kind"] == "curve" for r in self.shown):
            self.draw(self.shown)
        else:
            self.notify(f"the loss panel will show {'CE + L2' if self.with_l2 else 'CE alone'} for the next curve.",
                        timeout=3)

    def action_export(self) -> None:
        curves = [r for r in self.shown if r["kind"] in ("curve", "landscape1d")]
        if not curves:
            self.notify("nothing to export: run or reopen a curve first (g, or earlier results)."
                        if not self.shown else "a 2-D landscape is saved as JSON + CSV already; "
                        "figures are for curves and 1-D lines.", severity="warning")
            return
        self._export_figures(curves)

    @work(thread=True, exit_on_error=False, group="export", description="export connectivity figure")
    def _export_figures(self, results: list[dict]) -> None:
        from grok_tui.figures.panels import connect_panels, save_panels, write_panels_csv
        from grok_tui.tui.messages import ExportDone

        base = Path(results[0]["path"]).resolve().with_suffix("")
        base = base.with_name(base.name + "-figure")
        paths, error = [], None
        try:
            panels = connect_panels(results)
            paths.append(str(write_panels_csv(base.with_suffix(".csv"), panels, label="result")))
            paths.append(str(save_panels(base.with_suffix(".png"), panels, " vs ".join(r["name"] for r in results))))
        except GrokError as e:
            error = str(e)
        except OSError as e:
            error = f"cannot write {base.parent}: {e.strerror or e}."
        self.app.post_message(ExportDone(paths, error))

    def _heat(self, r: dict) -> None:
        d, grid = r["data"], r["grid"]
        na, nb = len(grid["alpha"]), len(grid["beta"])

        def matrix(key: str) -> list[list[float]]:
            return [[d[key][i * nb + j] for j in range(nb)] for i in range(na)]

        marks = []
        for k, m in enumerate(r.get("marks", [])):
            x, y = m["xy"]
            i = min(range(na), key=lambda q: abs(grid["alpha"][q] - x))
            j = min(range(nb), key=lambda q: abs(grid["beta"][q] - y))
            marks.append(("ABC"[k], i, j))
        if r["kind"] != "plane":
            marks.append(("+", na // 2, nb // 2))
        self.query_one("#heat-train", LandscapeHeatmap).show(HeatData("train loss", matrix("train_loss"), True, marks))
        self.query_one("#heat-val", LandscapeHeatmap).show(HeatData("val error", matrix("val_err"), False, marks))
