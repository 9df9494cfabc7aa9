"""`grok-tui plot RUN... --metric val_acc --out fig.png`: the TUI's charts as files, for papers and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from grok_tui.cli.common import RunsDir, console, fail, user_errors
from grok_tui.figures.export import (
    ExportError,
    check_figure_path,
    default_log_y,
    metric_keys,
    metric_name,
    milestones_of,
    save_figure,
    series,
    write_csv,
)
from grok_tui.store import runs as store


def plot_cmd(
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN...", help="run ids under the runs directory")],
    metric: Annotated[str, typer.Option("--metric", "-m", help="metric key of metrics.jsonl: val_acc, train_loss, "
                                                             "weight_norm, grad_norm, ...")] = "val_acc",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="figure file: .png, .svg or .pdf")] = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="also (or only) write the data as CSV here")] = None,
    logx: Annotated[bool, typer.Option("--logx/--no-logx", help="log step axis")] = True,
    logy: Annotated[Optional[bool], typer.Option("--logy/--no-logy", show_default=False,
                                                 help="log value axis (default: on for losses, norms and lr)")] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="figure title (default: the metric)")] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Plot one metric of one or more runs against step, memorized/grokked steps marked; and/or write the CSV."""
    if out is None and csv is None:
        raise fail("give --out FIG.png|.svg|.pdf and/or --csv FILE.csv.")
    with user_errors():
        if out is not None:
            check_figure_path(out)  # before anything is written
        all_series = []
        for rid in run_ids:
            r = store.open_run(runs_dir, rid)
            rows = r.metrics()
            s = series(rows, metric, label=rid, milestones=milestones_of(r.events(), r.summary))
            if not s.x:
                known = ", ".join(metric_keys(rows)) or "none yet"
                raise ExportError(f"run '{rid}' has no values of '{metric}' (its metrics: {known}).")
            all_series.append(s)
        written = []
        if csv is not None:
            written.append(write_csv(csv, all_series, metric))
        if out is not None:
            name = metric_name(metric)
            written.append(save_figure(out, all_series, title or name, name, logx,
                                       default_log_y(metric) if logy is None else logy))
    for p in written:
        console.print(f"wrote {p}")
