"""The app shell: modes bound to keys, a mode that is not registered hidden, palette commands, quit."""

from __future__ import annotations

from grok_tui.tui.app import make_app
from grok_tui.tui.screens.connect import ConnectScreen
from grok_tui.tui.screens.runs import RunsScreen
from grok_tui.tui.screens.train import TrainScreen


async def test_mode_keys_palette_commands_and_unknown_modes(tmp_path):
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen) and app.current_mode == "train"
        assert app.check_action("switch_mode", ("train",)) and not app.check_action("switch_mode", ("nope",))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for t in ("Run: start", "Run: pause / resume", "Run: stop", "View: train", "View: runs", "View: connect"):
            assert t in titles
        app.screen.query_one("#chart-acc").focus()
        await pilot.press("r")
        assert isinstance(app.screen, RunsScreen) and app.current_mode == "runs"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Runs: export" in titles and "Runs: next metric" in titles
        await pilot.press("c")
        assert isinstance(app.screen, ConnectScreen) and app.current_mode == "connect"
        await pilot.press("t")
        assert isinstance(app.screen, TrainScreen) and app.current_mode == "train"
        assert app.return_code is None  # still running
        await pilot.press("q")  # nothing training: quits at once, with no question asked
        await pilot.pause()
        assert app.return_code == 0 and isinstance(app.screen, TrainScreen)
    assert app.return_code == 0
