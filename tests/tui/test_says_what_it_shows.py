"""The app says what it shows: the Train view's header (the followed run's whole id and setting) and its
"next run" form, new run from this one (Train and Runs views), the attach list, the Runs chart following
the filter, exports naming runs by id and Connect figures by their end points, Continue (not Resume)."""

from __future__ import annotations

import json
import shutil

from textual.widgets import Button, Input, OptionList, Static

from grok_tui.tui.app import make_app
from grok_tui.tui.screens.dialogs import AttachScreen, ExportScreen
from grok_tui.tui.screens.train import TrainScreen
from grok_tui.tui.widgets.chart import MetricChart
from grok_tui.tui.widgets.run_table import RunTable

from .conftest import notified, wait_for
from .test_runs import open_runs

DATED = "20261125-015339-smoke-lr2e-3-long-name"  # an id the legend shortens (015339-...)


def text(widget) -> str:
    return str(widget.render())


async def test_the_header_names_the_run_whole_and_its_setting_and_the_form_is_the_next_run(fixture_runs):
    shutil.copytree(fixture_runs / "smoke-lr2e-3", fixture_runs / DATED)
    app = make_app(fixture_runs, attach_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        header = screen.query_one("#run-header", Static)
        assert not header.display  # no run followed: no header
        screen.show_run(app.attach(DATED))
        await wait_for(pilot, lambda: DATED in text(header), 10, "the header")
        assert header.display
        assert "x+y mod 31 · train 0.6 · 1L d64 · adamw lr 2e-3 wd 1" in text(header)
        assert "next run" in text(screen.query_one("#form-title", Static))


async def test_new_run_from_this_one_in_the_train_view(fixture_runs):
    app = make_app(fixture_runs, attach_on_start=False)
    messages: list = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        screen = app.screen
        screen.query_one("#chart-acc").focus()
        await pilot.press("n")  # nothing followed: refused, with the reason
        await pilot.pause()
        assert notified(messages, "no run shown")
        screen.show_run(app.attach("smoke-wd0.3"))
        await wait_for(pilot, lambda: app.live.config is not None, 10, "its config")
        assert screen.query_one("#f-weight_decay", Input).value == "1.0"  # the form: the smoke defaults
        await pilot.press("n")
        await pilot.pause()
        assert screen.query_one("#f-weight_decay", Input).value == "0.3"
        assert screen.query_one("#f-steps", Input).value == "2000"
        assert "smoke-wd0.3" in text(screen.query_one("#form-title", Static))


async def test_new_run_from_this_one_in_the_runs_view(fixture_runs):
    app = make_app(fixture_runs, attach_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        await pilot.press("down", "down")  # diverged-lr1e4, smoke-lr2e-3, smoke-wd0.3
        assert screen.query_one(RunTable).current_id == "smoke-wd0.3"
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen)
        assert app.screen.query_one("#f-weight_decay", Input).value == "0.3"
        assert app.screen.query_one("#f-steps", Input).value == "2000"


async def test_the_runs_chart_follows_the_filter(fixture_runs):
    app = make_app(fixture_runs, attach_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        chart = screen.query_one("#overlay", MetricChart)
        await pilot.press("down", "space", "down", "space")
        await wait_for(pilot, lambda: len(chart.series) == 2, 20, "two series")
        await pilot.press("slash", *"grokked", "enter")
        await wait_for(pilot, lambda: len(chart.series) == 1, 10, "the hidden run undrawn")
        assert chart.series[0].run == "smoke-lr2e-3"
        assert screen.selected == ["smoke-lr2e-3", "smoke-wd0.3"]  # still selected
        assert "2 selected (1 hidden by the filter)" in text(screen.query_one("#runs-hint"))
        await pilot.press("slash", "ctrl+u", "enter")
        await wait_for(pilot, lambda: len(chart.series) == 2, 10, "both again")


async def test_attach_lists_the_runs_newest_first_and_narrows_by_typing(fixture_runs):
    app = make_app(fixture_runs, attach_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#chart-acc").focus()
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachScreen), 10, "the attach list")
        dialog = app.screen
        options = dialog.query_one("#attach-list", OptionList)
        await wait_for(pilot, lambda: options.option_count == 3, 10, "the runs listed")
        assert dialog.shown == ["diverged-lr1e4", "smoke-wd0.3", "smoke-lr2e-3"]  # newest first
        await pilot.press(*"wd")
        await wait_for(pilot, lambda: options.option_count == 1, 10, "the list narrowed")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, AttachScreen)
        assert app.live is not None and app.live.run_id == "smoke-wd0.3"


async def test_the_export_names_runs_by_id_with_the_settings_that_differ(fixture_runs, tmp_path):
    shutil.copytree(fixture_runs / "smoke-lr2e-3", fixture_runs / DATED)
    app = make_app(fixture_runs, attach_on_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == 4, 10, "four runs")
        chart = screen.query_one("#overlay", MetricChart)
        await pilot.press("space", "down", "down", "down", "space")  # the dated run and smoke-wd0.3
        await wait_for(pilot, lambda: len(chart.series) == 2, 20, "two series")
        assert chart.series[0].label.startswith("015339-")  # the legend's short label
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), 10, "the export dialog")
        # the title says what differs
        assert "weight_decay=0.3" in text(app.screen.query_one(".dialog-text"))
        app.screen.query_one("#export-path", Input).value = str(tmp_path / "fig")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: (tmp_path / "fig.csv").is_file(), 10, "the CSV")
        lines = (tmp_path / "fig.csv").read_text().splitlines()
        assert lines[0] == "run,step,metric,value,weight_decay,steps"
        assert {line.split(",")[0] for line in lines[1:]} == {DATED, "smoke-wd0.3"}
        assert any(line.startswith("smoke-wd0.3,") and line.endswith(",0.3,2000") for line in lines)


async def test_the_connect_export_is_named_after_its_end_points(fixture_runs, tmp_path):
    from grok_tui.tui.screens.connect import ConnectScreen

    t = [i / 10 for i in range(11)]
    data = {k: [1 - x for x in t] for k in ("train_loss", "val_loss", "train_loss_l2", "val_loss_l2",
                                             "train_err", "val_err", "grad_norm")}
    data["t"] = t
    summary = {k: {"start": v[0], "end": v[-1], "min": min(v), "max": max(v), "mean": 0.5, "t_max": 0.0}
               for k, v in data.items() if k != "t"}
    result = {"kind": "curve", "name": "segment-x", "data": data, "summary": summary, "knots": [0.0, 1.0],
              "inputs": {"curve": "segment", "endpoints": [{"run": "smoke-lr2e-3", "step": 280},
                                                            {"run": "smoke-lr2e-3", "step": 1140}]}}
    path = tmp_path / "segment-x.json"
    path.write_text(json.dumps(result))
    app = make_app(fixture_runs, attach_on_start=False)
    messages: list = []
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), 10, "the connect view")
        app.screen.draw([{**result, "path": str(path)}])
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        png = tmp_path / "segment_smoke-lr2e-3@280-smoke-lr2e-3@1140.png"
        assert png.is_file() and png.with_suffix(".csv").is_file()
        assert notified(messages, str(png))


async def test_the_app_says_continue_not_resume(fixture_runs):
    app = make_app(fixture_runs, attach_on_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert str(screen.query_one("#continue", Button).label) == "Continue"
        screen.query_one("#chart-acc").focus()
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = text(app.screen.query_one("#help-text"))
        assert "Pause/Continue" in help_text and "Resume" not in help_text
        assert "New from this" in help_text


def test_linear_ticks_fit_the_rows_they_are_given():
    from grok_tui.figures.series import linear_ticks

    for lo, hi in ((0, 1), (14.8, 50.3), (0.97, 1.0), (-2, 7)):
        for most in (2, 3, 4, 6):
            pos, labels = linear_ticks(lo, hi, most)
            assert 1 <= len(pos) <= most and len(labels) == len(pos)
            assert all(lo - 1e-9 <= p <= hi + 1e-9 for p in pos)
    assert linear_ticks(0, 1, 3)[1] == ["0.0", "0.5", "1.0"]
