"""`grok-tui`: the Typer front end. A bare `grok-tui` opens the TUI; subcommands run headless.

This module makes the app and registers the commands of the modules beside it, one per command
group; they never import it. Engine modules (train/, sweep/, connect/, bench/) are imported inside the
commands, so importing the CLI, --help and the commands that only read files never import torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from grok_tui.cli import bench, connect, control, info, plot, run, runs, sweep
from grok_tui.cli.common import RunsDir, err_console, fail

app = typer.Typer(add_completion=False, no_args_is_help=False, rich_markup_mode="rich",
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
app.command("connect")(connect.connect_cmd)
app.command("landscape")(connect.landscape_cmd)
app.command("plot")(plot.plot_cmd)
app.command("sweep")(sweep.sweep_cmd)
app.command("pause")(control.pause_cmd)
app.command("continue")(control.continue_cmd)
app.command("stop")(control.stop_cmd)


def main() -> None:
    # OpenMP threads that sleep while they wait instead of spinning: with the cores shared (another run, a
    # sweep worker, the app), spinning threads made a 2-thread smoke run 4.8x slower than one thread;
    # sleeping ones 0.96x (docs/benchmarks.md). Read by OpenMP when torch loads, so set before any import of
    # torch; a value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
