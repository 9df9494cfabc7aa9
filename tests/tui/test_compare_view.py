"""The runs view as a lab notebook, on the checked-in fixture runs and sweep: filter with a query (and a
bad query as one sentence), sort, smooth, group with bands, the phase diagram, key help, refused keys."""

from __future__ import annotations

import pytest

from grok_tui.tui.app import make_app
from grok_tui.tui.screens.help import HelpScreen
from grok_tui.tui.screens.phase import PhaseScreen
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.phase_map import PhaseMap
from grok_tui.tui.widgets.run_table import RunTable

from .conftest import notified, wait_for
from .test_runs import open_runs


def table_ids(table: RunTable) -> list[str]:
    return [str(k.value) for k in table.rows]


async def test_filter_with_a_query_and_sort(fixture_runs):
    app = make_app(fixture_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(RunTable)
        await pilot.press("slash")
        await pilot.press(*"status=finished")
        await pilot.press("enter")
        await pilot.pause()
        assert table_ids(table) == ["smoke-lr2e-3", "smoke-wd0.3"]
        assert "2/3 where status=finished" in str(screen.query_one("#runs-hint").render())  # the hint counts them
        await pilot.press("slash", "ctrl+u", *"grokked", "enter")
        await pilot.pause()
        assert table_ids(table) == ["smoke-lr2e-3"]
        # a bad query: one sentence, the table as it was
        await pilot.press("slash", "ctrl+u", *"train_frac>=abc", "enter")
        await pilot.pause()
        assert table_ids(table) == ["smoke-lr2e-3"]
        hint = str(screen.query_one("#runs-hint").render())
        assert "'train_frac>=abc' compares with 'abc', which is not a number." in hint
        await pilot.press("ctrl+u", "enter")  # empty: every run again
        await pilot.pause()
        assert table.row_count == 3
        # sort: by the run id ascending, then descending, then by the grok step (runs without one last)
        await pilot.press("O")
        assert screen.sort == "run" and table_ids(table) == sorted(table_ids(table))
        assert "sort run ↑ (O)" in str(screen.query_one("#runs-hint").render())
        await pilot.press("O")
        await pilot.pause()
        assert screen.sort == "-run" and table_ids(table) == sorted(table_ids(table), reverse=True)
        assert "sort run ↓ (O)" in str(screen.query_one("#runs-hint").render())
        await pilot.press("O")
        await pilot.pause()
        assert screen.sort == "grok" and table_ids(table)[0] == "smoke-lr2e-3"


async def test_smooth_and_group_the_overlay(fixture_runs):
    app = make_app(fixture_runs)
    messages: list = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        screen = await open_runs(pilot)
        chart = screen.query_one("#overlay", MetricChart)
        await pilot.press("g")  # nothing selected: refused, with the reason
        await pilot.pause()
        assert screen.group_by is None and notified(messages, "select two or more runs")
        await pilot.press("space", "down", "space", "down", "space")
        await wait_for(pilot, lambda: len(chart.series) == 3, 20, "three series")
        raw = list(chart.series[1].y)
        await pilot.press("s", "s")
        await pilot.pause()
        assert screen.smoothing == 0.8
        s = chart.series[1]
        assert s.raw == raw and s.y != raw and s.y[0] == pytest.approx(raw[0])  # debiased: the first point is the raw one
        await pilot.press("g")
        await pilot.pause()
        assert screen.group_by == "weight_decay" and not chart.series
        labels = [b.label for b in chart.bands]
        assert labels == ["weight_decay=0.3 (1 run)", "weight_decay=1 (2 runs)"]
        assert len(chart.bands[1].members) == 2 and chart.bands[1].milestones == {"memorized": 240, "grokked": 2460}
        await pilot.press("b")
        assert screen.band == "std"
        await pilot.press("g")  # the next varying field: lr
        await pilot.pause()
        assert screen.group_by == "lr"
        await pilot.press("S", "S")
        await pilot.pause()
        assert screen.smoothing == 0.0


async def test_phase_view_and_key_help(fixture_runs):
    app = make_app(fixture_runs)
    messages: list = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        screen = await open_runs(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        assert "Smooth" in text and "Group" in text and "Filter" in text
        await pilot.press("escape")
        await pilot.press("P")
        await pilot.pause()
        phase = app.screen
        assert isinstance(phase, PhaseScreen)
        await wait_for(pilot, lambda: phase.grid is not None, 20, "the sweep summaries read off the UI thread")
        grid = phase.grid
        assert grid is not None and (grid.x, grid.y) == ("train_frac", "weight_decay")
        rendered = str(phase.query_one(PhaseMap).render())
        assert "no grok" in rendered and "train_frac" in rendered
        await pilot.press("v")
        assert phase.grid.value == "best_val"
        await pilot.press("x")  # two fields: x and y swap
        assert (phase.grid.x, phase.grid.y) == ("weight_decay", "train_frac")
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        out = fixture_runs / "sweeps" / f"{grid.sweep_id}-phase-weight_decay-train_frac-best_val.png"
        assert out.stat().st_size > 1000 and out.with_suffix(".csv").is_file()
        assert notified(messages, str(out))  # the toast says where
        await pilot.press("escape")
        assert app.screen is screen


async def test_connect_view_exports_the_shown_curves_and_toggles_the_l2_term(fixture_runs, tmp_path):
    import json

    from grok_tui.tui.screens.connect import ConnectScreen
    from grok_tui.tui.widgets.connect_plot import ConnectPlot

    t = [i / 10 for i in range(11)]
    bump = [8 * x * (1 - x) for x in t]
    data = {"t": t, "train_loss": [0.01 + b for b in bump], "val_loss": [3 - 2.9 * x for x in t],
            "train_loss_l2": [50 + b for b in bump], "val_loss_l2": [53 + b for b in bump],
            "train_err": [min(1.0, b) for b in bump], "val_err": [1 - x for x in t], "grad_norm": [0.1 + b for b in bump]}
    summary = {k: {"start": v[0], "end": v[-1], "min": min(v), "max": max(v), "mean": sum(v) / len(v), "t_max": 0.5}
               for k, v in data.items() if k != "t"}
    result = {"kind": "curve", "name": "segment-a-b", "data": data, "summary": summary, "knots": [0.0, 1.0]}
    path = tmp_path / "segment-a-b.json"
    path.write_text(json.dumps(result))
    app = make_app(fixture_runs)
    messages: list = []
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), 10, "the connect view")
        screen = app.screen
        await pilot.press("e")  # nothing shown yet: refused, with the reason
        await pilot.pause()
        assert notified(messages, "nothing to export")
        screen.draw([{**result, "path": str(path)}])
        loss = screen.query_one("#panel-loss", ConnectPlot)
        assert loss.title.startswith("cross-entropy (w") and loss.lines[0].y == result["data"]["train_loss"]
        await pilot.press("w")
        assert loss.title.startswith("cross-entropy + L2") and loss.lines[0].y == result["data"]["train_loss_l2"]
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        png = tmp_path / "segment-a-b-figure.png"
        assert png.stat().st_size > 10_000 and png.with_suffix(".csv").is_file()
        assert notified(messages, str(png))


async def test_train_and_val_in_one_chart_and_a_summary_figure(fixture_runs):
    app = make_app(fixture_runs)
    messages: list = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        screen = await open_runs(pilot)
        chart = screen.query_one("#overlay", MetricChart)
        await pilot.press("down", "space")
        await wait_for(pilot, lambda: len(chart.series) == 1, 20, "a series")
        await pilot.press("v")
        await pilot.pause()
        assert [(s.metric, s.style) for s in chart.series] == [("train_acc", "-"), ("val_acc", "--")]
        assert chart.series[0].label.endswith(" train") and chart.series[1].label.endswith(" val")
        assert chart.series[0].milestones and not chart.series[1].milestones  # marked once per run
        await pilot.press("m", "m", "m", "m")  # weight_norm: no counterpart, a single line
        await pilot.pause()
        assert screen.metric == "weight_norm" and len(chart.series) == 1
        await pilot.press("v")  # refused, with the reason
        await pilot.pause()
        assert notified(messages, "has no train/val counterpart")
        await pilot.press("F")  # the run under the cursor: its summary figure in its figures/
        await app.workers.wait_for_complete()
        await pilot.pause()
        out = fixture_runs / "smoke-lr2e-3" / "figures" / "summary.png"
        assert out.stat().st_size > 10_000 and notified(messages, str(out))
