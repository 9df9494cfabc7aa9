"""`grok-tui connect` and `grok-tui landscape`: thin front ends over connect/evaluate.py and connect/landscape.py.

With `--progress-file F` the job also writes its progress to F, one JSON object per line (how the app
follows the child it starts): `{"stage", "done", "total", "elapsed_s", "eta_s"}` a few times a second,
then one last line `{"status": "finished", "path": ...}`, `{"status": "failed", "error": sentence}` or
`{"status": "cancelled", "error": "cancelled."}`. SIGTERM and SIGINT cancel the job between two steps or
chunks of points: it exits with code 130 and the sentence `cancelled.`, saving nothing.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from grok_tui.cli.common import (
    ConfigFile,
    JsonOut,
    Preset,
    RunsDir,
    console,
    err_console,
    fail,
    user_errors,
)
from grok_tui.connect.results import strict_json
from grok_tui.errors import ConfigError, sentence
from grok_tui.spec import config as config_mod
from grok_tui.spec.resolve import resolve
from grok_tui.store.files import ProgressFile

REF_HELP = "RUN@STEP, RUN@memorized, RUN@grokked, RUN@last or a .safetensors path"


def _ref(metavar: str, where: str = "") -> Any:
    """A checkpoint argument, named in the usage line as in the help (`connect [OPTIONS] A B`)."""
    return typer.Argument(metavar=metavar, help=f"{where}{REF_HELP}", show_default=False)


RefA = Annotated[str, _ref("A", "the start, phi(0): ")]
RefB = Annotated[str, _ref("B", "the end, phi(1): ")]
Ref = Annotated[str, _ref("CKPT")]
Wd = Annotated[Optional[float], typer.Option("--wd", help="L2 coefficient of the loss-with-L2 figures "
                                             "(default: the run's weight decay)")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N")]
Name = Annotated[Optional[str], typer.Option("--name", help="result name (default: from the curve and the ends)")]
Out = Annotated[Optional[Path], typer.Option("--out", help="directory for the result files "
                                             "(default: <run>/connect of the first checkpoint)")]
Threads = Annotated[int, typer.Option("--threads", help="CPU threads of this process (0: torch's default, one "
                                     "per core)")]
ProgressOut = Annotated[Optional[Path], typer.Option("--progress-file", help="also write progress and the outcome "
                        "to this file as JSON lines (how the app follows the job)")]
# The connect table: the cross-entropy (what the app shows), the L2 term apart (with weight decay 1 it is
# about 50 and would hide a barrier of a few nats inside CE + L2), the error and the gradient norm.
COLUMNS = ("train_loss", "val_loss", "l2", "train_err", "val_err", "grad_norm")
LABELS = {"train_loss": "train CE", "val_loss": "val CE", "l2": "L2 wd/2·‖w‖²", "train_err": "train err",
          "val_err": "val err", "grad_norm": "grad norm"}


class _Bar:
    """Renders the engine's (stage, done, total) progress calls, throttled to a few per second."""

    def __init__(self, quiet: bool, file: ProgressFile | None = None):
        self.quiet = quiet or not err_console.is_terminal  # a transient bar leaves only a blank line in a file
        self.file = file
        self.progress = Progress(TextColumn("[bold]{task.description:>4}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=True)
        self.tasks: dict[str, Any] = {}
        self._last = 0.0

    def __enter__(self) -> _Bar:
        if not self.quiet:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.quiet:  # rich's stop() of a bar never started still prints a newline off a terminal
            self.progress.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.file is not None:
            self.file.progress(stage, done, total)
        if self.quiet:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        now = time.monotonic()
        if now - self._last > 0.25 or done == total:
            self._last = now
            self.progress.update(self.tasks[stage], completed=done)


@contextmanager
def job(progress_file: Path | None) -> Iterator[tuple[threading.Event, ProgressFile | None]]:
    """A job's cancel event (set by SIGTERM or SIGINT) and its progress file; the outcome goes to the
    file as its last line, and a cancelled job ends with `cancelled.` and exit code 130."""
    from grok_tui.connect.problem import Cancelled

    cancel = threading.Event()
    file = ProgressFile(progress_file) if progress_file is not None else None
    handlers = {sig: signal.signal(sig, lambda s, f: cancel.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield cancel, file
    except Cancelled:
        if file is not None:
            file.end("cancelled", error="cancelled.")
        raise fail("cancelled.", 130) from None
    except BaseException as e:
        if file is not None and not isinstance(e, typer.Exit):
            file.end("failed", error=sentence(e))
        raise
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)


def _base_cfg(preset: str | None, config: Path | None) -> config_mod.Config | None:
    return resolve(preset, config) if (preset is not None or config is not None) else None


def _rows(data: dict[str, list[float]], key: str, cols: tuple[str, ...], max_rows: int = 11) -> Table:
    n = len(data[key])
    every = max(1, -(-(n - 1) // (max_rows - 1)))
    idx = sorted(set(range(0, n, every)) | {n - 1})
    table = Table(key, *(LABELS.get(c, c) for c in cols if c in data), box=None, header_style="bold")
    for i in idx:
        table.add_row(f"{data[key][i]:.3f}", *(f"{data[c][i]:.4g}" for c in cols if c in data))
    return table


def _with_l2(data: dict[str, list[float]]) -> dict[str, list[float]]:
    """The arrays with the L2 term wd/2·‖w‖² on its own (`l2`: CE + L2 less CE, the same for both splits)."""
    if "train_loss_l2" not in data or "train_loss" not in data:
        return data
    return {**data, "l2": [a - b for a, b in zip(data["train_loss_l2"], data["train_loss"], strict=True)]}


def connect_cmd(
    a: RefA,
    b: RefB,
    curve: Annotated[str, typer.Option("--curve", help="segment, polyline, bezier or chain")] = "segment",
    bends: Annotated[int, typer.Option("--bends", help="bends of a polyline / control points of a Bezier")] = 1,
    points: Annotated[int, typer.Option("--points", help="evenly spaced t to evaluate (a chain rounds up so "
                                        "that every checkpoint is one)")] = 41,
    fit_steps: Annotated[int, typer.Option("--fit-steps", help="optimizer steps fitting the bends")] = 500,
    fit_lr: Annotated[float, typer.Option("--fit-lr", help="learning rate of the fit")] = 3e-3,
    fit_optimizer: Annotated[str, typer.Option("--fit-optimizer", help="adam or sgd")] = "adam",
    fit_batch: Annotated[int, typer.Option("--fit-batch", help="training examples per fit step")] = 256,
    fit_t: Annotated[int, typer.Option("--fit-t", help="t drawn per fit step")] = 2,
    fit_wd: Annotated[Optional[float], typer.Option("--fit-wd", help="L2 coefficient of the fit objective "
                      "(default: --wd for SGD/Adam runs, 0 for decoupled decay such as AdamW)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the fit's t draws and minibatches")] = 0,
    grad_norm: Annotated[bool, typer.Option("--grad-norm/--no-grad-norm", help="compute the mean "
                         "stochastic-gradient norm along t")] = True,
    grad_batches: Annotated[Optional[int], typer.Option("--grad-batches", help="average the gradient norm "
                            "over this many minibatches (default: all; fewer is faster on a CPU)")] = None,
    wd: Wd = None,
    preset: Preset = None,
    config: ConfigFile = None,
    device: Device = "auto",
    name: Name = None,
    out: Out = None,
    runs_dir: RunsDir = Path("runs"),
    json_out: JsonOut = False,
    threads: Threads = 0,
    progress_file: ProgressOut = None,
) -> None:
    """Connect two checkpoints by a curve, evaluate along it and save connect/<name>.json and .csv.

    phi(0) is A and phi(1) is B. --preset/--config name the data split only when neither checkpoint
    lives in a run directory.
    """
    from grok_tui.connect.fit import FitSettings
    from grok_tui.connect.job import run_connect
    from grok_tui.connect.problem import use_threads

    with user_errors(), job(progress_file) as (cancel, file):
        use_threads(threads)
        fit = FitSettings(steps=fit_steps, lr=fit_lr, optimizer=fit_optimizer, batch_size=fit_batch,
                          t_per_step=fit_t, wd=fit_wd, seed=seed)
        fit.check()
        with _Bar(json_out, file) as bar:
            r = run_connect(a, b, runs_dir, curve, bends, points, fit, wd, _base_cfg(preset, config), device,
                            name, out, grad_norm, cancel=cancel, progress=bar, grad_batches=grad_batches)
        if file is not None:
            file.end("finished", path=r["path"])
    if json_out:
        print(json.dumps(strict_json(r), allow_nan=False))
        return
    ends = r["inputs"]["endpoints"]
    console.print(f"[bold]{curve}[/] from {escape(ends[0]['ref'])} (t=0) to {escape(ends[1]['ref'])} (t=1), wd {r['inputs']['wd']:g}, "
                  f"{r['inputs']['points']} points on {r['inputs']['device']} in {r['wall_s']['total']:.1f} s")
    for note in r["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(_rows(_with_l2(r["data"]), "t", COLUMNS))
    s = r["summary"]
    console.print(f"train err: max {s['train_err']['max']:.3f} at t={s['train_err']['t_max']:.3f}, "
                  f"mean {s['train_err']['mean']:.3f}; train loss mean {s['train_loss']['mean']:.4g}; "
                  f"val err mean {s['val_err']['mean']:.3f}")
    if "grad_norm" in s:
        console.print(f"grad norm: {s['grad_norm']['start']:.3g} at t=0, {s['grad_norm']['end']:.3g} at t=1, "
                      f"max {s['grad_norm']['max']:.3g} at t={s['grad_norm']['t_max']:.3f}")
    console.print(escape(f"saved {r['path']}" + (f" and bends {', '.join(r['bend_files'])}" if r["bend_files"] else "")))


def landscape_cmd(
    ckpt: Ref,
    dims: Annotated[int, typer.Option("--dims", help="1: one random direction, 2: a plane of two")] = 1,
    span: Annotated[float, typer.Option("--span", help="the step along each direction runs over [-span, span]")] = 1.0,
    points: Annotated[Optional[int], typer.Option("--points", help="points per axis (default 41 in 1-D, 21 in 2-D)")] = None,
    through: Annotated[Optional[list[str]], typer.Option("--through", help="two more checkpoints: the plane "
                       "through CKPT and them (give it twice)")] = None,
    margin: Annotated[float, typer.Option("--margin", help="plane: margin around the three points")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="seed of the random directions")] = 0,
    keep_1d: Annotated[bool, typer.Option("--keep-1d", help="also move biases and norm gains")] = False,
    grad_norm: Annotated[bool, typer.Option("--grad-norm", help="also the mean stochastic-gradient norm")] = False,
    wd: Wd = None,
    preset: Preset = None,
    config: ConfigFile = None,
    device: Device = "auto",
    name: Name = None,
    out: Out = None,
    runs_dir: RunsDir = Path("runs"),
    json_out: JsonOut = False,
    threads: Threads = 0,
    progress_file: ProgressOut = None,
) -> None:
    """Loss and error around a checkpoint along random filter-normalised directions, or on a plane
    through three checkpoints; saves connect/<name>.json and .csv."""
    from grok_tui.connect.landscape import landscape, plane
    from grok_tui.connect.problem import use_threads

    with user_errors(), job(progress_file) as (cancel, file):
        use_threads(threads)
        cfg = _base_cfg(preset, config)
        with _Bar(json_out, file) as bar:
            if through:
                if len(through) != 2:
                    raise ConfigError(f"--through takes two checkpoints (the plane goes through three), got {len(through)}.")
                r = plane([ckpt, *through], runs_dir, points or 21, margin, wd, cfg, device, name, out, grad_norm,
                          cancel=cancel, progress=bar)
            else:
                r = landscape(ckpt, runs_dir, dims, span, points, seed, not keep_1d, wd, cfg, device, name, out,
                              grad_norm, cancel=cancel, progress=bar)
        if file is not None:
            file.end("finished", path=r["path"])
    if json_out:
        print(json.dumps(strict_json(r), allow_nan=False))
        return
    d = r["data"]
    console.print(f"[bold]{r['kind']}[/] around {escape(r['inputs']['endpoints'][0]['ref'])}, {len(d['train_loss'])} points "
                  f"on {r['inputs']['device']} in {r['wall_s']['total']:.1f} s")
    if r["kind"] == "landscape1d":
        console.print(_rows(d, "alpha", ("train_loss", "val_loss", "train_err", "val_err", "grad_norm"), 21))
    else:
        for m in r.get("marks", []):
            console.print(f"  {escape(m['ref'])} at ({m['xy'][0]:.3g}, {m['xy'][1]:.3g})")
        for k in ("train_loss", "val_loss", "train_err", "val_err"):
            console.print(f"  {k:10} min {min(d[k]):.4g}  max {max(d[k]):.4g}")
    console.print(escape(f"saved {r['path']}"))
