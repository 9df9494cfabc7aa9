"""The Inside view (i): the progress measures of the run the Train view follows, from plain files.

The runs are copies of the checked-in fixture runs (x+y mod 31: 15 frequencies) with a progress.jsonl
written here, as a run measured at its evaluations writes it."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from textual.app import App, ComposeResult

from grok_tui.tui.app import make_app
from grok_tui.tui.messages import RunUpdated
from grok_tui.tui.screens.inside import InsideScreen
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.spectrum import SpectrumBars, SpectrumHeatmap

from .conftest import FIXTURE_RUNS, wait_for

KEY = [4, 11]
STEPS = [100, 200, 400, 800, 1600, 3200]


def progress_row(step: int, key=KEY, k: int = 15, losses: bool = True) -> dict:
    """A progress row whose spectrum concentrates on `key` as the steps grow."""
    t = math.log10(step) - 2  # 0 at step 100, 1.5 at 3200
    spectrum = [round(1.0 + (3.0 * t if f in key else -0.4 * t) + 0.05 * f, 4) for f in range(1, k + 1)]
    e = [v * v for v in spectrum]
    ipr = sum(x * x for x in e) / sum(e) ** 2
    return {"step": step, "basis": "additive", "spectrum": spectrum, "const_norm": 0.5, "key_freqs": key,
            "gini": round(0.1 + 0.3 * t, 4), "ipr": round(ipr, 4),
            "restricted_loss": round(2.0 / (1 + 4 * t), 4) if losses else None,
            "excluded_loss": round(1.0 + t, 4) if losses else None}


def write_progress(run: Path, rows: list[dict], mode: str = "w") -> None:
    with open(run / "progress.jsonl", mode) as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


def progress_runs(tmp_path: Path, losses: bool = True) -> Path:
    """A runs directory: smoke-lr2e-3 with progress rows at STEPS, smoke-wd0.3 without any."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for rid in ("smoke-lr2e-3", "smoke-wd0.3"):
        shutil.copytree(FIXTURE_RUNS / rid, runs / rid)
    write_progress(runs / "smoke-lr2e-3", [progress_row(s, losses=losses) for s in STEPS])
    return runs


async def open_inside(pilot, run_id: str) -> InsideScreen:
    pilot.app.attach(run_id)
    await pilot.press("i")
    screen = pilot.app.screen
    assert isinstance(screen, InsideScreen)
    return screen


async def test_the_view_shows_the_last_spectrum_its_history_and_a_new_row(tmp_path):
    runs = progress_runs(tmp_path)
    app = make_app(runs, attach_on_start=False)
    messages: list = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        screen = await open_inside(pilot, "smoke-lr2e-3")
        bars, heat = screen.query_one(SpectrumBars), screen.query_one(SpectrumHeatmap)
        await wait_for(pilot, lambda: bars.row is not None and heat.columns, 20, "the progress rows")
        last = progress_row(STEPS[-1])
        # the bars show the last row, the key frequencies named and highlighted
        assert bars.row["step"] == STEPS[-1] and bars.values == last["spectrum"]
        assert "key: 4, 11" in bars.text[0]
        # the heatmap: one column per row when they fit its width (the steps are apart on its log axis)
        assert heat.columns == STEPS and heat.plot_width >= len(STEPS)
        assert all(len(line) == heat.size.width for line in heat.text)
        status = str(screen.query_one("#inside-status").render())
        assert "Gini 0.55" in status and "IPR" in status and "additive" in status and "3200" in status
        # the restricted and excluded losses (from progress.jsonl: metrics.jsonl lacks them) beside train/val
        chart = screen.query_one("#inside-loss", MetricChart)
        await wait_for(pilot, lambda: chart.series and chart.series[0].milestones == {"memorized": 240, "grokked": 2460},
                       20, "the milestone marks")  # the follower thread may read the events after the rows
        assert [s.label for s in chart.series] == ["train_loss", "val_loss", "restricted_loss", "excluded_loss"]
        # a row appended to progress.jsonl reaches the view through the follower's next read
        messages.clear()
        write_progress(runs / "smoke-lr2e-3", [progress_row(6400, key=[4, 7, 11])], "a")
        await wait_for(pilot, lambda: any(isinstance(m, RunUpdated) and m.progress for m in messages), 20,
                       "a RunUpdated with the new progress row")
        await wait_for(pilot, lambda: bars.row["step"] == 6400, 20, "the new row on the bars")
        assert "key: 4, 7, 11" in bars.text[0]
        await wait_for(pilot, lambda: heat.columns[-1] == 6400, 20, "the new column")
        assert heat.columns == [*STEPS, 6400]


async def test_a_run_without_measures_says_so_and_the_view_switches_with_the_train_view(tmp_path):
    runs = progress_runs(tmp_path)
    app = make_app(runs, attach_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_inside(pilot, "smoke-lr2e-3")
        bars = screen.query_one(SpectrumBars)
        await wait_for(pilot, lambda: bars.row is not None, 20, "the progress rows")
        await pilot.press("t")
        app.attach("smoke-wd0.3")  # the Train view now follows another run, one without progress.jsonl
        await pilot.press("i")
        sentence = "no progress measures in this run: `grok-tui inspect smoke-wd0.3 --checkpoints` computes them"
        await wait_for(pilot, lambda: bars.row is None and sentence in " ".join(t.strip() for t in bars.text), 20, "the sentence")
        assert screen.query_one(SpectrumHeatmap).columns == []
        chart = screen.query_one("#inside-loss", MetricChart)
        await wait_for(pilot, lambda: [s.label for s in chart.series] == ["train_loss", "val_loss"], 20, "losses")


async def test_an_operation_without_restricted_losses_shows_them_absent(tmp_path):
    runs = progress_runs(tmp_path, losses=False)
    app = make_app(runs, attach_on_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_inside(pilot, "smoke-lr2e-3")
        bars = screen.query_one(SpectrumBars)
        await wait_for(pilot, lambda: bars.row is not None, 20, "the progress rows")
        status = str(screen.query_one("#inside-status").render())
        assert "restricted/excluded loss: none for this operation" in status and "restricted 0" not in status
        chart = screen.query_one("#inside-loss", MetricChart)
        assert [s.label for s in chart.series] == ["train_loss", "val_loss"]
        assert "none for this operation" in chart.title


async def test_the_key_help_lists_the_view(tmp_path):
    app = make_app(tmp_path / "runs", attach_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i")
        assert isinstance(app.screen, InsideScreen)
        assert "no run followed" in str(app.screen.query_one("#inside-status").render())
        await pilot.press("question_mark")
        text = str(app.screen.query_one("#help-text").render())
        assert "Inside: the circuit forming" in text


class HeatApp(App):
    def compose(self) -> ComposeResult:
        yield SpectrumHeatmap()


async def test_many_rows_give_at_most_one_column_per_cell_and_redraw_on_new_data_only():
    rows = [progress_row(s) for s in range(10, 20_010, 10)]  # 2,000 rows at a linear cadence
    app = HeatApp()
    async with app.run_test(size=(60, 12)) as pilot:
        heat = app.query_one(SpectrumHeatmap)
        heat.show(rows)
        await pilot.pause()
        assert len(heat.columns) <= heat.plot_width and heat.columns[-1] == 20_000
        assert heat.columns == sorted(heat.columns) and len(heat.text) == 12
        n = heat.redraws
        assert not heat.show(rows) and heat.redraws == n  # the same data: nothing rebuilt
        rows.append(progress_row(20_010))  # the list grows in place, as the follower's does
        assert heat.show(rows) and heat.columns[-1] == 20_010
