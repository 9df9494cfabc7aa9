"""The runs' derived config index: a listing parses only the configs that changed since the last one,
and the index never says anything the config files do not."""

from __future__ import annotations

import json
import shutil

from grok_tui.spec.presets import preset
from grok_tui.store import index, runs


def _lab(root, n=5):
    for i in range(n):
        d = root / f"r{i}"
        d.mkdir(parents=True)
        cfg = preset("smoke")
        cfg.train.seed = i
        (d / "config.toml").write_text(cfg.to_toml())
        (d / "summary.json").write_text(json.dumps({"status": "finished", "steps_run": 10}))


def test_a_second_listing_parses_no_config_and_a_changed_one_is_read_again(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    _lab(root)
    parsed = []
    real = index.load_toml
    monkeypatch.setattr(index, "load_toml", lambda p, *a: parsed.append(p) or real(p, *a))
    first = runs.list_runs(root)
    assert len(parsed) == 5 and (root / index.INDEX_NAME).is_file()
    parsed.clear()
    again = runs.list_runs(root)
    assert parsed == [] and [r.config for r in again] == [r.config for r in first]
    cfg = preset("smoke")
    cfg.optim.lr = 0.5
    (root / "r2" / "config.toml").write_text(cfg.to_toml())  # a new inode or mtime: read again
    changed = {r.id: r for r in runs.list_runs(root)}
    assert parsed == [root / "r2" / "config.toml"] and changed["r2"].config.optim.lr == 0.5
    shutil.rmtree(root / "r4")
    assert [r.id for r in runs.list_runs(root)] == ["r0", "r1", "r2", "r3"]
    assert "r4" not in json.loads((root / index.INDEX_NAME).read_text())["runs"]


def test_a_damaged_or_foreign_index_is_rebuilt(tmp_path):
    root = tmp_path / "runs"
    _lab(root, 2)
    truth = [r.config for r in runs.list_runs(root)]
    (root / index.INDEX_NAME).write_text("{not json")
    assert [r.config for r in runs.list_runs(root)] == truth
    data = json.loads((root / index.INDEX_NAME).read_text())
    data["version"] = "another"
    for entry in data["runs"].values():
        entry[3]["optim"]["lr"] = 99.0  # an index written by another version says something else
    (root / index.INDEX_NAME).write_text(json.dumps(data))
    assert [r.config for r in runs.list_runs(root)] == truth


def test_jsonl_count_and_last_reads_in_constant_memory(tmp_path):
    """`runs show` counts a run's rows and shows the last without parsing every row."""
    from grok_tui.store import files

    path = tmp_path / "metrics.jsonl"
    rows = [{"step": i, "val_acc": i / 10} for i in range(1, 5001)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 50')  # a torn last line
    assert files.jsonl_count_and_last(path, chunk=4096) == (5000, rows[-1])
    assert files.jsonl_count_and_last(tmp_path / "missing.jsonl") == (0, None)
    path.write_text(json.dumps(rows[0]) + "\n")
    assert files.jsonl_count_and_last(path) == (1, rows[0])
