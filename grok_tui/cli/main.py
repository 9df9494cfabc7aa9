"""`grok-tui`: the Typer front end. A bare `grok-tui` opens the TUI; subcommands run headless.

This module makes the app and registers the commands of the modules beside it, one per command
group; they never import it. Engine modules (train/, sweep/, connect/, bench/) are imported inside the
commands, so importing the CLI, --help and the commands that only read files never import torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from grok_tui.cli import bench, connect, control, info, plot, progress, run, runs, sweep
from grok_tui.cli.common import PlainUsage, RunsDir, err_console, fail
from grok_tui.train import malloc


class OneLineErrors(TyperGroup):
    """Typer's own parse errors (no such option, a value that is not a number, ...) as one sentence on
    stderr, `error: ...`, with their exit code (2), instead of a boxed usage panel."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Exception as e:
            if type(e).__name__ == "Abort":
                err_console.print("aborted")
                sys.exit(1)
            if not (hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int)):
                raise
            ctx = getattr(e, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None and e.exit_code == 2 else ""
            message = " ".join(str(e.format_message()).split()).rstrip(".")
            fail(f"{message}{where}.")
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=False, rich_markup_mode="rich",
                  pretty_exceptions_enable=False,
                  help="A research instrument for grokking. Without a command, opens the TUI.")
app.add_typer(runs.app, name="runs")


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


app.command("run")(run.run)
app.command("ops")(info.ops)
app.command("optimizers")(info.optimizers)
app.command("presets")(info.presets)
app.command("bench")(bench.bench_cmd)
app.command("connect", cls=PlainUsage)(connect.connect_cmd)
app.command("landscape", cls=PlainUsage)(connect.landscape_cmd)
app.command("plot", cls=PlainUsage)(plot.plot_cmd)
app.command("inspect", cls=PlainUsage)(progress.inspect_cmd)
app.command("sweep")(sweep.sweep_cmd)
app.command("pause", cls=PlainUsage)(control.pause_cmd)
app.command("continue", cls=PlainUsage)(control.continue_cmd)
app.command("stop", cls=PlainUsage)(control.stop_cmd)


def main() -> None:
    # OpenMP threads spin briefly, then sleep, while they wait at the end of a parallel region. libgomp's
    # default spins for long: with the cores shared (another run, a sweep worker), a 2-thread canonical run
    # went 1.8x slower than one thread; sleeping at once (OMP_WAIT_POLICY=PASSIVE) fixed that but cost 1.8x
    # on an idle machine. 1000 spins: 1.17x below the default idle, 1.45-1.5x below one thread when shared
    # (docs/benchmarks.md). Read when torch loads OpenMP, so set before any import of torch; kept when the
    # user set either variable.
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "1000"
    malloc.keep_freed_memory()  # a step's buffers are reused, not faulted in afresh (train/malloc.py)
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
