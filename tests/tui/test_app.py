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
        for t in ("Run: start", "Run: pause / continue", "Run: new from this one", "Run: stop", "View: train",
                  "View: runs", "View: connect"):
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


async def test_the_quit_question_speaks_of_one_run_or_several(tmp_path):
    from textual.widgets import Button, Label

    from grok_tui.tui.screens.dialogs import QuitScreen

    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        for ids, words, button in ((["r1"], "r1 is training. It goes on without the app unless you stop it", "Stop it"),
                                   (["r1", "r2"], "r1, r2 are training. They go on without the app unless you stop "
                                                  "them", "Stop them")):
            app.push_screen(QuitScreen(ids))
            await pilot.pause()
            assert words in str(app.screen.query_one(Label).render())
            assert button in str(app.screen.query_one("#stop", Button).label)
            app.pop_screen()
            await pilot.pause()
