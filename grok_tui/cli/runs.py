"""`grok-tui runs` and `grok-tui runs show RUN`: the run directories, read through the store (no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.text import Text

from grok_tui.cli.common import JsonOut, PlainUsage, RunsDir, console, user_errors
from grok_tui.display import fmt
from grok_tui.spec.optimizers import OPTIMIZERS
from grok_tui.store import files, query
from grok_tui.store import runs as store

app = typer.Typer(help="List runs, or show one.", invoke_without_command=True)

# Columns given up first when the terminal is narrow: the run id is never cut.
DROP_ORDER = ("p", "lr", "op", "steps", "best_val", "wd", "opt", "ratio", "mem", "grok")

Where = Annotated[Optional[str], typer.Option(
    "--where", "-w", help="only runs matching a query: words that must all hold, FIELD=VALUE, FIELD!=VALUE, "
    "FIELD>=N, FIELD<N, FIELD~REGEX or a yes/no field (grokked, !grokked, memorized); FIELD is a config field "
    "(train_frac, optimizer, weight_decay, seed, ...) or status, steps, mem, grok, gap, best_val, run. "
    "E.g. 'optimizer=lion train_frac>=0.5 status=finished grokked'")]
Sort = Annotated[Optional[str], typer.Option(
    "--sort", "-s", help="order by a column or any field (grok, best_val, train_frac, ...); '-grok' descending; "
    "runs without a value come last")]


def fit_columns(rows: list[dict[str, str]], width: int) -> list[str]:
    """The columns that fit in width with the run id whole, dropping the least useful first."""
    cols = list(rows[0])

    def need(cs: list[str]) -> int:
        return sum(max(len(c), *(len(r[c]) for r in rows)) for c in cs) + 2 * (len(cs) - 1)

    for c in DROP_ORDER:
        if need(cols) <= width:
            break
        if c in cols:
            cols.remove(c)
    return cols


LEFT = ("run", "op", "opt", "status")  # text columns; the numbers are right-aligned


def plain_table(rows: list[dict[str, str]], cols: list[str], left: tuple[str, ...]) -> Text:
    """Rows as aligned columns two spaces apart, the header bold, every cell literal (no markup): one
    Text, so a listing of thousands of runs prints in a blink (a rich Table measured every cell of
    every row again: 7 s for 1,000 runs)."""
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}

    def line(values: dict[str, str]) -> str:
        return "  ".join(values[c].ljust(width[c]) if c in left else values[c].rjust(width[c])
                         for c in cols).rstrip()

    out = Text(line({c: c for c in cols}), style="bold")
    out.append("\n" + "\n".join(line(r) for r in rows), style="")
    return out


def optimizer_reads(optim: dict) -> set[str]:
    """The [optim] settings that matter for a run: its optimizer's own (an AdamW run shows its betas, not
    SGD's momentum or Lion's betas), the common ones, and the gradient filters (Grokfast's decay only where
    the filter is on). Every setting for an optimizer the registry does not know."""
    spec = OPTIMIZERS.get(str(optim.get("optimizer")))
    if spec is None:
        return set(optim)
    someones = {f for o in OPTIMIZERS.values() for f in o.fields}
    keep = {k for k in optim if k not in someones or k in spec.fields}
    if not optim.get("grokfast_lambda"):
        keep.discard("grokfast_alpha")
    return keep


@app.callback()
def runs_list(ctx: typer.Context, runs_dir: RunsDir = Path("runs"), json_out: JsonOut = False,
              where: Where = None, sort: Sort = None) -> None:
    """List the runs under the runs directory (filtered with --where, ordered with --sort)."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        wanted = query.parse(where) if where else None  # a bad query or column is refused before any reading
        if sort:
            query.sort_key(sort)
        infos = store.list_runs(runs_dir)
        if wanted is not None:
            infos = wanted.filter(infos)
        if sort:
            infos = query.sort_runs(infos, sort)
    rows = [r.row() for r in infos]
    if json_out:
        for row in rows:
            print(json.dumps(row))
        return
    if not rows:
        console.print(escape(f"no runs in {runs_dir}" + (f" match '{where}'" if where else "")), soft_wrap=True)
        return
    cells = [{k: fmt(v) for k, v in row.items()} for row in rows]
    console.print(plain_table(cells, fit_columns(cells, console.width), LEFT), soft_wrap=True)


@app.command("show", cls=PlainUsage)
def runs_show(run_id: Annotated[str, typer.Argument(metavar="RUN", help="run id", show_default=False)], runs_dir: RunsDir = Path("runs"),
              json_out: JsonOut = False) -> None:
    """Config, status, milestones, checkpoints and the last metrics of one run."""
    with user_errors():
        r = store.open_run(runs_dir, run_id)
    n_rows, last = files.jsonl_count_and_last(r.path / "metrics.jsonl")  # not every row: a run may have millions
    ckpts = r.checkpoints()
    if json_out:
        steps_run, best_val = r.steps_and_best()  # a killed run's: from its metric rows
        print(json.dumps({"run": r.id, "status": r.status, "summary": r.summary, "steps_run": steps_run,
                          "best_val_acc": best_val,
                          "config": r.config.to_dict() if r.config else None,
                          "checkpoints": [s for s, _ in ckpts], "last": last}))
        return
    console.print(f"[bold]{escape(r.id)}[/]  {r.status}  ({escape(str(r.path))})")
    if r.config:
        for section, values in r.config.to_dict().items():
            if section == "optim":
                values = {k: v for k, v in values.items() if k in optimizer_reads(values)}
            console.print(f"  [bold]{section}[/] " + escape("  ".join(f"{k}={v}" for k, v in values.items())))
    console.print(f"  memorized at {fmt(r.summary.get('memorized_step'))}, grokked at "
                  f"{fmt(r.summary.get('grokked_step'))}, best val acc {fmt(r.steps_and_best()[1])}")
    if r.summary.get("error"):
        console.print(f"  [red]error:[/] {escape(str(r.summary['error']))}")
    console.print(f"  {n_rows} metric rows; checkpoints at steps: "
                  + (", ".join(str(s) for s, _ in ckpts) or "none"))
    if last:
        console.print("  last: " + escape("  ".join(f"{k}={fmt(v)}" for k, v in last.items() if "." not in k)))
