"""Curves, evaluation along them, fitting, saved results and the `connect` command."""

import csv
import json
import shutil
import threading

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from grok_tui.cli.main import app
from grok_tui.connect import curves
from grok_tui.connect import evaluate as connect_evaluate
from grok_tui.connect import fit as connect_fit
from grok_tui.connect import job as connect_job
from grok_tui.connect import problem as connect_problem
from grok_tui.connect import results as connect_results
from grok_tui.errors import CheckpointError, ConfigError
from grok_tui.spec.resolve import resolve
from grok_tui.store import files, refs, runs
from grok_tui.train import checkpoint, metrics, model

runner = CliRunner()


@pytest.fixture
def pair(smoke_pair):
    return smoke_pair


def reference(problem, weights_list):
    """Plain loop: load each weight set into a module, evaluate with metrics.loss_acc and autograd."""
    m = model.build(problem.arch)
    sp, bs = problem.split, problem.cfg.train.batch_size
    rows = []
    for w in weights_list:
        m.load_state_dict({k: v.detach().clone() for k, v in w.items()})
        tl, ta = metrics.loss_acc(m, sp.train_x, sp.train_y)
        vl, va = metrics.loss_acc(m, sp.val_x, sp.val_y)
        sq = sum(float(v.detach().pow(2).sum()) for v in w.values())
        norms = []
        for r in range(0, sp.n_train, bs):
            m.zero_grad()
            F.cross_entropy(m(sp.train_x[r:r + bs]), sp.train_y[r:r + bs]).backward()
            norms.append(float(torch.sqrt(sum(p.grad.pow(2).sum() for p in m.parameters()))))
        rows.append({"train_loss": float(tl), "val_loss": float(vl), "train_err": 1 - float(ta),
                     "val_err": 1 - float(va), "train_loss_l2": float(tl) + problem.wd / 2 * sq,
                     "grad_norm": sum(norms) / len(norms), "weight_norm": sq ** 0.5})
    return rows


def assert_rows_match(res, rows, idx):
    for i, row in zip(idx, rows, strict=True):
        for k, v in row.items():
            assert res[k][i] == pytest.approx(v, rel=1e-4, abs=1e-5), (k, i)


def test_segment_endpoints_equal_the_checkpoints(pair):
    problem = connect_problem.load_problem(["a@100", "a@300"], pair, device="cpu")
    seg = curves.Segment(problem.ends[0].weights, problem.ends[1].weights)
    res = connect_evaluate.evaluate_curve(problem, seg, points=5)
    assert res["t"][0] == 0 and res["t"][-1] == 1
    assert_rows_match(res, reference(problem, [e.weights for e in problem.ends]), [0, 4])
    for i, e in ((0, problem.ends[0]), (4, problem.ends[1])):  # the trainer's own figures at that step
        side = files.read_sidecar(e.path)["metrics"]
        assert res["train_loss"][i] == pytest.approx(side["train_loss"], rel=1e-4)
        assert 1 - res["val_err"][i] == pytest.approx(side["val_acc"], abs=1e-6)


def test_grad_batches_averages_the_first_minibatches_only(pair):
    problem = connect_problem.load_problem(["a@300", "b@300"], pair, device="cpu")
    seg = curves.Segment(problem.ends[0].weights, problem.ends[1].weights)
    res = connect_evaluate.evaluate_curve(problem, seg, points=2, grad_batches=1)
    m = model.build(problem.arch)
    m.load_state_dict(problem.ends[0].weights)
    bs = problem.cfg.train.batch_size
    F.cross_entropy(m(problem.split.train_x[:bs]), problem.split.train_y[:bs]).backward()
    first = float(torch.sqrt(sum(p.grad.pow(2).sum() for p in m.parameters())))
    assert res["grad_norm"][0] == pytest.approx(first, rel=1e-4)
    assert res["train_loss"] == connect_evaluate.evaluate_curve(problem, seg, points=2, grad_norm=False)["train_loss"]
    with pytest.raises(ConfigError, match="grad batches"):
        connect_job.run_connect("a@100", "a@300", pair, grad_batches=0)


def test_segment_midpoint_is_the_average_and_bends_start_on_it(pair):
    problem = connect_problem.load_problem(["a@100", "b@300"], pair, device="cpu")
    w1, w2 = problem.ends[0].weights, problem.ends[1].weights
    mid = curves.Segment(w1, w2).weights(0.5)
    for k in w1:
        torch.testing.assert_close(mid[k], (w1[k] + w2[k]) / 2)
    for kind in ("polyline", "bezier"):
        c = curves.make(kind, w1, w2, bends=1)
        for t in (0.0, 0.3, 0.5, 1.0):  # unfitted, both equal the segment
            got, want = c.weights(t), curves.Segment(w1, w2).weights(t)
            for k in w1:
                torch.testing.assert_close(got[k], want[k])
    poly = curves.Polyline(w1, w2, bends=3)
    with torch.no_grad():
        for b in poly.bends:
            for p in b.values():
                p.add_(1.0)
    for j, t in enumerate((0.25, 0.5, 0.75)):  # a polyline passes through its bends at t = j/(k+1)
        for k in w1:
            torch.testing.assert_close(poly.weights(t)[k], poly.bend_weights()[j][k])
    for t, w in ((0.0, w1), (1.0, w2)):
        for k in w1:
            torch.testing.assert_close(poly.weights(t)[k], w[k])


def test_vmapped_evaluation_equals_a_plain_loop(pair):
    problem = connect_problem.load_problem(["a@200", "b@300"], pair, device="cpu")
    w1, w2 = problem.ends[0].weights, problem.ends[1].weights
    curve = curves.Bezier(w1, w2, bends=1)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for p in curve.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    assert connect_evaluate.vectorize_on(problem.device, problem.split, problem.arch)  # smoke on a CPU: vmap
    res = connect_evaluate.evaluate_curve(problem, curve, points=6)
    ts = res["t"]
    idx = [1, 2, 4]
    assert_rows_match(res, reference(problem, [curve.weights(ts[i]) for i in idx]), idx)
    t = torch.linspace(0, 1, 6)
    looped = connect_evaluate.evaluate_points(problem.model, problem.split, lambda i, j: curve.weights_batch(t[i:j]), 6,
                                     problem.wd, batch_size=problem.cfg.train.batch_size, vectorize=False)
    for k, v in looped.items():
        assert v == pytest.approx(res[k], rel=1e-4, abs=1e-5), k


def test_fitted_polyline_beats_the_segment(pair, tmp_path):
    fit = connect_fit.FitSettings(steps=40, lr=3e-3, t_per_step=2, batch_size=128)
    seg = connect_job.run_connect("a@300", "b@300", pair, "segment", points=7, out=tmp_path, device="cpu",
                              grad_norm=False)
    poly = connect_job.run_connect("a@300", "b@300", pair, "polyline", bends=1, points=7, fit_settings=fit,
                               out=tmp_path, device="cpu", grad_norm=False)
    assert poly["summary"]["train_loss"]["mean"] < 0.8 * seg["summary"]["train_loss"]["mean"]
    assert poly["fit_history"][-1]["objective"] < poly["fit_history"][0]["objective"]
    for k in ("start", "end"):  # the fit leaves the ends where they are
        assert poly["summary"]["train_loss"][k] == pytest.approx(seg["summary"]["train_loss"][k], rel=1e-5)
    assert poly["inputs"]["fit"]["wd"] == 0.0  # AdamW runs: decoupled decay, no L2 in the fit
    bend = poly["bend_files"][0]
    w, _ = checkpoint.load_weights(bend, problem_arch(pair))
    assert set(w) == set(checkpoint.load_weights(refs.resolve_checkpoint("a@300", pair))[0])


def problem_arch(root):
    return checkpoint.read_arch(refs.resolve_checkpoint("a@300", root))


def test_chain_passes_through_every_checkpoint_between(pair, tmp_path):
    r = connect_job.run_connect("a@100", "a@300", pair, "chain", points=5, out=tmp_path, device="cpu",
                            grad_norm=False)
    steps = [s for s, _ in runs.open_run(pair, "a").checkpoints() if 100 <= s <= 300]
    assert r["knot_steps"] == steps and 200 in steps and len(steps) >= 3
    m = len(steps) - 1
    assert r["knots"] == [j / m for j in range(m + 1)]
    assert (len(r["data"]["t"]) - 1) % m == 0 and len(r["data"]["t"]) >= 5  # every knot is a point
    problem = connect_problem.load_problem([f"a@{s}" for s in steps], pair, device="cpu")
    ref = reference(problem, [e.weights for e in problem.ends])
    for j in range(m + 1):
        i = j * (len(r["data"]["t"]) - 1) // m
        assert r["data"]["train_loss"][i] == pytest.approx(ref[j]["train_loss"], rel=1e-4)
    with pytest.raises(ConfigError, match="same run"):
        connect_job.run_connect("a@100", "b@300", pair, "chain", out=tmp_path, device="cpu")


def test_results_are_saved_with_their_inputs_and_listed(pair):
    r = connect_job.run_connect("a@100", "a@200", pair, "segment", points=4, device="cpu")
    path = pair / "a" / "connect" / "segment-100-200.json"
    assert r["path"] == str(path) and path.is_file()
    saved = connect_results.load_result(path)
    assert saved["inputs"]["endpoints"][0]["ref"] == "a@100" and saved["inputs"]["points"] == 4
    assert saved["inputs"]["wd"] == 1.0 and saved["data"]["t"] == r["data"]["t"]
    with open(path.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and float(rows[-1]["t"]) == 1.0
    assert float(rows[0]["train_err"]) == pytest.approx(r["data"]["train_err"][0], rel=1e-6)
    assert any(x["name"] == "segment-100-200" for x in connect_results.list_results(pair / "a"))


def test_wd_override_and_bare_paths_need_a_config(pair, tmp_path):
    p1, p2 = (str(refs.resolve_checkpoint(r, pair)) for r in ("a@100", "a@200"))
    bare = tmp_path / "bare"
    bare.mkdir()
    for i, p in enumerate((p1, p2)):
        (bare / f"w{i}.safetensors").write_bytes(open(p, "rb").read())
    refs = [str(bare / "w0.safetensors"), str(bare / "w1.safetensors")]
    with pytest.raises(ConfigError, match="data split"):
        connect_problem.load_problem(refs, pair)
    cfg = resolve("smoke", overrides={"device": "cpu"})
    problem = connect_problem.load_problem(refs, pair, wd=0.5, cfg=cfg)
    assert problem.wd == 0.5 and problem.home is None
    assert connect_fit.fit_wd(problem, connect_fit.FitSettings()) == 0.0  # AdamW: decoupled decay, no L2 in the fit
    sgd = resolve("smoke", overrides={"optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-3})
    problem = connect_problem.load_problem(refs, pair, cfg=sgd)
    assert problem.wd == 1e-3 and connect_fit.fit_wd(problem, connect_fit.FitSettings()) == 1e-3  # seed 001: L2
    assert connect_fit.fit_wd(problem, connect_fit.FitSettings(wd=0.25)) == 0.25
    wider = resolve("smoke", overrides={"d_model": 128})
    with pytest.raises(CheckpointError, match="does not fit this model"):
        connect_problem.load_problem(refs, pair, cfg=wider)


def test_bad_inputs_raise_one_clear_sentence(pair, tmp_path):
    other = model.Arch(vocab=33, seq_len=2, n_classes=31, layers=1, d_model=32, heads=4)
    wrong = checkpoint.save(tmp_path, 1, model.build(other, 0), other, {}, [])
    with pytest.raises(CheckpointError, match="does not fit this model"):
        connect_problem.load_problem(["a@300", str(wrong)], pair)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt"):
        connect_problem.load_problem(["a@300", str(bad)], pair)
    # the right architecture in the metadata, a tensor of another shape inside
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = refs.resolve_checkpoint("a@300", pair)
    with safe_open(str(src), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors["head.weight"] = tensors["head.weight"][:5, :5].clone()
    reshaped = tmp_path / "reshaped.safetensors"
    save_file(tensors, str(reshaped), metadata=meta)
    with pytest.raises(CheckpointError, match="head.weight is"):
        connect_problem.load_problem(["a@300", str(reshaped)], pair)
    with pytest.raises(ConfigError, match="wd must be a number"):
        connect_problem.load_problem(["a@300", "a@100"], pair, wd=float("nan"))
    with pytest.raises(ConfigError, match="1 to 64 bends"):
        connect_job.run_connect("a@100", "a@300", pair, "polyline", bends=100000)
    with pytest.raises(ConfigError, match="no run 'nope'"):
        connect_problem.load_problem(["a@300", "nope@1"], pair)
    with pytest.raises(CheckpointError, match="has not grokked"):
        connect_problem.load_problem(["a@300", "a@grokked"], pair)
    with pytest.raises(ConfigError, match="unknown curve"):
        connect_job.run_connect("a@100", "a@300", pair, "spline")
    other_runs = tmp_path / "runs"
    for name in ("a", "b"):
        shutil.copytree(pair / name, other_runs / name, ignore=shutil.ignore_patterns("connect"))
    toml = other_runs / "b" / "config.toml"
    toml.write_text(toml.read_text().replace('op = "x+y"', 'op = "x-y"'))
    with pytest.raises(ConfigError, match="different tasks"):
        connect_problem.load_problem(["a@300", "b@300"], other_runs)
    toml.write_text(toml.read_text().replace('op = "x-y"', 'op = "x+y"').replace('tokens = "ab"', 'tokens = "aob="'))
    with pytest.raises(ConfigError, match=r"\(tokens aob=\), but the first checkpoint's run learns .*\(tokens ab\)"):
        connect_problem.load_problem(["a@300", "b@300"], other_runs)
    toml.write_text(toml.read_text().replace('tokens = "aob="', 'tokens = "ab"'))
    toml.write_text(toml.read_text().replace("train_frac = 0.6", "train_frac = 0.5"))
    assert "another train/val split" in connect_problem.load_problem(["a@300", "b@300"], other_runs).notes[0]


def test_cancel_event_stops_the_work(pair):
    problem = connect_problem.load_problem(["a@100", "a@300"], pair, device="cpu")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(connect_problem.Cancelled):
        connect_evaluate.evaluate_curve(problem, curves.Segment(*(e.weights for e in problem.ends)), cancel=cancel)
    with pytest.raises(connect_problem.Cancelled):
        connect_fit.fit(problem, curves.Polyline(*(e.weights for e in problem.ends)), connect_fit.FitSettings(steps=5),
                    cancel=cancel)


# --- the command --------------------------------------------------------------------------------

def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_connect_command_prints_a_table_and_saves(pair, tmp_path):
    res = invoke("connect", "a@100", "a@300", "--points", "5", "--runs-dir", pair, "--out", tmp_path,
                 "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "saved" in res.output
    saved = json.loads((tmp_path / "segment-100-300.json").read_text())
    assert len(saved["data"]["grad_norm"]) == 5
    # the table shows the cross-entropy, as the app does, and the L2 term apart (not CE + L2 alone)
    head = next(ln for ln in res.output.splitlines() if "train CE" in ln)
    assert head.split() == ["t", "train", "CE", "val", "CE", "L2", "wd/2·‖w‖²", "train", "err", "val", "err",
                            "grad", "norm"]
    first = res.output.splitlines()[res.output.splitlines().index(head) + 1].split()
    d = saved["data"]
    assert first[1:4] == [f"{d['train_loss'][0]:.4g}", f"{d['val_loss'][0]:.4g}",
                          f"{d['train_loss_l2'][0] - d['train_loss'][0]:.4g}"]
    res = invoke("connect", "a@300", "b@300", "--curve", "polyline", "--fit-steps", "3", "--points", "3",
                 "--no-grad-norm", "--runs-dir", pair, "--out", tmp_path, "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["name"] == "polyline1-300-b.300" and r["inputs"]["fit"]["steps"] == 3


@pytest.mark.parametrize("args,needle", [
    (["a@300", "nope@1"], "no run 'nope'"),
    (["a@300", "a@grokked"], "has not grokked"),
    (["a@300", "a@7"], "no checkpoint at step 7"),
    (["a@300", "a@soon"], "must name a step"),
    (["a@300", "missing.safetensors"], "does not exist"),
    (["a@100", "a@300", "--curve", "spline"], "unknown curve"),
    (["a@100", "b@300", "--curve", "chain"], "same run"),
    (["a@100", "a@300", "--curve", "polyline", "--fit-optimizer", "lbfgs"], "adam or sgd"),
    (["a@100", "a@300", "--points", "1"], "points must be in [2, 10000]"),
    (["a@100", "a@300", "--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
])
def test_connect_command_errors_exit_2(pair, args, needle):
    res = invoke("connect", *args, "--runs-dir", pair)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert res.output.startswith("error:")  # one sentence, no blank line of a progress bar before it


def test_connect_command_mismatch_and_corrupt(pair, tmp_path):
    other = model.Arch(vocab=33, seq_len=2, n_classes=31, layers=2, d_model=64, heads=4)
    wrong = checkpoint.save(tmp_path, 1, model.build(other, 0), other, {}, [])
    res = invoke("connect", "a@300", wrong, "--runs-dir", pair)
    assert res.exit_code == 2 and "does not fit this model" in res.output
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 5)
    res = invoke("connect", "a@300", bad, "--runs-dir", pair)
    assert res.exit_code == 2 and "corrupt" in res.output


def _lines(path):
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def test_progress_file_has_done_total_eta_then_the_outcome(pair, tmp_path):
    """How the app follows its child: progress lines with an ETA, then the result's path or the sentence."""
    prog = tmp_path / "p" / "job.progress.jsonl"
    res = invoke("connect", "a@300", "b@300", "--curve", "polyline", "--fit-steps", "40", "--points", "3",
                 "--no-grad-norm", "--runs-dir", pair, "--out", tmp_path, "--device", "cpu", "--progress-file", prog)
    assert res.exit_code == 0, res.output
    lines = _lines(prog)
    fits = [ln for ln in lines if ln.get("stage") == "fit"]
    assert fits[-1]["done"] == fits[-1]["total"] == 40 and fits[-1]["eta_s"] == 0
    assert all(set(ln) == {"stage", "done", "total", "elapsed_s", "eta_s"} for ln in lines[:-1])
    assert lines[-1] == {"status": "finished", "path": str(tmp_path / "polyline1-300-b.300.json")}
    res = invoke("landscape", "a@300", "--points", "1", "--runs-dir", pair, "--progress-file", prog)
    assert res.exit_code == 2
    assert _lines(prog) == [{"status": "failed", "error": "points must be in [2, 10000] in 1-D, got 1."}]


def test_sigterm_cancels_a_job_with_a_sentence(pair, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    prog = tmp_path / "job.progress.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "grok_tui", "connect", "a@300", "b@300", "--curve", "polyline",
                             "--fit-steps", "10000000", "--runs-dir", str(pair), "--out", str(tmp_path), "--device",
                             "cpu", "--threads", "1", "--progress-file", str(prog)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        t0 = time.monotonic()
        while not (prog.is_file() and "fit" in prog.read_text()):
            assert time.monotonic() - t0 < 120 and proc.poll() is None, "the fit's first progress line"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 130
        assert "cancelled." in proc.stderr.read()
        assert _lines(prog)[-1] == {"status": "cancelled", "error": "cancelled."}
        assert not list(tmp_path.glob("*.json"))  # nothing saved
    finally:
        proc.kill()
        proc.wait()


def test_a_result_name_is_never_replaced_silently(pair, tmp_path):
    """--name X twice is refused (the first result stays); an unnamed result of the same curve gets -2."""
    args = ["a@100", "a@300", "--points", "3", "--no-grad-norm", "--runs-dir", pair, "--out", tmp_path, "--device", "cpu"]
    assert invoke("connect", *args, "--name", "mine").exit_code == 0
    first = (tmp_path / "mine.json").read_bytes()
    res = invoke("connect", *args, "--name", "mine")
    assert res.exit_code == 2 and "a result named 'mine' exists already" in res.output, res.output
    assert (tmp_path / "mine.json").read_bytes() == first
    assert invoke("connect", *args).exit_code == 0 and invoke("connect", *args).exit_code == 0
    assert (tmp_path / "segment-100-300.json").is_file() and (tmp_path / "segment-100-300-2.json").is_file()


def test_a_diverged_fit_fails_with_its_sentence_and_json_is_strict(pair, tmp_path, monkeypatch):
    args = ["a@100", "a@300", "--runs-dir", pair, "--out", tmp_path, "--device", "cpu", "--no-grad-norm"]
    res = invoke("connect", *args, "--curve", "polyline", "--fit-steps", "5", "--fit-lr", "1e30",
                 "--fit-optimizer", "sgd", "--points", "3")
    assert res.exit_code == 1 and "diverged" in res.output and "Traceback" not in res.output, res.output
    assert not list(tmp_path.glob("polyline*"))
    # a result with a non-finite value (a loss that overflowed at one point, say) prints as strict JSON
    real = connect_job.evaluate_curve

    def one_nan(*a, **k):
        res = real(*a, **k)
        res["val_loss"][1] = float("nan")
        return res

    monkeypatch.setattr(connect_job, "evaluate_curve", one_nan)
    res = invoke("connect", *args, "--points", "3", "--json")
    assert res.exit_code == 0, res.output
    printed = json.loads(res.output, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert printed["data"]["val_loss"][1] is None
