"""`grok-tui sweep`: a grid of runs trained as ensembles, with a summary table per grid point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from grok_tui.cli.common import (
    ConfigFile,
    JsonLines,
    JsonOut,
    Preset,
    RunsDir,
    console,
    err_console,
    fail,
    field_flags,
    stop_on_signals,
    user_errors,
)
from grok_tui.errors import ConfigError
from grok_tui.report import Reporter
from grok_tui.spec.config import FieldSpec

GridFile = Annotated[Optional[Path], typer.Option("--grid", help="TOML sweep file: base settings and a \\[grid] table")]
Backend = Annotated[str, typer.Option("--backend", help="local (ensembles in this process) or ray (one task per chunk)")]


def _grid_option(spec: FieldSpec) -> Any:
    return Annotated[Optional[list[str]], typer.Option(
        "--" + spec.name.replace("_", "-"), rich_help_panel=f"grid: {spec.section}", show_default=False,
        help=f"{spec.help}; a value, a list a,b,c or a range lo..hi[:step] (repeatable)")]


# One repeatable text flag per config field (`--seed 0..7`, `--train-frac 0.3,0.4`), collected in `grid`.
with_grid_flags = field_flags("grid", _grid_option, bool)


class SweepProgress(Reporter):
    """One bar per group (ensemble or fallback), with counts of memorized and grokked members."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("memorized [cyan]{task.fields[mem]}[/] grokked [magenta]{task.fields[grok]}[/]"
                                            " of {task.fields[n]}"),
                                 TimeElapsedColumn(), console=console, refresh_per_second=4)
        self.tasks: dict[int, Any] = {}
        self.group_of: dict[str, int] = {}
        self.counts: dict[int, dict[str, int]] = {}
        self.shape: dict[int, tuple[int, bool]] = {}

    def on_start(self, plan: dict) -> None:
        groups = plan["groups"]
        workers = plan.get("workers", 1)
        console.print(f"sweep [bold]{escape(plan['sweep_id'])}[/]: {plan['members']} runs in {len(groups)} group(s) "
                      f"({sum(g['vectorised'] for g in groups)} vectorised)"
                      + (f", {workers} worker processes side by side" if workers > 1 else ""))
        self.progress.start()
        for i, g in enumerate(groups):
            kind = f"ensemble of {len(g['members'])}" if g["vectorised"] else f"{len(g['members'])} one by one"
            total = g["steps"] * (1 if g["vectorised"] else len(g["members"]))
            self.tasks[i] = self.progress.add_task(f"group {i} ({kind})", total=total, mem=0, grok=0,
                                                   n=len(g["members"]), start=False)
            self.counts[i] = {"memorized": 0, "grokked": 0, "done": 0}
            self.shape[i] = (g["steps"], g["vectorised"])
            for run_id in g["members"]:
                self.group_of[run_id] = i

    def on_group_start(self, index: int, group: dict) -> None:
        self.progress.start_task(self.tasks[index])

    def on_progress(self, index: int, step: int) -> None:
        steps, vectorised = self.shape[index]
        done = 0 if vectorised else self.counts[index]["done"] * steps  # one by one: earlier members count
        self.progress.update(self.tasks[index], completed=done + step)

    def on_event(self, run_id: str, event: dict) -> None:
        if event["event"] in ("memorized", "grokked"):
            i = self.group_of[run_id]
            self.counts[i][event["event"]] += 1
            self.progress.update(self.tasks[i], mem=self.counts[i]["memorized"], grok=self.counts[i]["grokked"])
        elif event["event"] == "failed":
            self.progress.console.print(f"[red]{escape(run_id)} failed:[/] {escape(str(event.get('error')))}")
        elif event["event"] == "skipped":
            self.progress.console.print(f"[yellow]{escape(run_id)} skipped:[/] {escape(str(event.get('error')))}")

    def on_member_end(self, run_id: str, summary: dict) -> None:
        self.counts[self.group_of[run_id]]["done"] += 1

    def on_end(self, summary: dict) -> None:
        self.progress.stop()
        print_summary(summary)


def print_summary(summary: dict) -> None:
    from grok_tui.sweep.summary import table_rows

    rows = table_rows(summary)
    if rows:
        table = Table(box=None, header_style="bold", title=f"sweep {escape(summary['sweep_id'])}: steps to memorize / grok "
                                                            "(mean ± std over seeds, (n reached))")
        for col in rows[0]:
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(*(Text(str(v)) for v in r.values()))
        console.print(table)
    statuses = [m["status"] for m in summary["members"]]
    console.print(f"{statuses.count('finished')}/{len(statuses)} runs finished in {summary['wall_s']:.1f} s "
                  f"({summary['backend']}); summary: {escape(str(summary['path']))} (+ .csv)")


class SweepJson(JsonLines):
    """One JSON object per line: start, group, eval, event, member_end, end (a member's lines carry its run_id)."""

    def on_start(self, plan: dict) -> None:
        self.write("start", plan)

    def on_group_start(self, group: int, info: dict) -> None:
        self.write("group", {"group": group, **info})

    def on_eval(self, run_id: str, row: dict) -> None:
        self.write("eval", {"run_id": run_id, **row})

    def on_event(self, run_id: str, event: dict) -> None:
        self.write("event", {"run_id": run_id, **event})

    def on_member_end(self, run_id: str, summary: dict) -> None:
        self.write("member_end", {"run_id": run_id, **summary})

    def on_end(self, summary: dict) -> None:
        self.write("end", summary)


@with_grid_flags
def sweep_cmd(
    preset: Preset = None,
    config: ConfigFile = None,
    grid_file: GridFile = None,
    runs_dir: RunsDir = Path("runs"),
    name: Annotated[Optional[str], typer.Option("--name", help="sweep id; runs are <id>-000, <id>-001, ...")] = None,
    backend: Backend = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster address (default: start a local one)")] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=0, help="most members per ensemble / Ray task (0: whole groups)")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=0, help="local worker processes training chunks side by side "
                                          "(0: one per CPU core on the CPU, 1 on a GPU)")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the members and groups, train nothing")] = False,
    json_out: JsonOut = False,
    grid: dict[str, list[str]] | None = None,
) -> None:
    """Train a grid of runs: members that share an architecture train as one vectorised ensemble.

    Example: grok-tui sweep --preset smoke --seed 0..7 --train-frac 0.3,0.4,0.5 --weight-decay 0.1,1

    Each member writes an ordinary run directory; the summary table (steps to memorize / grok per grid point, mean ± std over seeds) is printed and saved as <runs-dir>/sweeps/<id>.json and .csv.

    Exit codes: 0 all finished, 1 some run failed, 2 bad input, 130 stopped.
    """
    from grok_tui.sweep.plan import build_plan
    from grok_tui.sweep.run import run_sweep
    from grok_tui.train.trainer import Control

    with user_errors():
        if backend not in ("local", "ray"):
            raise ConfigError(f"--backend must be local or ray, got '{backend}'.")
        if backend == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                raise ConfigError("--backend ray needs Ray: pip install 'grok-tui[ray]'.") from None
        p = build_plan(runs_dir, preset_name=preset, config_file=config, grid_file=grid_file, flags=grid,
                       name=name, chunk=chunk_size, workers=workers if backend == "local" else 1)
        if dry_run:
            desc = p.describe()
            desc["member_values"] = {m.run_id: m.values for m in p.members}
            if json_out:
                print(json.dumps(desc))
            else:
                console.print(f"sweep {escape(p.sweep_id)}: {len(p.members)} runs, {len(p.groups)} group(s), "
                              f"{p.workers} worker process(es)")
                for i, g in enumerate(desc["groups"]):
                    console.print(f"  group {i}: {len(g['members'])} members, "
                                  f"{'vectorised' if g['vectorised'] else 'one by one'}, {g['steps']} steps")
                for m in p.members:
                    console.print(escape(f"  {m.run_id}  " + " ".join(f"{k}={v}" for k, v in m.values.items())))
            return
        control = Control()
        with stop_on_signals(control):
            summary = run_sweep(p, runs_dir, backend, [SweepJson() if json_out else SweepProgress()], control,
                                ray_address=ray_address, note=lambda text: err_console.print(f"note: {escape(text)}"))
    statuses = [m["status"] for m in summary["members"]]
    if "failed" in statuses:
        raise fail(f"{statuses.count('failed')} of {len(statuses)} runs failed (see their summary.json).", 1)
    if "skipped" in statuses:
        raise fail(f"{statuses.count('skipped')} of {len(statuses)} runs were skipped: their run directories "
                   "were made by someone else.", 1)
    if "stopped" in statuses or "missing" in statuses:
        raise typer.Exit(130)
