"""`grok-tui`: the Typer front end. A bare `grok-tui` opens the TUI; subcommands run headless."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
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
    with_config_flags,
)
from grok_tui.errors import ConfigError
from grok_tui.spec import config as config_mod
from grok_tui.store import runs as store
from grok_tui.train.trainer import Callback, Control, build_trainer, resume_paths, run_training

app = typer.Typer(add_completion=False, no_args_is_help=False, rich_markup_mode="rich",
                  pretty_exceptions_enable=False,
                  help="A research instrument for grokking. Without a command, opens the TUI.")
runs_app = typer.Typer(help="List runs, or show one.", invoke_without_command=True)
app.add_typer(runs_app, name="runs")


@app.callback(invoke_without_command=True)
def main_callback(ctx: typer.Context, runs_dir: RunsDir = Path("runs")) -> None:
    """Without a command: open the Textual app on the runs directory."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        from grok_tui.tui.app import make_app
    except ImportError as e:  # pragma: no cover - the TUI ships with the package
        raise fail(f"the TUI cannot start: {e}.", 1) from None
    make_app(runs_dir=runs_dir).run()


# --- run -----------------------------------------------------------------------------------------

class RichProgress(Callback):
    """A progress bar with live accuracies; milestones printed above it."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]:>7} it/s"),
                                 TextColumn("train [cyan]{task.fields[train]}[/] val [magenta]{task.fields[val]}[/]"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, refresh_per_second=4)
        self.task = None
        self._t = (0.0, 0)

    def on_start(self, info: dict) -> None:
        console.print(f"run [bold]{info['run_id']}[/] on {info['device']}: {info['params']:,} parameters, "
                      f"{info['n_train']} train / {info['n_val']} val examples")
        self.progress.start()
        self.task = self.progress.add_task(info["run_id"] or "train", total=info["steps"],
                                           completed=info["start_step"], rate="-", train="-", val="-")
        self._t = (time.perf_counter(), info["start_step"])

    def on_eval(self, row: dict) -> None:
        t, s = self._t
        now = time.perf_counter()
        rate = (row["step"] - s) / max(now - t, 1e-9)
        self._t = (now, row["step"])
        self.progress.update(self.task, completed=row["step"], rate=f"{rate:,.0f}",
                             train=f"{row['train_acc']:.3f}", val=f"{row['val_acc']:.3f}")

    def on_event(self, event: dict) -> None:
        if event["event"] in store.MILESTONES:
            self.progress.console.print(f"[green]{event['event']}[/] at step {event['step']} "
                                        f"(train acc {event['train_acc']:.3f}, val acc {event['val_acc']:.3f})")

    def on_end(self, summary: dict) -> None:
        self.progress.stop()
        last = summary.get("last") or {}
        color = {"finished": "green", "stopped": "yellow"}.get(summary["status"], "red")
        console.print(f"[{color}]{summary['status']}[/] after {summary['steps_run']} steps: train acc "
                      f"{last.get('train_acc', float('nan')):.3f}, val acc {last.get('val_acc', float('nan')):.3f}; "
                      f"memorized at {summary['memorized_step']}, grokked at {summary['grokked_step']}")


class JsonLines(Callback):
    """One JSON object per line on stdout: {"type": "start"|"eval"|"event"|"end", ...}."""

    def _out(self, kind: str, obj: dict) -> None:
        sys.stdout.write(json.dumps({"type": kind, **obj}) + "\n")
        sys.stdout.flush()

    def on_start(self, info: dict) -> None:
        self._out("start", info)

    def on_eval(self, row: dict) -> None:
        self._out("eval", row)

    def on_event(self, event: dict) -> None:
        self._out("event", event)

    def on_end(self, summary: dict) -> None:
        self._out("end", summary)


def _install_signals(control: Control) -> dict:
    """Route SIGINT/SIGTERM to a clean stop and SIGUSR1/2 to pause/resume; returns the old handlers."""
    def stop(signum, frame):  # noqa: ARG001
        control.stop_reason = "stopped"
        control.stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once

    handlers = {signal.SIGINT: stop, signal.SIGTERM: stop}
    if hasattr(signal, "SIGUSR1"):
        handlers[signal.SIGUSR1] = lambda s, f: control.pause.set()
        handlers[signal.SIGUSR2] = lambda s, f: control.pause.clear()
    return {sig: signal.signal(sig, h) for sig, h in handlers.items()}


RESUME_CHANGEABLE = ("steps", "device", "eval_every", "checkpoint_every", "threads")


@app.command()
@with_config_flags
def run(
    preset: Preset = None,
    config: ConfigFile = None,
    runs_dir: RunsDir = Path("runs"),
    name: Annotated[Optional[str], typer.Option("--name", help="run id (default: time-op-p-optimizer)")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="continue RUN from its last checkpoint")] = None,
    json_out: JsonOut = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Train one run headless, writing its run directory.

    Exit codes: 0 finished, 1 failed (NaN loss, full disk, out of memory), 2 bad input, 130 stopped.
    SIGINT/SIGTERM stop cleanly with a final checkpoint; SIGUSR1 pauses, SIGUSR2 resumes.
    """
    overrides = overrides or {}
    with user_errors():
        resume_from = None
        if resume is not None:
            if preset or config or name:
                raise ConfigError("--resume takes the run's own config; --preset, --config and --name do not apply.")
            bad = sorted(set(overrides) - set(RESUME_CHANGEABLE))
            if bad:
                raise ConfigError(f"--resume can only change {', '.join(RESUME_CHANGEABLE)}, not {', '.join(bad)}.")
            info = store.open_run(runs_dir, resume)
            if info.status == "running":
                raise ConfigError(f"run '{resume}' is still running (pid {info.summary.get('pid')}); stop it first.")
            cfg = config_mod.resolve(config_file=info.path / "config.toml", overrides=overrides)
            resume_from = resume_paths(info.path)
            trainer = build_trainer(cfg, resume_from)  # a bad checkpoint is found before anything is written
            if trainer.step > cfg.train.steps:
                raise ConfigError(f"run '{resume}' has run {trainer.step} steps already; --steps "
                                  f"{cfg.train.steps} would end it before it starts.")
            writer = store.RunWriter(info.path, cfg, resume=True)
            writer.write_summary(status="running")
            from grok_tui.train.checkpoint import atomic_write_text
            atomic_write_text(info.path / "config.toml", cfg.to_toml())
        else:
            cfg = config_mod.resolve(preset, config, overrides)
            run_id = store.new_run_id(Path(runs_dir), cfg, name)
            trainer = build_trainer(cfg)
            writer = store.RunWriter(Path(runs_dir) / run_id, cfg)
        control = Control()
        old_handlers = _install_signals(control)
        callbacks: list[Callback] = [JsonLines() if json_out else RichProgress()]
        try:  # a TrainingError (exit 1) is one sentence through user_errors, like every GrokError
            summary = run_training(cfg, writer, callbacks, control, resume_from, trainer)
        finally:
            writer.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
    if summary["status"] == "stopped":
        raise typer.Exit(130)


# --- runs ----------------------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


@runs_app.callback()
def runs_list(ctx: typer.Context, runs_dir: RunsDir = Path("runs"), json_out: JsonOut = False) -> None:
    """List the runs under the runs directory."""
    if ctx.invoked_subcommand is not None:
        return
    rows = [r.row() for r in store.list_runs(runs_dir)]
    if json_out:
        for row in rows:
            print(json.dumps(row))
        return
    if not rows:
        console.print(f"no runs in {runs_dir}")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in rows[0]:
        left = col in ("run", "op", "opt", "status")
        table.add_column(col, justify="left" if left else "right", no_wrap=col != "run",
                         overflow="fold" if col == "run" else "ellipsis")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row.values()))
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="run id")], runs_dir: RunsDir = Path("runs"),
              json_out: JsonOut = False) -> None:
    """Config, status, milestones, checkpoints and the last metrics of one run."""
    with user_errors():
        r = store.open_run(runs_dir, run_id)
    metrics = r.metrics()
    ckpts = r.checkpoints()
    if json_out:
        print(json.dumps({"run": r.id, "status": r.status, "summary": r.summary,
                          "config": r.config.to_dict() if r.config else None,
                          "checkpoints": [s for s, _ in ckpts], "last": metrics[-1] if metrics else None}))
        return
    console.print(f"[bold]{r.id}[/]  {r.status}  ({r.path})")
    if r.config:
        for section, values in r.config.to_dict().items():
            console.print(f"  [bold]{section}[/] " + "  ".join(f"{k}={v}" for k, v in values.items()))
    console.print(f"  memorized at {_fmt(r.summary.get('memorized_step'))}, grokked at "
                  f"{_fmt(r.summary.get('grokked_step'))}, best val acc {_fmt(r.summary.get('best_val_acc'))}")
    if r.summary.get("error"):
        console.print(f"  [red]error:[/] {r.summary['error']}")
    console.print(f"  {len(metrics)} metric rows; checkpoints at steps: "
                  + (", ".join(str(s) for s, _ in ckpts) or "none"))
    if metrics:
        last = metrics[-1]
        console.print("  last: " + "  ".join(f"{k}={_fmt(v)}" for k, v in last.items() if "." not in k))


# --- reference lists -----------------------------------------------------------------------------

@app.command()
def ops() -> None:
    """The operations a dataset can use (by short name or by formula)."""
    from grok_tui.spec.ops import OPS

    table = Table("name", "formula", "needs prime p", box=None, header_style="bold")
    for op in OPS:
        table.add_row(op.name, op.formula, "yes" if op.needs_prime else "")
    console.print(table)


@app.command()
def optimizers() -> None:
    """The optimizers in the registry and the settings each one reads."""
    from grok_tui.spec.optimizers import COMMON_FIELDS, OPTIMIZERS

    table = Table("name", "settings", "what", box=None, header_style="bold")
    for spec in OPTIMIZERS.values():
        table.add_row(spec.name, ", ".join(COMMON_FIELDS[:2] + spec.fields), spec.help)
    console.print(table)


@app.command()
def presets() -> None:
    """The named presets and what each one changes from the defaults."""
    table = Table("preset", "changes from the defaults", box=None, header_style="bold")
    for name, diff in config_mod.PRESETS.items():
        table.add_row(name, " ".join(f"{k}={v}" for k, v in diff.items()) or "(the defaults)")
    console.print(table)


# Further command groups register here (each module adds its commands to `app`).
from grok_tui.cli import bench, connect, plot, sweep  # noqa: E402,F401


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
