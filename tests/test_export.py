"""export.py (series, downsampling, log ticks, CSV, matplotlib figures) and `grok-tui plot`."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grok_tui.cli.main import app
from grok_tui.figures import export

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"


def test_series_skips_missing_and_non_finite_values():
    rows = [{"step": 10, "val_acc": 0.1}, {"step": 20}, {"step": 30, "val_acc": float("nan")},
            {"step": 40, "val_acc": 0.9}]
    s = export.series(rows, "val_acc", milestones={"grokked": 40})
    assert s.x == [10.0, 40.0] and s.y == [0.1, 0.9] and s.milestones == {"grokked": 40}


def test_downsample_keeps_ends_and_bounds_the_count():
    x = list(range(1, 10_001))
    y = [v * 2 for v in x]
    for logx in (False, True):
        dx, dy = export.downsample(x, y, 100, logx)
        assert dx[0] == 1 and dx[-1] == 10_000 and len(dx) <= 102
        assert all(b == 2 * a for a, b in zip(dx, dy, strict=True))
        assert dx == sorted(dx)
    assert export.downsample([1, 2], [3, 4], 100) == ([1, 2], [3, 4])


def test_log_ticks_are_readable_and_inside_the_range():
    pos, labels = export.log_ticks(10, 100_000)
    assert labels == ["10", "100", "1k", "10k", "100k"]
    pos, labels = export.log_ticks(20, 3500)
    assert labels[0] == "20" and "100" in labels and all(1.3 - 1e-9 <= p <= 3.545 for p in pos)
    pos, labels = export.log_ticks(1e-3, 2.0)
    assert labels[:3] == ["1e-3", "1e-2", "1e-1"]


def test_milestones_from_events_and_summary():
    evs = [{"event": "memorized", "step": 240}, {"event": "checkpoint", "step": 240},
           {"event": "memorized", "step": 300}]
    assert export.milestones_of(evs, {"grokked_step": 2700}) == {"memorized": 240, "grokked": 2700}


def test_csv_and_figures(tmp_path):
    a = export.Series("a", [10, 20, 30], [0.1, 0.5, 1.0], {"memorized": 20})
    b = export.Series("b", [10, 20], [0.2, 0.3], {})
    out = export.write_csv(tmp_path / "d.csv", [a, b], "val_acc")
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["run", "step", "metric", "value"] and len(rows) == 6 and rows[1] == ["a", "10", "val_acc", "0.1"]
    png = export.save_figure(tmp_path / "f.png", [a, b], "validation accuracy", "val acc", logx=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = export.save_figure(tmp_path / "f.svg", [a, b], "t", "y", logy=True)
    text = svg.read_text()
    assert "<svg" in text and "memorized @ 20" in text  # the milestone is in the legend
    with pytest.raises(export.ExportError, match="must be .png, .svg or .pdf"):
        export.save_figure(tmp_path / "f.jpg", [a], "t", "y")


def test_missing_matplotlib_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(export.ExportError, match=r"pip install 'grok-tui\[plot\]'"):
        export.save_figure(tmp_path / "f.png", [export.Series("a", [1], [1])], "t", "y")
    assert not (tmp_path / "f.png").exists()


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
    r = CliRunner().invoke(app, ["plot", ids[0], "--runs-dir", str(runs)])
    assert r.exit_code == 2 and "--out" in r.output
