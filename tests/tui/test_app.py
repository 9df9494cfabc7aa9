"""The app shell: modes bound to keys, a mode that is not registered hidden, palette commands."""

from __future__ import annotations

from grok_tui.tui.app import GrokApp, make_app
from grok_tui.tui.screens.runs import RunsScreen
from grok_tui.tui.screens.train import TrainScreen


def test_modes_are_a_plain_dict_with_train_and_runs():
    assert isinstance(GrokApp.MODES, dict)
    assert GrokApp.MODES["train"] is TrainScreen and GrokApp.MODES["runs"] is RunsScreen


async def test_mode_keys_palette_commands_and_unknown_modes(tmp_path):
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen)
        assert app.check_action("switch_mode", ("train",)) and not app.check_action("switch_mode", ("nope",))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for t in ("Run: start", "Run: pause / resume", "Run: stop", "View: train", "View: runs"):
            assert t in titles
        app.screen.query_one("#chart-acc").focus()
        await pilot.press("r")
        assert isinstance(app.screen, RunsScreen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Runs: export" in titles and "Runs: next metric" in titles
        await pilot.press("t")
        assert isinstance(app.screen, TrainScreen)
        await pilot.press("q")  # nothing training: quits at once
        await pilot.pause()
    assert app.return_code in (0, None)
