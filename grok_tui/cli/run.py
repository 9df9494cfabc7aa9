"""`grok-tui run`: train one run headless, with a progress bar or as JSON lines."""

from __future__ import annotations

import os
import sys
import time
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

from grok_tui.cli.common import (
    ConfigFile,
    JsonLines,
    JsonOut,
    Preset,
    RunsDir,
    console,
    err_console,
    stop_on_signals,
    user_errors,
    with_config_flags,
)
from grok_tui.display import device_text, gpu_text
from grok_tui.report import Reporter
from grok_tui.spec.config import MILESTONES
from grok_tui.store import runs as store


class RichProgress(Reporter):
    """A progress bar with live accuracies; milestones printed above it (the engine's Reporter hooks)."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]:>11}"),
                                 TextColumn("train [cyan]{task.fields[train]}[/] val [magenta]{task.fields[val]}[/]"),
                                 TextColumn("{task.fields[gpu]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console, refresh_per_second=4)
        self.task = None
        self.resume_args = "RUN"
        self._t = (0.0, 0)
        self._start = 0

    def on_member_start(self, run_id: str, info: dict) -> None:
        device = device_text(info["device"], info.get("gpu"))
        console.print(f"run [bold]{escape(str(info['run_id']))}[/] on {escape(device)}: {info['params']:,} parameters, "
                      f"{info['n_train']} train / {info['n_val']} val examples")
        if info.get("compile"):
            console.print("compiling the training step: the first step waits for torch.compile (about half a "
                          "minute on a CPU, seconds once its cache holds this model)")
        self.progress.start()
        self.task = self.progress.add_task(escape(info["run_id"] or "train"), total=info["steps"],
                                           completed=info["start_step"], rate="- it/s", train="-", val="-", gpu="")
        self._t = (time.perf_counter(), info["start_step"])
        self._start = info["start_step"]
        path = Path(info["path"]) if info.get("path") else None  # `continue` finds it in its runs directory
        self.resume_args = (f"{path.name} --runs-dir {path.parent}" if path is not None and path.parent != Path("runs")
                            else info["run_id"] or "RUN")

    def on_eval(self, run_id: str, row: dict) -> None:
        t, s = self._t
        now = time.perf_counter()
        rate = (row["step"] - s) / max(now - t, 1e-9)
        self._t = (now, row["step"])
        self.progress.update(self.task, completed=row["step"], rate=f"{rate:,.0f} it/s",
                             train=f"{row['train_acc']:.3f}", val=f"{row['val_acc']:.3f}", gpu=gpu_text(row))

    def on_event(self, run_id: str, event: dict) -> None:
        if event["event"] in MILESTONES:
            self.progress.console.print(f"[green]{event['event']}[/] at step {event['step']} "
                                        f"(train acc {event['train_acc']:.3f}, val acc {event['val_acc']:.3f})")
        elif event["event"] == "paused":
            self.progress.console.print(f"[yellow]paused[/] at step {event['step']} "
                                        f"(grok-tui continue {escape(self.resume_args)} resumes it)")
            self.progress.update(self.task, rate="paused")
        elif event["event"] == "warning":
            self.progress.console.print(f"[yellow]warning[/] at step {event['step']}: {escape(str(event['message']))}")
        elif event["event"] == "resumed":
            self.progress.console.print(f"resumed at step {event['step']}")
            self._t = (time.perf_counter(), event["step"])  # the pause does not count in the next rate

    def on_member_end(self, run_id: str, summary: dict) -> None:
        self.progress.stop()
        last = summary.get("last") or {}
        status, step, start = summary.get("status", "failed"), summary.get("steps_run"), self._start
        color = {"finished": "green", "stopped": "yellow"}.get(status, "red")
        ran = "" if step is None else (f" after {step} steps" if not start else
                                       f" at step {step} ({step - start} steps in this resume)")

        def milestone(key: str) -> str:
            v = summary.get(key)
            return "not yet" if v is None else f"at {v}"

        console.print(f"[{color}]{status}[/]{ran}: train acc {last.get('train_acc', float('nan')):.3f}, "
                      f"val acc {last.get('val_acc', float('nan')):.3f}; memorized {milestone('memorized_step')}, "
                      f"grokked {milestone('grokked_step')}")


def to_log(path: Path) -> None:
    """From here on, stdout and stderr go to `path` (appended)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)  # less the umask, as any file
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
        os.dup2(fd, stream.fileno())
    os.close(fd)
    console.width = LOG_WIDTH  # a file has no width: rich would cut the progress line at 80 columns


LOG_WIDTH = 160


class RunJson(JsonLines):
    """One JSON object per line: start, eval, event, end (the run's own lines carry no run_id)."""

    def on_member_start(self, run_id: str, info: dict) -> None:
        self.write("start", info)

    def on_eval(self, run_id: str, row: dict) -> None:
        self.write("eval", row)

    def on_event(self, run_id: str, event: dict) -> None:
        self.write("event", event)

    def on_member_end(self, run_id: str, summary: dict) -> None:
        self.write("end", summary)


@with_config_flags
def run(
    preset: Preset = None,
    config: ConfigFile = None,
    runs_dir: RunsDir = Path("runs"),
    name: Annotated[Optional[str], typer.Option("--name", help="run id (default: time-op-p-optimizer)")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="continue RUN from its last checkpoint")] = None,
    json_out: JsonOut = False,
    log: Annotated[bool, typer.Option("--log", help="write the console output to <run>/runner.log once the run "
                                                    "directory exists (how the app starts a detached run)")] = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Train one run headless, writing its run directory.

    Exit codes: 0 finished, 1 failed (NaN loss, full disk, out of memory), 2 bad input (also: another
    process writes the run), 130 stopped. SIGINT/SIGTERM stop cleanly with a final checkpoint; SIGUSR1
    pauses, SIGUSR2 resumes; SIGHUP is ignored and a closed stdout only ends the printing, so a run
    outlives its terminal. `grok-tui pause|continue|stop RUN` send these signals from anywhere.
    """
    from grok_tui.train.loop import Control
    from grok_tui.train.prepare import prepare_run
    from grok_tui.train.trainer import run_training

    with user_errors():
        job = prepare_run(runs_dir, resume=resume, preset=preset, config_file=config, name=name, overrides=overrides)
        if log:
            to_log(job.writer.path / "runner.log")
            store.drop_start_files(job.writer.path.parent, job.writer.run_id, config)
        if job.note:
            err_console.print(f"note: {escape(job.note)}")
        control = Control()
        reporters = [RunJson() if json_out else RichProgress()]
        with stop_on_signals(control):
            try:  # a TrainingError (exit 1) is one sentence through user_errors, like every GrokError
                summary = run_training(job.cfg, job.writer, reporters, control, job.resume_from, job.trainer)
            finally:
                job.writer.close()
    if summary["status"] == "stopped":
        raise typer.Exit(130)
