"""`grok-tui inspect`: the progress measures of one checkpoint (the embedding's Fourier spectrum, its
Gini and IPR, the key frequencies, the restricted and excluded losses: docs/metrics.md, "Progress
measures"), or of every checkpoint of a run, written into its progress.jsonl. torch is imported inside
the command only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from grok_tui.cli.common import JsonOut, RunsDir, console, err_console, user_errors
from grok_tui.errors import ConfigError
from grok_tui.spec.checks import threads_error
from grok_tui.store import control, refs
from grok_tui.store import progress as pstore
from grok_tui.store import runs as store


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def _one(ref: str, runs_dir: Path) -> tuple[Path, store.RunInfo]:
    path = refs.resolve_checkpoint(ref, runs_dir)
    info = refs.run_of_checkpoint(path)
    if info is None or info.config is None:
        raise ConfigError(f"checkpoint {path} does not live in a run directory with a config.toml: its "
                          "operation and split are unknown.")
    return path, info


def _show(row: dict, title: str) -> None:
    t = Table(box=None, show_header=False, title=title, title_justify="left")
    t.add_row("basis", str(row["basis"]))
    for k in ("gini", "ipr", "const_norm", "restricted_loss", "excluded_loss"):
        t.add_row(k, _fmt(row[k]) if row[k] is not None else "- (not defined for this operation)"
                  if k.endswith("loss") else "-")
    t.add_row("key_freqs", ", ".join(map(str, row["key_freqs"])) or "-")
    console.print(t)
    console.print("spectrum (norm per frequency k; * key):")
    for line in pstore.bars(row["spectrum"], key=row["key_freqs"]):
        console.print(line, highlight=False)


def inspect_cmd(
    ref: Annotated[str, typer.Argument(metavar="RUN[@STEP]", help="a checkpoint: RUN@STEP, RUN@memorized, RUN@grokked, "
                                       "RUN@last (RUN alone: the last), or a .safetensors file in a run directory; "
                                       "with --checkpoints, a run")],
    checkpoints: Annotated[bool, typer.Option("--checkpoints", help="measure every checkpoint of the run and write "
                                              "the rows into its progress.jsonl (for a run trained without "
                                              "live measures; not while a process trains it)")] = False,
    json_out: JsonOut = False,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads (0: torch's default)")] = 0,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """The progress measures of a checkpoint: Fourier spectrum of the embedding, Gini, IPR, key
    frequencies, restricted and excluded loss (docs/metrics.md)."""
    with user_errors():
        bad = threads_error(threads)
        if bad:
            raise ConfigError(bad)
        if checkpoints:
            _backfill(ref, runs_dir, json_out, threads)
            return
        path, info = _one(ref, runs_dir)
        import torch

        from grok_tui.train import progress as measures
        if threads:
            torch.set_num_threads(threads)
        row = pstore.progress_row(_step_of(path), measures.measure_checkpoint(path, info.config))
    if json_out:
        print(json.dumps({"run": info.id, "checkpoint": str(path), **row}))
        return
    _show(row, f"{info.id} at step {row['step']} ({path.name})")


def _step_of(path: Path) -> int:
    from grok_tui.store.files import read_sidecar

    s = read_sidecar(path).get("step")
    if isinstance(s, int):
        return s
    stem = path.name.split(".")[0]
    return int(stem.removeprefix("step-")) if stem.removeprefix("step-").isdigit() else 0


def _backfill(ref: str, runs_dir: Path, json_out: bool, threads: int) -> None:
    if "@" in ref or ref.endswith(".safetensors"):
        raise ConfigError(f"--checkpoints measures every checkpoint of a run: give its id, not '{ref}'.")
    info = store.open_run(runs_dir, ref)
    if info.config is None:
        raise ConfigError(f"run '{info.id}' has no readable config.toml.")
    ckpts = info.checkpoints()
    if not ckpts:
        raise ConfigError(f"run '{info.id}' has no checkpoints.")
    lock = control.RunLock(info.path)
    lock.acquire()  # RunLocked: one sentence, while another process writes the run
    try:
        import torch

        from grok_tui.train import progress as measures
        if threads:
            torch.set_num_threads(threads)
        rows = []
        for step, path in ckpts:
            rows.append(pstore.progress_row(step, measures.measure_checkpoint(path, info.config)))
            if json_out:
                print(json.dumps({"run": info.id, **rows[-1]}), flush=True)
            else:
                err_console.print(f"step {step}: gini {_fmt(rows[-1]['gini'])}, restricted "
                                  f"{_fmt(rows[-1]['restricted_loss'])}, excluded {_fmt(rows[-1]['excluded_loss'])}",
                                  highlight=False)
        out = pstore.write_progress(info.path, rows)
    finally:
        lock.release()
    if not json_out:
        t = Table("step", "gini", "ipr", "restricted", "excluded", "key frequencies", box=None, header_style="bold")
        for r in rows:
            t.add_row(str(r["step"]), _fmt(r["gini"]), _fmt(r["ipr"]), _fmt(r["restricted_loss"]),
                      _fmt(r["excluded_loss"]), ", ".join(map(str, r["key_freqs"])))
        console.print(t)
        console.print(escape(f"wrote {len(rows)} rows into {out}"), soft_wrap=True)
