"""The config form: what an emptied field means."""

from __future__ import annotations

from textual.widgets import Input

from grok_tui.tui.app import make_app
from grok_tui.tui.widgets.config_form import ConfigForm


async def test_an_emptied_field_means_the_value_it_shows_greyed(tmp_path):
    """The smoke preset's train ratio is 0.6: emptied, the field shows 0.6 greyed and Start uses 0.6 (it
    showed the dataclass default 0.5 and refused with 'train ratio must be given')."""
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        form = app.screen.query_one(ConfigForm)
        field = app.screen.query_one("#f-train_frac", Input)
        field.value = ""
        await pilot.pause()
        assert field.placeholder == "0.6"
        cfg, errors, general = form.read()
        assert not errors and not general, (errors, general)
        assert cfg is not None and cfg.data.train_frac == 0.6
        seed = app.screen.query_one("#f-data_seed", Input)  # an optional field stays 'same as seed'
        assert seed.value == "" and cfg.data.data_seed is None
