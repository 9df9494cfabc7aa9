"""export.py (series, downsampling, log ticks, CSV, matplotlib figures) and `grok-tui plot`."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grok_tui.cli.main import app
from grok_tui.figures import export, panels, series

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"


def test_series_skips_missing_and_non_finite_values():
    rows = [{"step": 10, "val_acc": 0.1}, {"step": 20}, {"step": 30, "val_acc": float("nan")},
            {"step": 40, "val_acc": 0.9}]
    s = series.series(rows, "val_acc", milestones={"grokked": 40})
    assert s.x == [10.0, 40.0] and s.y == [0.1, 0.9] and s.milestones == {"grokked": 40}


def test_downsample_keeps_ends_and_bounds_the_count():
    x = list(range(1, 10_001))
    y = [v * 2 for v in x]
    for logx in (False, True):
        dx, dy = series.downsample(x, y, 100, logx)
        assert dx[0] == 1 and dx[-1] == 10_000 and len(dx) <= 102
        assert all(b == 2 * a for a, b in zip(dx, dy, strict=True))
        assert dx == sorted(dx)
    assert series.downsample([1, 2], [3, 4], 100) == ([1, 2], [3, 4])


def test_log_ticks_are_readable_and_inside_the_range():
    pos, labels = series.log_ticks(10, 100_000)
    assert labels == ["10", "100", "1k", "10k", "100k"]
    pos, labels = series.log_ticks(20, 3500)
    assert labels[0] == "20" and "100" in labels and all(1.3 - 1e-9 <= p <= 3.545 for p in pos)
    pos, labels = series.log_ticks(1e-3, 2.0)
    assert labels[:3] == ["1e-3", "1e-2", "1e-1"]


def test_milestones_from_events_and_summary():
    evs = [{"event": "memorized", "step": 240}, {"event": "checkpoint", "step": 240},
           {"event": "memorized", "step": 300}]
    assert series.milestones_of(evs, {"grokked_step": 2700}) == {"memorized": 240, "grokked": 2700}


def test_csv_and_figures(tmp_path):
    a = series.Series("a", [10, 20, 30], [0.1, 0.5, 1.0], {"memorized": 20})
    b = series.Series("b", [10, 20], [0.2, 0.3], {})
    out = export.write_csv(tmp_path / "d.csv", [a, b], "val_acc")
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["run", "step", "metric", "value"] and len(rows) == 6 and rows[1] == ["a", "10", "val_acc", "0.1"]
    png = panels.save_figure(tmp_path / "f.png", [a, b], "validation accuracy", "val acc", logx=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = panels.save_figure(tmp_path / "f.svg", [a, b], "t", "y", logy=True)
    text = svg.read_text()
    assert "<svg" in text and "memorized @ 20" in text  # the milestone is in the legend
    with pytest.raises(export.ExportError, match="must be .png, .svg or .pdf"):
        panels.save_figure(tmp_path / "f.jpg", [a], "t", "y")


def test_missing_matplotlib_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(export.ExportError, match=r"needs matplotlib, a dependency of grok-tui .*: pip install "
                       r"matplotlib \(the CSV export works without it\)\.$"):
        panels.save_figure(tmp_path / "f.png", [series.Series("a", [1], [1])], "t", "y")
    assert not (tmp_path / "f.png").exists()


def test_matplotlib_is_a_dependency_and_no_text_asks_for_an_extra():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("matplotlib") for d in project["dependencies"])
    assert not project["optional-dependencies"].get("plot")  # an empty alias at most
    texts = [*root.joinpath("grok_tui").rglob("*.py"), root / "README.md", *root.joinpath("docs").glob("*.md")]
    assert not [str(p) for p in texts if "grok-tui[plot]" in p.read_text()]


def test_cli_plot(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    ids = ["smoke-lr2e-3", "smoke-wd0.3"]
    r = CliRunner().invoke(app, ["plot", *ids, "--metric", "val_loss", "--out", str(tmp_path / "fig.svg"),
                                 "--csv", str(tmp_path / "fig.csv"), "--runs-dir", str(runs)])
    assert r.exit_code == 0, r.output
    assert "<svg" in (tmp_path / "fig.svg").read_text()
    lines = (tmp_path / "fig.csv").read_text().splitlines()
    assert {ln.split(",")[0] for ln in lines[1:]} == set(ids)
    r = CliRunner().invoke(app, ["plot", ids[0], "--metric", "nope", "--out", str(tmp_path / "x.png"),
                                 "--runs-dir", str(runs)])
    assert r.exit_code == 2 and "has no values of 'nope'" in r.output
    r = CliRunner().invoke(app, ["plot", "missing", "--out", str(tmp_path / "x.png"), "--runs-dir", str(runs)])
    assert r.exit_code == 2 and "no run 'missing'" in r.output
    # without --out the figure goes to the run's figures/ directory, and the output says where
    r = CliRunner().invoke(app, ["plot", ids[0], "--runs-dir", str(runs)])
    assert r.exit_code == 0 and (runs / ids[0] / "figures" / "val_acc.png").stat().st_size > 1000
    assert str(runs / ids[0] / "figures" / "val_acc.png") in r.output.replace("\n", "")


def _runs_copy(tmp_path) -> Path:
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    return runs


def _plot(*args: str) -> object:
    return CliRunner().invoke(app, ["plot", *args])


def test_cli_plot_two_metrics_in_one_panel_smoothed(tmp_path):
    runs = _runs_copy(tmp_path)
    r = _plot("smoke-lr2e-3", "-m", "train_acc,val_acc", "--smooth", "0.9", "-o", str(tmp_path / "acc.svg"),
              "--csv", str(tmp_path / "acc.csv"), "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    svg = (tmp_path / "acc.svg").read_text()
    assert "train accuracy" in svg and "validation accuracy" in svg and "grokked @ 2460" in svg
    rows = list(csv.DictReader(open(tmp_path / "acc.csv")))
    assert {row["metric"] for row in rows} == {"train_acc", "val_acc"}
    first = rows[0]
    assert float(first["value"]) == pytest.approx(float(first["raw"]))  # debiased EMA starts at the raw value
    assert any(row["value"] != row["raw"] for row in rows)
    r = _plot("smoke-lr2e-3", "--smooth", "1.5x", "--runs-dir", str(runs))
    assert r.exit_code == 2 and "smoothing must be a weight in [0, 1) or a window >= 1" in r.output


def test_cli_plot_group_by_a_config_field_with_bands(tmp_path):
    runs = _runs_copy(tmp_path)
    r = _plot("--where", "run~^smoke|diverged", "--group-by", "weight_decay", "--band", "std",
              "-o", str(tmp_path / "g.png"), "--csv", str(tmp_path / "g.csv"), "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    labels = {row["run"] for row in csv.DictReader(open(tmp_path / "g.csv"))}
    assert labels == {"weight_decay=0.3 (1 run)", "weight_decay=1 (1 run)"}  # the diverged run has no rows
    assert "left out diverged-lr1e4: no values of val_acc" in r.output
    r = _plot("--where", "run~^smoke", "--group-by", "optimizer", "--smooth", "0.9", "--csv",
              str(tmp_path / "s.csv"), "-o", str(tmp_path / "s.png"), "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert rows and all(float(row["lo"]) <= float(row["value"]) <= float(row["hi"]) for row in rows)
    assert all(row["raw"] for row in rows) and any(row["raw"] != row["value"] for row in rows)
    r = _plot("--where", "grokked", "--group-by", "colour", "--runs-dir", str(runs))
    assert r.exit_code == 2 and "cannot group by 'colour'" in r.output
    r = _plot("--where", "optimizer=lion", "--runs-dir", str(runs))
    assert r.exit_code == 2 and "no run in" in r.output and "matches 'optimizer=lion'" in r.output


def test_cli_plot_summary_and_phase(tmp_path):
    runs = _runs_copy(tmp_path)
    r = _plot("smoke-lr2e-3", "--summary", "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    assert (runs / "smoke-lr2e-3" / "figures" / "summary.png").stat().st_size > 10_000
    sweep = next((runs / "sweeps").glob("*.json")).stem
    r = _plot("--phase", sweep, "--x", "train_frac", "--y", "weight-decay", "--value", "gap", "-o",
              str(tmp_path / "phase.svg"), "--csv", str(tmp_path / "phase.csv"), "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    svg = (tmp_path / "phase.svg").read_text()
    assert "no grok" in svg and "train_frac" in svg
    rows = list(csv.reader(open(tmp_path / "phase.csv")))
    assert rows[0][:4] == ["train_frac", "weight_decay", "runs", "grokked_runs"] and len(rows) == 16
    r = _plot("--phase", sweep, "--x", "lr", "--y", "weight_decay", "--runs-dir", str(runs))
    assert r.exit_code == 2 and "does not vary 'lr'" in r.output
    r = _plot("--phase", "nope", "--runs-dir", str(runs))
    assert r.exit_code == 2 and "no sweep 'nope'" in r.output


def connect_result(name: str, barrier: float) -> dict:
    t = [i / 10 for i in range(11)]
    bump = [barrier * 4 * x * (1 - x) for x in t]
    data = {"t": t, "train_loss": [0.01 + b for b in bump], "val_loss": [3.0 - 2.9 * x + b for x, b in zip(t, bump, strict=True)],
            "train_loss_l2": [50.0 + b for b in bump], "val_loss_l2": [53.0 + b for b in bump],
            "train_err": [min(1.0, b) for b in bump], "val_err": [1 - x for x in t], "grad_norm": [0.1 + b for b in bump]}
    summary = {k: {"start": v[0], "end": v[-1], "min": min(v), "max": max(v), "mean": sum(v) / len(v), "t_max": 0.5}
               for k, v in data.items() if k != "t"}
    return {"kind": "curve", "name": name, "created": "2026-01-01T00:00:00", "data": data, "summary": summary,
            "knots": [0.0, 1.0]}


def test_cli_plot_connectivity_results_overlaid(tmp_path):
    import json

    runs = _runs_copy(tmp_path)
    d = runs / "smoke-lr2e-3" / "connect"
    d.mkdir()
    for name, barrier in (("segment-240-2460", 2.0), ("polyline1-240-2460", 0.1)):
        (d / f"{name}.json").write_text(json.dumps(connect_result(name, barrier)))
    both = ["--connect", "smoke-lr2e-3/segment-240-2460", "-c", str(d / "polyline1-240-2460.json")]
    r = _plot(*both, "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    assert (d / "segment-240-2460+1.png").stat().st_size > 10_000  # beside the first result
    (d / "segment-240-2460+1.png").unlink()
    r = _plot(*both, "--csv", str(tmp_path / "c.csv"), "--runs-dir", str(runs))  # only the CSV asked for
    assert r.exit_code == 0 and not (d / "segment-240-2460+1.png").exists()
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert {row["metric"] for row in rows} == {"train_loss", "val_loss", "train_loss_l2", "val_loss_l2",
                                               "train_err", "val_err", "grad_norm"}
    assert {row["result"].split(" ")[0] for row in rows} == {"segment-240-2460", "polyline1-240-2460"}
    r = _plot("--connect", "smoke-lr2e-3/nope", "--runs-dir", str(runs))
    assert r.exit_code == 2 and "results of smoke-lr2e-3: polyline1-240-2460, segment-240-2460" in r.output


def test_cli_runs_where_and_sort(tmp_path):
    runs = _runs_copy(tmp_path)
    r = CliRunner().invoke(app, ["runs", "--where", "memorized", "--sort", "-mem", "--runs-dir", str(runs)])
    assert r.exit_code == 0, r.output
    out = r.output.splitlines()
    assert out[1].startswith("smoke-lr2e-3") and out[2].startswith("smoke-wd0.3") and len(out) == 3
    r = CliRunner().invoke(app, ["runs", "--where", "train_frac>=abc", "--runs-dir", str(runs)])
    assert r.exit_code == 2 and "'train_frac>=abc' compares with 'abc', which is not a number." in r.output
    r = CliRunner().invoke(app, ["runs", "--sort", "colour", "--runs-dir", str(runs)])
    assert r.exit_code == 2 and "cannot sort by 'colour'" in r.output


def test_cli_runs_keeps_long_ids_whole_at_80_columns(tmp_path):
    runs = _runs_copy(tmp_path)
    long_id = "20261125-015339-add-p31-adamw-grokfast-2"
    shutil.copytree(runs / "smoke-lr2e-3", runs / long_id)
    r = CliRunner().invoke(app, ["runs", "--runs-dir", str(runs)], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert any(line.startswith(long_id) for line in r.output.splitlines())
    assert all(len(line) <= 80 for line in r.output.splitlines())


# --- runs by id, and what differs between them ----------------------------------------------------

def test_csvs_name_runs_by_id_not_by_the_legends_label(tmp_path):
    a = series.Series("lr2e-3", [10, 20], [0.1, 0.5], run="smoke-lr2e-3")  # a legend's shortened label
    b = series.Series("wd0.3", [10], [0.2], run="smoke-wd0.3")
    settings = {"lr": {"smoke-lr2e-3": 2e-3, "smoke-wd0.3": 1e-3}}
    rows = list(csv.DictReader(open(export.write_csv(tmp_path / "a.csv", [a, b], "val_acc", settings=settings))))
    assert [(r["run"], r["lr"]) for r in rows] == [("smoke-lr2e-3", "2e-3")] * 2 + [("smoke-wd0.3", "1e-3")]
    rows = list(csv.DictReader(open(panels.write_panels_csv(tmp_path / "b.csv", [panels.Panel("t", "y", [a, b])],
                                                            settings=settings))))
    assert {r["run"] for r in rows} == {"smoke-lr2e-3", "smoke-wd0.3"} and rows[0]["lr"] == "2e-3"
    assert export.write_csv(tmp_path / "c.csv", [series.Series("x", [1], [1])], "m").read_text().startswith(
        "run,step,metric,value\nx,")  # a series of no run keeps its label, and no settings: no columns


def test_what_differs_between_runs_is_named():
    from grok_tui.figures import compare

    assert [export.short_value(v) for v in (1e-3, 3e-3, 2.5e-4, 0.5, 1.0, 1e6, 0.0, 7, None)] == [
        "1e-3", "3e-3", "2.5e-4", "0.5", "1", "1e6", "0", "7", "-"]
    fields = {"a": {"lr": 1e-3, "seed": 0, "data_seed": 0, "threads": 1, "op": "x+y"},
              "b": {"lr": 3e-3, "seed": 0, "data_seed": 0, "threads": 2, "op": "x+y"}}
    diff = compare.differing_settings(fields, ["op", "lr", "seed", "data_seed", "threads"])
    assert diff == {"lr": {"a": 1e-3, "b": 3e-3}}  # threads change no experiment
    assert compare.settings_title(diff) == "lr=1e-3 vs lr=3e-3"
    seeds = {f"s{i}": {"seed": i, "data_seed": i, "lr": 1e-3} for i in range(8)}
    diff = compare.differing_settings(seeds, ["seed", "data_seed", "lr"])
    assert list(diff) == ["seed"]  # data_seed follows the seed: named once
    assert compare.settings_title(diff) == "seed 0..7 (8 values)"
    assert compare.settings_title({}) == ""


def test_cli_plot_names_runs_by_id_and_the_differing_settings(tmp_path):
    runs = _runs_copy(tmp_path)
    ids = ["smoke-lr2e-3", "smoke-wd0.3"]
    r = _plot(*ids, "-m", "train_acc,val_acc", "-o", str(tmp_path / "f.svg"), "--csv", str(tmp_path / "f.csv"),
              "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    assert {row["run"] for row in rows} == set(ids)  # not 'smoke-lr2e-3: train accuracy'
    assert {(row["run"], row["weight_decay"], row["steps"]) for row in rows} == {
        ("smoke-lr2e-3", "1", "3500"), ("smoke-wd0.3", "0.3", "2000")}
    svg = (tmp_path / "f.svg").read_text()
    assert "weight_decay=1 steps=3500 vs weight_decay=0.3 steps=2000" in svg
    r = _plot(ids[0], "-m", "train_acc,val_acc", "--csv", str(tmp_path / "one.csv"), "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "one.csv")))
    assert {row["run"] for row in rows} == {ids[0]}  # one run, two metrics: still its id, not 'train accuracy'
    assert list(rows[0]) == ["run", "step", "metric", "value", "raw", "lo", "hi", "n"]  # nothing differs
    r = _plot(*ids, "--group-by", "weight_decay", "-o", str(tmp_path / "g.svg"), "--csv", str(tmp_path / "g.csv"),
              "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    assert "validation accuracy by weight_decay: steps=3500 vs steps=2000" in (tmp_path / "g.svg").read_text()
    rows = list(csv.DictReader(open(tmp_path / "g.csv")))
    assert {(row["run"], row["weight_decay"]) for row in rows} == {("weight_decay=0.3 (1 run)", "0.3"),
                                                                    ("weight_decay=1 (1 run)", "1")}


def test_cli_plot_connect_names_the_file_and_the_title_after_the_end_points(tmp_path):
    import json

    runs = _runs_copy(tmp_path)
    d = runs / "smoke-lr2e-3" / "connect"
    d.mkdir()
    ends = [{"ref": "smoke-lr2e-3@memorized", "path": "x", "step": 240, "run": "smoke-lr2e-3"},
            {"ref": "smoke-lr2e-3@2460", "path": "y", "step": 2460, "run": "smoke-lr2e-3"}]
    for name, curve, bends in (("cli-seg", "segment", 0), ("cli-poly", "polyline", 1)):
        r = connect_result(name, 1.0)
        r["inputs"] = {"curve": curve, "bends": bends, "endpoints": ends}
        (d / f"{name}.json").write_text(json.dumps(r))
    r = _plot("--connect", "smoke-lr2e-3/cli-seg", "-c", "smoke-lr2e-3/cli-poly", "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    png = d / "segment+polyline1_smoke-lr2e-3@240-smoke-lr2e-3@2460.png"
    assert png.stat().st_size > 10_000, sorted(p.name for p in d.iterdir())
    r = _plot("--connect", "smoke-lr2e-3/cli-seg", "-o", str(tmp_path / "c.svg"), "--runs-dir", str(runs))
    assert r.exit_code == 0, r.output
    assert "segment: smoke-lr2e-3@240 → smoke-lr2e-3@2460" in (tmp_path / "c.svg").read_text()
