"""Control you can trust: faults tried on real processes and what each gets (docs/reliability.md)."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from grok_tui.spec import config
from grok_tui.spec.presets import preset
from grok_tui.spec.tomlfile import load_toml
from grok_tui.store import runs
from grok_tui.tui.followed import Launch


class _SameSecond(datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: ARG003
        return datetime(2026, 1, 2, 3, 4, 5)


# --- 6: two starts from the app within one second ----------------------------------------------------

def test_two_launches_in_the_same_second_claim_two_ids_and_keep_both_configs(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "datetime", _SameSecond)
    root = tmp_path / "runs"
    a_cfg = config.apply_overrides(preset("smoke"), {"lr": 1e-3})
    b_cfg = config.apply_overrides(preset("smoke"), {"lr": 2e-3})
    a, b = Launch(root, None, a_cfg), Launch(root, None, b_cfg)  # no runner is started
    assert a.run_id != b.run_id and b.run_id == f"{a.run_id}-2"
    assert a.config_file != b.config_file and a.config_file.is_file() and b.config_file.is_file()
    assert load_toml(a.config_file) == a_cfg and load_toml(b.config_file) == b_cfg
    assert a.argv[a.argv.index("--name") + 1] == a.run_id and b.argv[b.argv.index("--config") + 1] == str(b.config_file)
    # the app's way: an id from the store, then its launch; the store counts the claimed start files
    app_id = runs.new_run_id(root, a_cfg)
    assert app_id == f"{a.run_id}-3"
    c = Launch(root, app_id, a_cfg)
    assert c.run_id == app_id and load_toml(c.config_file) == a_cfg
    # an id asked for that another launch holds moves on, never over the other's file
    d = Launch(root, a.run_id, b_cfg)
    assert d.run_id == f"{a.run_id}-4" and load_toml(a.config_file) == a_cfg
    # a generated id of `grok-tui run` skips them too (its run directory claim agrees with the start files)
    w = runs.create_writer(root, b_cfg)
    try:
        assert w.run_id == f"{a.run_id}-5"
    finally:
        w.close()


def test_concurrent_launches_never_share_a_start_file(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "datetime", _SameSecond)
    root = tmp_path / "runs"
    for _round in range(5):  # looped: the race is cheap
        cfgs = [config.apply_overrides(preset("smoke"), {"seed": i}) for i in range(8)]
        go = threading.Barrier(len(cfgs))
        got: list[Launch] = []

        def launch(cfg, go=go, got=got):
            go.wait()
            got.append(Launch(root, None, cfg))

        threads = [threading.Thread(target=launch, args=(c,)) for c in cfgs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({la.run_id for la in got}) == len(cfgs)
        for la in got:
            assert load_toml(la.config_file) == la.cfg
        for la in got:
            la.cleanup()
        assert not any((root / runs.START_DIR).iterdir())


def test_a_launch_that_cannot_claim_removes_nothing_and_start_says_why(tmp_path):
    root = tmp_path / "runs"
    root.write_text("a file")
    la = Launch(root, "x", preset("smoke"))
    assert not la.claimed
    la.cleanup()  # nothing of its own to remove
    with pytest.raises(OSError):
        la.start()
    assert la.proc is None
