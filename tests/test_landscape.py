"""Random-direction projections and the plane through three checkpoints, and the `landscape` command."""

import json

import pytest
import torch
from typer.testing import CliRunner

from grok_tui.cli.main import app
from grok_tui.connect import landscape
from grok_tui.connect import problem as connect_problem
from grok_tui.errors import ConfigError
from grok_tui.train import metrics, model

runner = CliRunner()


def loss_at(problem, w):
    m = model.build(problem.arch)
    m.load_state_dict(w)
    tl, ta = metrics.loss_acc(m, problem.split.train_x, problem.split.train_y)
    return float(tl), 1 - float(ta)


def test_directions_are_filter_normalised(smoke_pair):
    w = connect_problem.load_problem(["a@300"], smoke_pair, device="cpu").ends[0].weights
    d = landscape.random_direction(w, seed=3)
    for k, v in w.items():
        if v.dim() <= 1:
            assert torch.count_nonzero(d[k]) == 0  # biases and gains stay put
        else:
            rows_w = v.reshape(v.shape[0], -1).norm(dim=1)
            rows_d = d[k].reshape(v.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(rows_d, rows_w, rtol=1e-4, atol=1e-6)
    d2 = landscape.random_direction(w, seed=3)
    assert all(torch.equal(d[k], d2[k]) for k in w)  # seeded
    assert not torch.equal(d["head.weight"], landscape.random_direction(w, seed=4)["head.weight"])


def test_1d_and_2d_centres_equal_the_checkpoint(smoke_pair, tmp_path):
    problem = connect_problem.load_problem(["a@300"], smoke_pair, device="cpu")
    loss, err = loss_at(problem, problem.ends[0].weights)
    r1 = landscape.landscape("a@300", smoke_pair, dims=1, span=0.5, points=5, out=tmp_path, device="cpu")
    assert r1["data"]["alpha"] == pytest.approx([-0.5, -0.25, 0, 0.25, 0.5])
    assert r1["data"]["train_loss"][2] == pytest.approx(loss, rel=1e-4)
    assert r1["data"]["train_err"][2] == pytest.approx(err, abs=1e-6)
    assert max(r1["data"]["train_loss"]) > loss  # a trained point sits in a valley
    r2 = landscape.landscape("a@300", smoke_pair, dims=2, span=0.5, points=3, out=tmp_path, device="cpu")
    assert len(r2["data"]["train_loss"]) == 9 and r2["data"]["alpha"][4] == 0 and r2["data"]["beta"][4] == 0
    assert r2["data"]["train_loss"][4] == pytest.approx(loss, rel=1e-4)
    assert (tmp_path / "landscape2d-300.csv").read_text().splitlines()[0].startswith("alpha,beta,train_loss")
    # one point of the 1-D line, recomputed by hand
    d = landscape.random_direction(problem.ends[0].weights, seed=0)
    w = {k: v + 0.25 * d[k] for k, v in problem.ends[0].weights.items()}
    assert r1["data"]["train_loss"][3] == pytest.approx(loss_at(problem, w)[0], rel=1e-4)


def test_plane_through_three_checkpoints(smoke_pair, tmp_path):
    refs = ["a@100", "a@300", "b@300"]
    r = landscape.plane(refs, smoke_pair, points=5, margin=0.0, out=tmp_path, device="cpu")
    problem = connect_problem.load_problem(refs, smoke_pair, device="cpu")
    marks = [m["xy"] for m in r["marks"]]
    assert marks[0] == [0.0, 0.0] and marks[1][1] == 0.0 and marks[2][1] > 0
    dist = sum(float((problem.ends[1].weights[k] - problem.ends[0].weights[k]).pow(2).sum())
               for k in problem.ends[0].weights) ** 0.5
    assert marks[1][0] == pytest.approx(dist, rel=1e-5)
    data = r["data"]
    for e, (x, y) in zip(problem.ends, marks, strict=True):  # grid points at the marks (where they are corners)
        hits = [i for i in range(len(data["alpha"]))
                if abs(data["alpha"][i] - x) < 1e-3 * dist and abs(data["beta"][i] - y) < 1e-3 * dist]
        if hits:
            assert data["train_loss"][hits[0]] == pytest.approx(loss_at(problem, e.weights)[0], rel=1e-3)
    assert any(abs(a) < 1e-9 and abs(b) < 1e-9 for a, b in zip(data["alpha"], data["beta"], strict=True))
    with pytest.raises(ConfigError, match="one line"):
        landscape.plane(["a@100", "a@300", "a@100"], smoke_pair, points=3, device="cpu")


def test_landscape_command(smoke_pair, tmp_path):
    res = runner.invoke(app, ["landscape", "a@300", "--points", "5", "--runs-dir", str(smoke_pair),
                              "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "alpha" in res.output and "saved" in res.output
    res = runner.invoke(app, ["landscape", "a@100", "--through", "a@300", "--through", "b@300", "--points", "3",
                              "--runs-dir", str(smoke_pair), "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["kind"] == "plane"
    for args, needle in ((["a@300", "--dims", "3"], "dims must be 1 or 2"),
                         (["a@300", "--through", "b@300"], "--through takes two checkpoints"),
                         (["nope@last"], "no run 'nope'"),
                         (["a@grokked"], "has not grokked")):
        res = runner.invoke(app, ["landscape", *args, "--runs-dir", str(smoke_pair)])
        assert res.exit_code == 2, res.output
        assert needle in res.output and "Traceback" not in res.output
