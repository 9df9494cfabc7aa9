"""`grok-tui bench`: engine vs notebook-style reference loop, in one process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from grok_tui.cli.common import (
    ConfigFile,
    JsonOut,
    Preset,
    console,
    err_console,
    plural,
    user_errors,
    with_config_flags,
)
from grok_tui.errors import ConfigError
from grok_tui.spec.resolve import resolve


@with_config_flags
def bench_cmd(
    preset: Preset = None,
    config: ConfigFile = None,
    bench_steps: Annotated[int, typer.Option("--bench-steps", min=1, help="optimizer steps timed per side")] = 300,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="alternating timed runs per side (median)")] = 3,
    grok: Annotated[bool, typer.Option("--time-to-grok/--no-time-to-grok",
                                       help="also time both sides to the grokked milestone (up to --steps)")] = False,
    sweep: Annotated[int, typer.Option("--sweep", min=0, help="also time a sweep of this many seeds against the "
                                       "same runs one after another (--bench-steps steps each)")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=0, help="worker processes of that sweep "
                                         "(0: as grok-tui sweep chooses)")] = 0,
    processes: Annotated[bool, typer.Option("--processes/--in-process",
                                            help="time that sweep and those runs as grok-tui processes "
                                            "started one after another, as from a shell (start-ups included)")] = False,
    suite: Annotated[bool, typer.Option("--suite/--no-suite",
                                        help="the device's whole suite in one table: precisions (and compiled on "
                                        "CUDA), time to grok, a --suite-members sweep, a 41-point segment")] = False,
    suite_members: Annotated[int, typer.Option("--suite-members", min=1, max=4096,
                                               help="members of the suite's sweep")] = 64,
    suite_sample: Annotated[int, typer.Option("--suite-sample", min=1, help="single runs timed and extrapolated "
                                              "to --suite-members for the one-after-another side")] = 4,
    profile: Annotated[bool, typer.Option("--profile/--no-profile",
                                          help="only where a training step's time goes, by kind of work (matrix "
                                          "products, element-wise, copies, ...), instead of the comparison")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="also write the JSON result here")] = None,
    json_out: JsonOut = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Steps/s of the engine and of the seed-004 notebook loop on the same config and device, and the ratio;
    with --time-to-grok, also wall seconds to the grokked milestone for both."""
    from grok_tui.bench.runner import bench, sweep_bench, time_to_grok

    with user_errors():
        cfg = resolve(preset, config, overrides)
        if out is not None and (out.is_dir() or not out.parent.is_dir()):
            raise ConfigError(f"--out {out} is a directory or its directory does not exist.")
        say = None if json_out else (lambda msg: err_console.print(f"  {msg}"))
        if profile:
            from grok_tui.bench.profile import step_profile

            if say:
                say("timing steps, then each op of 20 steps ...")
                if cfg.train.compile:
                    say("the eager step: a compiled step is one graph, not split into ops here")
            _report(step_profile(cfg), out, json_out, print_profile)
            return
        if suite:
            from grok_tui.bench.suite import suite as run_suite

            _report(run_suite(cfg, steps=bench_steps, repeat=repeat, members=suite_members,
                              sample=min(suite_sample, suite_members), say=say), out, json_out, print_suite)
            return
        result = bench(cfg, steps=bench_steps, repeat=repeat, progress=say)
        if grok:
            result.update(time_to_grok(cfg, progress=say))
        if sweep:
            result.update(sweep_bench(cfg, sweep, bench_steps, repeat, workers, progress=say, processes=processes))
        _report(result, out, json_out, print_bench)


def _report(result: dict, out: Path | None, json_out: bool, show: Callable[[dict], None]) -> None:
    """Write the result to --out (when given), then print it as JSON or as `show` lays it out."""
    if out is not None:
        out.write_text(json.dumps(result, indent=1))
    if json_out:
        print(json.dumps(result))
    else:
        show(result)


def print_bench(result: dict) -> None:
    console.print(f"device {result['device']} ({plural(result['threads'], 'thread')}), {result['steps']} steps x "
                  f"{result['repeat']}, torch {result['torch']}; both loops: {result['optimizer']}, loss "
                  f"{result['loss']}, {result['precision']}")
    console.print(f"  engine     {result['engine_steps_per_s']:10,.1f} steps/s")
    console.print(f"  reference  {result['reference_steps_per_s']:10,.1f} steps/s")
    console.print(f"  ratio      {result['ratio']:10.2f}x")
    if "engine_grok_s" in result:
        for side in ("engine", "reference"):
            secs = result[f"{side}_grok_s"]
            console.print(f"  {side:<10} " + (f"grokked at step {result[f'{side}_grok_step']} in {secs:,.1f} s"
                                               if secs is not None else "did not grok within --steps"))
        if result["grok_ratio"]:
            console.print(f"  time-to-grok ratio {result['grok_ratio']:.2f}x")
    if "sweep_s" in result:
        processes = result["sweep_mode"] == "processes"
        how = "grok-tui run processes" if processes else "runs"
        console.print(f"  {result['members']} {how} one after another {result['one_by_one_s']:8,.1f} s")
        console.print(f"  as one {'grok-tui ' if processes else ''}sweep ({result['workers']} worker(s)) "
                      f"{result['sweep_s']:8,.1f} s")
        console.print(f"  sweep ratio {result['sweep_ratio']:.2f}x")


def print_profile(r: dict) -> None:
    from rich.table import Table

    console.print(f"where an eager step goes: {r['device']} ({plural(r['threads'], 'thread')}), {r['precision']}, "
                  f"{r['method']}, {r['steps']} steps")
    console.print(f"  a step {r['step_ms']:.2f} ms un-instrumented; {r['ops_ms']:.2f} ms inside "
                  f"{r['ops_per_step']:.0f} ops per step when timed op by op")
    t = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("kind of work", "share", "ms/step", "calls/step", "main ops"):
        t.add_column(col, justify="left" if col in ("kind of work", "main ops") else "right")
    for row in r["kinds"]:
        t.add_row(row["kind"], f"{100 * row['share']:.1f} %", f"{row['ms_per_step']:.2f}",
                  f"{row['calls_per_step']:.0f}", ", ".join(row["ops"]))
    console.print(t)


def print_suite(r: dict) -> None:
    from rich.table import Table

    console.print(f"{r['device_name']} ({r['device']}, {plural(r['threads'], 'thread')}), torch {r['torch']}, "
                  f"{r['steps']} steps x {r['repeat']} alternating")
    t = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("what", "engine", "reference", "ratio"):
        t.add_column(col, justify="left" if col == "what" else "right")
    for row in r["bench"]:
        what = f"steps/s {row['precision']}" + (" compiled" if row["compile"] else "")
        t.add_row(what, f"{row['engine_steps_per_s']:,.1f}", f"{row['reference_steps_per_s']:,.1f}",
                  f"{row['ratio']:.2f}x")
    grok = f"{r['grok_s']:,.1f} s (step {r['grok_step']})" if r["grok_s"] is not None else "did not grok"
    t.add_row("time to grok", grok, "-", "-")
    t.add_row(f"sweep of {r['sweep_members']} ({r['sweep_steps']} steps)", f"{r['sweep_s']:,.1f} s",
              f"~{r['one_by_one_s']:,.1f} s*", f"{r['sweep_ratio']:.2f}x")
    t.add_row(f"{r['connect_points']}-point segment", f"{r['connect_s']:,.2f} s", "-", "-")
    console.print(t)
    console.print(f"* the runs one after another: {r['sweep_sample']} timed, extrapolated to {r['sweep_members']}")
    print_profile(r["profile"])
