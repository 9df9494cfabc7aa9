"""Progress measures in run directories: the progress.jsonl format, its reader, a resume, the live cadence
(measure_every), `grok-tui inspect` (one checkpoint, --checkpoints), `plot -m restricted_loss` and
`plot --spectrum`, the nanda preset."""

import json
import math

import pytest
from typer.testing import CliRunner

from grok_tui.cli.main import app
from grok_tui.spec import checks
from grok_tui.spec.presets import preset
from grok_tui.spec.resolve import resolve
from grok_tui.store import control, runs
from grok_tui.store import progress as pstore

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def measures(k=3, restricted=0.5, excluded=2.0):
    return {"basis": "additive", "spectrum": [1.0 + i for i in range(k)], "const_norm": 0.25,
            "key_freqs": [k], "gini": 0.1, "ipr": 0.4, "restricted_loss": restricted, "excluded_loss": excluded}


def test_progress_rows_round_trip_through_the_writer(tmp_path, tiny_cfg):
    w = runs.RunWriter(tmp_path / "r", tiny_cfg)
    try:
        w.progress(pstore.progress_row(10, measures()))
        w.progress(pstore.progress_row(20, measures(restricted=None, excluded=None)))
    finally:
        w.close()
    with open(tmp_path / "r" / pstore.PROGRESS_FILE, "a") as f:
        f.write('{"step": 30, "spec')  # a torn last line
    rows = pstore.read_progress(tmp_path / "r")
    assert [r["step"] for r in rows] == [10, 20]
    assert set(rows[0]) == set(pstore.ROW_KEYS)
    assert rows[0]["spectrum"] == [1.0, 2.0, 3.0] and rows[0]["key_freqs"] == [3]
    assert rows[1]["restricted_loss"] is None and rows[1]["excluded_loss"] is None
    assert pstore.metric_columns(rows[1]) == {"gini": 0.1, "ipr": 0.4}  # absent, not zero
    steps, matrix, basis = pstore.spectrum_matrix(rows)
    assert steps == [10, 20] and matrix[1] == [1.0, 2.0, 3.0] and basis == "additive"


def test_with_progress_fills_scalars_only_where_missing():
    metric_rows = [{"step": 10, "val_acc": 0.1}, {"step": 20, "val_acc": 0.2, "gini": 0.9}]
    prog = [pstore.progress_row(s, measures()) for s in (10, 20, 25)]
    out = pstore.with_progress(metric_rows, prog)
    assert [r["step"] for r in out] == [10, 20, 25]
    assert out[0]["restricted_loss"] == 0.5 and out[1]["gini"] == 0.9 and out[2]["excluded_loss"] == 2.0


def test_resume_drops_progress_rows_past_its_checkpoint(tmp_path, tiny_cfg):
    path = tmp_path / "r"
    w = runs.RunWriter(path, tiny_cfg)
    try:
        for s in (10, 20, 30, 40):
            w.progress(pstore.progress_row(s, measures()))
    finally:
        w.close()
    w = runs.RunWriter(path, tiny_cfg, resume=True, resume_step=20)
    w.close()
    assert [r["step"] for r in pstore.read_progress(path)] == [10, 20]


def test_nanda_preset_validates_and_is_listed():
    cfg = preset("nanda")
    assert checks.validate(cfg) == []
    assert (cfg.data.op, cfg.data.p, cfg.data.train_frac, cfg.model.layers, cfg.model.norm) == ("x+y", 113, 0.3, 1, "none")
    assert cfg.train.batch_size >= 3830  # the whole training set: full batch
    out = invoke("presets").output
    assert "nanda" in out and "Nanda" in out


def test_measure_every_must_not_be_negative():
    from grok_tui.spec.config import apply_overrides

    errs = checks.validate(apply_overrides(preset("smoke"), {"measure_every": -1}))
    assert errs == ["measure every must be >= 0 (0: never), got -1."]
    r = invoke("run", "--preset", "smoke", "--measure-every", "-1")
    assert r.exit_code == 2 and "measure every must be >= 0" in r.output and "Traceback" not in r.output


# --- commands on a trained run -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A runs dir with a short smoke run trained without live measures (measure_every 0), checkpoints
    every 20 steps."""
    from grok_tui.train import trainer

    root = tmp_path_factory.mktemp("progress") / "runs"
    cfg = resolve("smoke", overrides={"steps": 60, "eval_every": 10, "checkpoint_every": 20, "device": "cpu",
                                      "measure_every": 0})
    w = runs.RunWriter(root / "old", cfg)
    try:
        trainer.run_training(cfg, w)
    finally:
        w.close()
    return root


def test_inspect_one_checkpoint(trained):
    r = invoke("inspect", "old@20", "--json", "--runs-dir", trained)
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)
    assert row["step"] == 20 and row["basis"] == "additive" and len(row["spectrum"]) == 15
    assert 0 <= row["gini"] <= 1 and row["key_freqs"] and math.isfinite(row["restricted_loss"])
    r = invoke("inspect", "old", "--runs-dir", trained)  # the last checkpoint, as a table and bars
    assert r.exit_code == 0, r.output
    assert "restricted_loss" in r.output and "spectrum" in r.output and "█" in r.output
    r = invoke("inspect", "old@7", "--runs-dir", trained)
    assert r.exit_code == 2 and "no checkpoint at step 7" in r.output and "Traceback" not in r.output


def test_inspect_checkpoints_backfills_and_refuses_a_locked_run(trained):
    path = trained / "old"
    assert pstore.read_progress(path) == []
    lock = control.RunLock(path)
    lock.acquire()
    try:
        r = invoke("inspect", "old", "--checkpoints", "--runs-dir", trained)
    finally:
        lock.release()
    assert r.exit_code == 2 and "being written by another process" in r.output
    assert not (path / pstore.PROGRESS_FILE).exists()
    r = invoke("inspect", "old", "--checkpoints", "--runs-dir", trained)
    assert r.exit_code == 0, r.output
    rows = pstore.read_progress(path)
    assert [x["step"] for x in rows] == [s for s, _ in runs.open_run(trained, "old").checkpoints()] == [20, 40, 60]
    assert all(x["restricted_loss"] is not None for x in rows)
    r = invoke("inspect", "old@20", "--checkpoints", "--runs-dir", trained)
    assert r.exit_code == 2 and "give its id" in r.output


def test_plot_progress_metrics_and_spectrum_write_pngs(trained, tmp_path):
    invoke("inspect", "old", "--checkpoints", "--runs-dir", trained)
    out = tmp_path / "rl.png"
    r = invoke("plot", "old", "-m", "restricted_loss,excluded_loss", "-o", out, "--runs-dir", trained)
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "spec.png"
    r = invoke("plot", "old", "--spectrum", "-o", out, "--runs-dir", trained)
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_plot_spectrum_without_progress_rows_is_one_sentence(tmp_path, tiny_cfg):
    root = tmp_path / "runs"
    runs.RunWriter(root / "empty", tiny_cfg).close()
    r = invoke("plot", "empty", "--spectrum", "--runs-dir", root)
    assert r.exit_code != 0 and "no progress rows" in r.output and "Traceback" not in r.output


# --- live measures at evaluations ---------------------------------------------------------------------

@pytest.mark.parametrize("op", ["x+y", "x*y"])
def test_measure_every_cadence_writes_rows_and_columns(tmp_path, op):
    from grok_tui.train import trainer

    cfg = resolve("smoke", overrides={"op": op, "steps": 60, "eval_every": 10, "checkpoint_every": 0,
                                      "device": "cpu", "measure_every": 2})
    w = runs.RunWriter(tmp_path / "r", cfg)
    try:
        trainer.run_training(cfg, w)
    finally:
        w.close()
    rows = pstore.read_progress(tmp_path / "r")
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert rows[0]["basis"] == ("additive" if op == "x+y" else "multiplicative")
    assert len(rows[0]["spectrum"]) == 15  # p = 31: 15 frequencies either way (n = 31 or 30)
    metric_rows = runs.open_run(tmp_path, "r").metrics()
    measured = [r["step"] for r in metric_rows if "restricted_loss" in r]
    assert measured == [20, 40, 60]
    for m in metric_rows:
        assert ("gini" in m) == (m["step"] in measured)
        if m["step"] in measured:
            p = next(r for r in rows if r["step"] == m["step"])
            assert m["excluded_loss"] == pytest.approx(p["excluded_loss"], rel=1e-5)


def test_live_measures_match_inspect_of_the_same_checkpoint(tmp_path):
    """The measures from the evaluation's logits equal those of a separate forward on the checkpoint."""
    from grok_tui.train import progress, trainer

    cfg = resolve("smoke", overrides={"steps": 40, "eval_every": 20, "checkpoint_every": 40, "device": "cpu"})
    w = runs.RunWriter(tmp_path / "r", cfg)
    try:
        trainer.run_training(cfg, w)
    finally:
        w.close()
    live = pstore.read_progress(tmp_path / "r")[-1]
    path = dict(runs.open_run(tmp_path, "r").checkpoints())[40]
    again = pstore.progress_row(40, progress.measure_checkpoint(path, cfg))
    assert live["key_freqs"] == again["key_freqs"]
    for k in ("gini", "ipr", "restricted_loss", "excluded_loss"):
        assert live[k] == pytest.approx(again[k], rel=1e-4, abs=1e-6)


def test_ensemble_members_get_their_own_progress_rows(tmp_path):
    from grok_tui.train.ensemble import Ensemble
    from grok_tui.train.loop import Recorder, run_loop

    cfgs = [resolve("smoke", overrides={"op": op, "seed": s, "steps": 20, "eval_every": 10, "checkpoint_every": 0,
                                        "device": "cpu"}) for s, op in ((0, "x+y"), (1, "x*y"))]
    import torch

    ens = Ensemble(cfgs, torch.device("cpu"))
    writers = [runs.RunWriter(tmp_path / f"m{k}", c) for k, c in enumerate(cfgs)]
    try:
        run_loop(ens, [Recorder(w, c) for w, c in zip(writers, cfgs, strict=True)], cfgs[0].train, None)
    finally:
        for w in writers:
            w.close()
    for k, basis in enumerate(("additive", "multiplicative")):
        rows = pstore.read_progress(tmp_path / f"m{k}")
        assert [r["step"] for r in rows] == [10, 20] and rows[0]["basis"] == basis
        assert rows[-1]["restricted_loss"] is not None
