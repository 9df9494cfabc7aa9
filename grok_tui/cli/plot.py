"""`grok-tui plot`: the TUI's charts as files, for papers and reports.

Runs (named, or chosen with --where) against step: one or several metrics in one panel, smoothed,
grouped by a config field into mean lines with bands; a run's multi-panel summary; the phase diagram
of a sweep; connectivity results against t. PNG, SVG or PDF, and the data as CSV. Figures go to the
run's (or sweep's, or result's) directory unless --out names a file. Renders only: the series math
is in figures/, the run query in store/query.py.
"""

from __future__ import annotations

import csv as csv_mod
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from grok_tui.cli.common import RunsDir, console, err_console, user_errors
from grok_tui.errors import ConfigError
from grok_tui.figures import compare, panels, phase
from grok_tui.figures.export import ExportError, check_figure_path
from grok_tui.figures.series import PALETTE, metric_keys, metric_name, milestones_of, series
from grok_tui.store import progress as pstore
from grok_tui.store import query
from grok_tui.store import runs as store
from grok_tui.store.sweeps import SWEEPS_DIR, load_summary


def _metrics(values: list[str]) -> list[str]:
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


def _target(out: Optional[Path], default: Path) -> Path:
    path = out if out is not None else default
    check_figure_path(path)
    return path


def _select(runs_dir: Path, run_ids: list[str], where: Optional[str]) -> list[store.RunInfo]:
    infos = [store.open_run(runs_dir, rid) for rid in run_ids]
    if where is not None:
        q = query.parse(where)
        pool = infos or store.list_runs(runs_dir)
        infos = q.filter(pool)
        if not infos:
            raise ConfigError(f"no run in {runs_dir} matches '{where}'.")
    if not infos:
        raise ConfigError("name runs (RUN...), or choose them with --where, --phase SWEEP or --connect RESULT.")
    return infos


def _result_path(runs_dir: Path, spec: str) -> Path:
    """A connectivity result: a .json path, or RUN/NAME (runs/RUN/connect/NAME.json)."""
    p = Path(spec)
    if p.suffix == ".json" and p.is_file():
        return p
    run, _, name = spec.partition("/")
    cand = runs_dir / run / "connect" / f"{name.removesuffix('.json')}.json"
    if name and cand.is_file():
        return cand
    have = sorted(q.stem for q in (runs_dir / run / "connect").glob("*.json")) if run else []
    hint = f" (results of {run}: {', '.join(have)})" if have else ""
    raise ConfigError(f"no connectivity result '{spec}': give a .json file or RUN/NAME{hint}.")


def _write(path: Path, csv_path: Optional[Path], figure, rows_csv, out: Optional[Path] = None) -> list[Path]:
    """The CSV when asked for, and the figure unless only a CSV was asked for (--csv without --out:
    that works without matplotlib)."""
    written = []
    if csv_path is not None:
        written.append(rows_csv(csv_path))
    if out is not None or csv_path is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(figure(path))
    return written


def plot_cmd(
    run_ids: Annotated[Optional[list[str]], typer.Argument(metavar="RUN...", help="run ids under the runs directory",
                                                           show_default=False)] = None,
    metric: Annotated[list[str], typer.Option("--metric", "-m", help="metric key(s) of metrics.jsonl, repeated or "
                                              "comma-separated to share a panel: train_acc,val_acc")] = ["val_acc"],  # noqa: B006
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="figure file: .png, .svg or .pdf (default: in the "
                                                "run's figures/ directory, the sweep's or the result's)")] = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="also write the data as CSV here")] = None,
    where: Annotated[Optional[str], typer.Option("--where", "-w", help="choose runs by a query, e.g. "
                                                 "'optimizer=adamw train_frac>=0.5 grokked' (see grok-tui runs --help)")] = None,
    smooth: Annotated[Optional[str], typer.Option("--smooth", "-s", help="EMA smoothing (TensorBoard's, debiased): a "
                                                  "weight in [0, 1) such as 0.9, or a window >= 1 such as 10")] = None,
    group_by: Annotated[Optional[str], typer.Option("--group-by", "-g", help="group runs by a config field: one "
                                                    "colour per value, the mean and a band")] = None,
    band: Annotated[str, typer.Option("--band", help="band of a group: minmax or std (mean +- std)")] = "minmax",
    summary: Annotated[bool, typer.Option("--summary", help="one run's summary: accuracy, loss, norms, effective lr, "
                                          "milestones marked")] = False,
    phase_sweep: Annotated[Optional[str], typer.Option("--phase", help="phase diagram of this sweep (its id or "
                                                       "summary .json)", show_default=False)] = None,
    x: Annotated[Optional[str], typer.Option("--x", help="phase diagram: the field across")] = None,
    y: Annotated[Optional[str], typer.Option("--y", help="phase diagram: the field up")] = None,
    value: Annotated[str, typer.Option("--value", help="phase diagram cells: grokked (steps to grok), best_val, "
                                       "or gap (memorized to grokked)")] = "grokked",
    spectrum: Annotated[bool, typer.Option("--spectrum", help="one run's embedding spectrum: frequency x step heatmap "
                                           "from its progress.jsonl, key frequencies named")] = False,
    connect: Annotated[Optional[list[str]], typer.Option("--connect", "-c", help="connectivity result (a .json file "
                                                         "or RUN/NAME), repeated to overlay", show_default=False)] = None,
    logx: Annotated[Optional[bool], typer.Option("--logx/--no-logx", show_default=False,
                                                 help="log step axis (default on; off for t)")] = None,
    logy: Annotated[Optional[bool], typer.Option("--logy/--no-logy", show_default=False,
                                                 help="log value axis (default: on for losses, norms and lr)")] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="figure title")] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Plot runs' metrics against step (several in one panel, smoothed, grouped), a run's summary, a sweep's
    phase diagram or connectivity results; and/or write the CSV."""
    with user_errors():
        try:
            weight = compare.parse_smooth(smooth) if smooth is not None else 0.0
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if band not in compare.BANDS:
            raise ConfigError(f"--band must be minmax or std, got '{band}'.")
        if out is not None:
            check_figure_path(out)  # before anything is written
        if phase_sweep is not None:
            written = _phase(runs_dir, phase_sweep, x, y, value, out, csv, title)
        elif connect:
            written = _connect(runs_dir, connect, out, csv, title, bool(logx))
        elif spectrum:
            written = _spectrum(runs_dir, run_ids or [], where, out, title, logx is not False)
        elif summary:
            written = _summary(runs_dir, run_ids or [], where, out, csv, title, weight, logx is not False)
        else:
            written = _runs(runs_dir, run_ids or [], where, _metrics(metric) or ["val_acc"], out, csv, title,
                            weight, group_by, band, logx is not False, logy)
    for p in written:
        console.print(escape(f"wrote {p}"), soft_wrap=True)


def _runs(runs_dir: Path, run_ids: list[str], where: Optional[str], metrics: list[str], out: Optional[Path],
          csv_path: Optional[Path], title: Optional[str], weight: float, group_by: Optional[str], band: str,
          logx: bool, logy: Optional[bool]) -> list[Path]:
    infos = _select(runs_dir, run_ids, where)
    data, kept = [], []
    for r in infos:
        rows = r.metrics()
        if set(metrics) & set(pstore.SCALARS):  # a run measured after it trained has them in progress.jsonl
            rows = pstore.with_progress(rows, pstore.read_progress(r.path))
        missing = [m for m in metrics if not series(rows, m).x]
        if missing and where is not None and not run_ids:  # chosen by a query: leave it out, and say so
            err_console.print(escape(f"left out {r.id}: no values of {', '.join(missing)}"), soft_wrap=True)
            continue
        if missing:
            known = ", ".join(metric_keys(rows)) or "none yet"
            raise ExportError(f"run '{r.id}' has no values of '{missing[0]}' (its metrics: {known}).")
        data.append((r.id, rows, milestones_of(r.events(), r.summary)))
        kept.append(r)
    if not data:
        raise ExportError(f"no run matching '{where}' has values of {', '.join(metrics)}.")
    infos = kept
    name = " / ".join(metric_name(m) for m in metrics)
    config_fields = [f for f in query.known_fields() if f not in query.SUMMARY_FIELDS]
    settings = compare.differing_settings({r.id: query.run_fields(r) for r in infos}, config_fields)
    field = None
    if group_by is not None:
        field = query.canonical(group_by)
        if field not in query.known_fields():
            raise ConfigError(f"cannot group by '{group_by}' (fields: every config field, e.g. train_frac, "
                              "optimizer, weight_decay, seed; or status).")
    p = panels.metrics_panel(data, metrics, title or _title(name, settings, [r.id for r in infos], field), logx, logy)
    stem = "+".join(metrics)
    if field is not None:
        by_label = {s.label: s for s in p.series}
        values = {r.id: query.run_fields(r)[field] for r in infos}
        p.series, p.bands = [], []
        for k, m in enumerate(metrics):
            items = [(by_label[lab], values[rid]) for rid, *_ in data
                     if (lab := rid if len(metrics) == 1 else (f"{rid}: {metric_name(m)}" if len(data) > 1
                                                                else metric_name(m))) in by_label]
            for b in compare.group(items, field, band, PALETTE):
                if len(metrics) > 1:
                    b.label = f"{b.label}: {metric_name(m)}"
                b = compare.smooth_band(b, weight)
                b.metric = m
                b.style = panels.STYLES[k % len(panels.STYLES)]  # a group keeps its colour, each metric its style
                p.bands.append(b)
        stem += f"-by-{field}"
    elif weight:
        p.series = [compare.smooth(s, weight) for s in p.series]
    path = _target(out, infos[0].path / "figures" / f"{stem}.png")
    return _write(path, csv_path, lambda f: panels.save_panels(f, [p]),
                  lambda f: panels.write_panels_csv(f, [p], settings=settings), out)


def _title(name: str, settings: dict, run_ids: list[str], group_field: Optional[str]) -> str:
    """The metric(s), and what differs between the runs (compare.figure_title)."""
    return compare.figure_title(name, settings, run_ids, group_field)


def _spectrum(runs_dir: Path, run_ids: list[str], where: Optional[str], out: Optional[Path], title: Optional[str],
              logx: bool) -> list[Path]:
    from grok_tui.figures.spectrum import save_spectrum

    infos = _select(runs_dir, run_ids, where)
    if len(infos) != 1:
        raise ConfigError(f"--spectrum draws one run, got {len(infos)}.")
    r = infos[0]
    rows = pstore.read_progress(r.path)
    if not rows:
        raise ExportError(f"run '{r.id}' has no progress rows (train it with measure_every > 0, or run "
                          f"grok-tui inspect {r.id} --checkpoints).")
    path = _target(out, r.path / "figures" / "spectrum.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    return [save_spectrum(path, rows, title or f"{r.id}: embedding spectrum", logx, milestones_of(r.events(), r.summary))]


def _summary(runs_dir: Path, run_ids: list[str], where: Optional[str], out: Optional[Path], csv_path: Optional[Path],
             title: Optional[str], weight: float, logx: bool) -> list[Path]:
    infos = _select(runs_dir, run_ids, where)
    if len(infos) != 1:
        raise ConfigError(f"--summary draws one run, got {len(infos)}.")
    r = infos[0]
    rows = r.metrics()
    if not rows:
        raise ExportError(f"run '{r.id}' has no metric rows yet.")
    ps = panels.summary_panels(r.id, rows, milestones_of(r.events(), r.summary), logx)
    if weight:
        for p in ps:
            p.series = [compare.smooth(s, weight) for s in p.series]
    path = _target(out, r.path / "figures" / "summary.png")
    return _write(path, csv_path, lambda f: panels.save_panels(f, ps, title or r.id),
                  lambda f: panels.write_panels_csv(f, ps), out)


def _phase(runs_dir: Path, sweep: str, x: Optional[str], y: Optional[str], value: str, out: Optional[Path],
           csv_path: Optional[Path], title: Optional[str]) -> list[Path]:
    path = Path(sweep) if sweep.endswith(".json") else runs_dir / SWEEPS_DIR / f"{sweep}.json"
    if not path.is_file():
        raise ConfigError(f"no sweep '{sweep}' ({path} does not exist).")
    s = load_summary(path)
    fields = [k for k in s.get("grid", {})]
    if x is None or y is None:
        if len(fields) < 2:
            raise ConfigError(f"sweep {s['sweep_id']} varies {', '.join(fields) or 'nothing'}: "
                              "a phase diagram needs two fields.")
        x, y = x or fields[0], y or next(f for f in fields if f != (x or fields[0]))
    try:
        grid = phase.phase_grid(s, x, y, value)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    target = _target(out, path.parent / f"{s['sweep_id']}-phase-{grid.x}-{grid.y}-{value}.png")

    def rows_csv(f: Path) -> Path:
        try:
            with open(f, "w", newline="", encoding="utf-8") as fh:
                csv_mod.writer(fh).writerows(phase.csv_rows(grid))
        except OSError as e:
            raise ExportError(f"cannot write {f}: {e.strerror or e}.") from None
        return f

    return _write(target, csv_path, lambda f: phase.save_phase(f, grid, title), rows_csv, out)


def _connect(runs_dir: Path, specs: list[str], out: Optional[Path], csv_path: Optional[Path], title: Optional[str],
             logx: bool) -> list[Path]:
    from grok_tui.store.files import read_json

    paths = [_result_path(runs_dir, s) for s in specs]
    results = []
    for p in paths:
        r = read_json(p)
        if "kind" not in r or "data" not in r:
            raise ConfigError(f"{p} is not a saved connectivity or landscape result.")
        results.append(r)
    ps = panels.connect_panels(results)
    for p in ps:
        p.logx = logx
    fallback = paths[0].stem + (f"+{len(paths) - 1}" if len(paths) > 1 else "")
    stem, default_title = panels.connect_names(results, fallback)
    target = _target(out, paths[0].parent / f"{stem}.png")
    return _write(target, csv_path, lambda f: panels.save_panels(f, ps, title or default_title),
                  lambda f: panels.write_panels_csv(f, ps, label="result"), out)

