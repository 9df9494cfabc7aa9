"""`grok-tui runs` and `grok-tui runs show RUN`: the run directories, read through the store (no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from grok_tui.cli.common import JsonOut, RunsDir, console, user_errors
from grok_tui.store import runs as store
from grok_tui.store.runs import fmt

app = typer.Typer(help="List runs, or show one.", invoke_without_command=True)


@app.callback()
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
        table.add_row(*(fmt(v) for v in row.values()))
    console.print(table)


@app.command("show")
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
    console.print(f"  memorized at {fmt(r.summary.get('memorized_step'))}, grokked at "
                  f"{fmt(r.summary.get('grokked_step'))}, best val acc {fmt(r.summary.get('best_val_acc'))}")
    if r.summary.get("error"):
        console.print(f"  [red]error:[/] {r.summary['error']}")
    console.print(f"  {len(metrics)} metric rows; checkpoints at steps: "
                  + (", ".join(str(s) for s, _ in ckpts) or "none"))
    if metrics:
        last = metrics[-1]
        console.print("  last: " + "  ".join(f"{k}={fmt(v)}" for k, v in last.items() if "." not in k))
