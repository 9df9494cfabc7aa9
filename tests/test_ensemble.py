"""The ensemble trainer equals the single-run trainer member by member (CPU, with a tolerance)."""

import pytest
import torch

from grok_tui.report import Reporter
from grok_tui.spec import config
from grok_tui.spec.resolve import resolve
from grok_tui.store import refs, runs
from grok_tui.sweep import group
from grok_tui.sweep import plan as sweep
from grok_tui.sweep import run as sweep_run
from grok_tui.train import checkpoint, data, ensemble, metrics, model
from grok_tui.train import trainer as train
from grok_tui.train.order import DataOrder
from grok_tui.train.prepare import resume_paths
from grok_tui.train.vecoptim import VecOptimizer


def _member_cfgs(base, variants):
    return [config.apply_overrides(base, v) for v in variants]


@pytest.fixture
def base():
    return resolve("smoke", overrides={"steps": 30, "eval_every": 10, "checkpoint_every": 0, "device": "cpu"})


def _compare(ens_rows, single_rows, keys=("train_loss", "val_loss", "weight_norm", "grad_norm", "weight_norm.attn",
                                          "grad_norm.head", "eff_lr", "eff_grad_norm.mlp", "sgn", "sgn.embed"),
             rel=2e-4):
    assert [r["step"] for r in ens_rows] == [r["step"] for r in single_rows]
    for a, b in zip(ens_rows, single_rows, strict=True):
        assert set(a) == set(b)
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-9)
        assert a["epoch"] == b["epoch"]
        for k in keys:
            if k not in a:
                continue
            assert a[k] == pytest.approx(b[k], rel=rel, abs=1e-5), (k, a["step"])
        for k in ("train_acc", "val_acc"):
            assert a[k] == pytest.approx(b[k], abs=3e-3), (k, a["step"])


def _single_rows(cfg, path):
    w = runs.RunWriter(path, cfg)
    try:
        train.run_training(cfg, w)
    finally:
        w.close()
    return runs.read_jsonl(path / "metrics.jsonl")


@pytest.mark.parametrize("variants", [
    # seeds of one train ratio (sliced batches), AdamW and Adam mixed, a cool-down on one member
    [{"seed": 0}, {"seed": 1, "optimizer": "adam", "weight_decay": 0.01},
     {"seed": 2, "lr": 1e-3, "beta2": 0.99, "cooldown": "linear", "cooldown_steps": 10}],
    # different train ratios and split seeds (padded, masked batches); SGD with and without (Nesterov) momentum
    [{"seed": 0, "optimizer": "sgd", "lr": 0.05, "train_frac": 0.5},
     {"seed": 3, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "train_frac": 0.6, "data_seed": 7},
     {"seed": 4, "optimizer": "sgd", "lr": 0.1, "momentum": 0.5, "weight_decay": 0.1, "train_frac": 0.45}],
    # the scale-invariant model with the StableMax loss
    [{"seed": 0, "scale_invariant": True, "loss": "stablemax"},
     {"seed": 1, "scale_invariant": True, "loss": "stablemax", "train_frac": 0.5}],
], ids=["adam-family", "sgd-mixed-ratios", "scale-invariant-stablemax"])
def test_members_equal_single_runs(base, variants, tmp_path):
    cfgs = _member_cfgs(config.apply_overrides(base, {"sgn_every": 2}), variants)
    members = [sweep.Member(i, f"e-{i:03d}", c, v) for i, (c, v) in enumerate(zip(cfgs, variants, strict=True))]
    out = group.run_ensemble(members, tmp_path, "e")
    assert all(s["status"] == "finished" for s in out.values())
    for i, c in enumerate(cfgs):
        single = _single_rows(c, tmp_path / f"single-{i}")
        rows = runs.read_jsonl(tmp_path / f"e-{i:03d}" / "metrics.jsonl")
        assert "sgn" in rows[1] and "eff_grad_norm" in rows[0]  # step 20: an sgn evaluation
        # the scale-invariant model's gradients scale as 1/|w|: rounding differences grow a little faster
        _compare(rows, single, rel=2e-3 if c.model.scale_invariant else 2e-4)


def test_one_data_order_for_runs_and_members(base):
    """Every step takes a full batch; the batches are the stream of per-epoch permutations (each epoch
    covers the train set once, its last batch wrapping into the next epoch); the trainer draws exactly
    the order's rows; state_after + restore continue the same stream (resume is exact)."""
    cfg = config.apply_overrides(base, {"train_frac": 0.45, "batch_size": 100, "seed": 5})
    tr = train.Trainer(cfg)
    n = tr.split.n_train
    assert n % 100 != 0
    order = DataOrder(n, 100, 5, torch.device("cpu"))
    steps = -(-3 * n // 100)  # enough steps to cover three epochs
    rows = order.rows(0, steps)
    assert rows.shape == (steps, 100)
    stream = rows.flatten()
    for e in range(3):
        assert torch.equal(stream[e * n:(e + 1) * n].sort().values, torch.arange(n))
    model, drawn = tr.forward, []
    tr.forward = lambda x: (drawn.append(x.clone()), model(x))[1]  # what each train_step feeds the model
    for _ in range(steps):
        tr.train_step()
    assert tr.step == len(drawn) == steps
    for s, x in enumerate(drawn):
        assert torch.equal(x, tr.split.train_x[rows[s]])
    for at in (1, 7, n // 100):  # inside an epoch, and at the step whose batch wraps
        tensors, extra = order.state_after(at)
        other = DataOrder(n, 100, 123, torch.device("cpu"))
        other.restore(at, tensors, extra)
        assert torch.equal(other.rows(at, steps - at), rows[at:])
    with pytest.raises(ValueError):
        DataOrder(n + 1, 100, 5, torch.device("cpu")).restore(7, tensors, extra)
    small = DataOrder(40, 100, 0, torch.device("cpu"))  # a train set smaller than the batch: full batches
    assert small.rows(0, 3).shape == (3, 40)


@pytest.mark.parametrize("name,kw", [("adamw", {"weight_decay": 0.5}), ("adam", {"weight_decay": 0.1}),
                                     ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01})])
def test_vectorised_step_matches_torch(base, name, kw):
    cfg = config.apply_overrides(base, {"optimizer": name, "lr": 0.01, **kw})
    torch.manual_seed(0)
    p0 = torch.randn(1, 50)
    p = p0.clone()
    vec = VecOptimizer([cfg], p)
    ref = torch.nn.Parameter(p0[0].clone())
    opt = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]
    args = ({"betas": (cfg.optim.beta1, cfg.optim.beta2), "eps": cfg.optim.eps} if name != "sgd"
            else {"momentum": 0.9, "nesterov": True})
    topt = opt([ref], lr=0.01, weight_decay=kw["weight_decay"], foreach=True, **args)
    for _ in range(5):
        g = torch.randn(50)
        ref.grad = g.clone()
        topt.step()
        vec.step(p, g.view(1, -1), torch.tensor([[0.01]], dtype=torch.float64))
    torch.testing.assert_close(p[0], ref.detach(), rtol=1e-6, atol=1e-7)


def test_member_checkpoints_load_into_a_plain_model_and_resume(base, tmp_path):
    cfg = config.apply_overrides(base, {"steps": 40, "checkpoint_every": 20, "optimizer": "adamw"})
    p = sweep.plan(cfg, {"seed": [0, 1]}, tmp_path, name="c")
    sweep_run.run_sweep(p, tmp_path)
    run = runs.open_run(tmp_path, "c-001")
    assert run.summary["sweep"] == "c" and run.status == "finished"
    assert [s for s, _ in run.checkpoints()] == [20, 40]
    # the final weights are a plain Transformer's, and give the accuracies of the last row
    m = model.build(model.arch_from_config(run.config), seed=123)
    checkpoint.load_into(m, refs.resolve_checkpoint("c-001@last", tmp_path), model.arch_from_config(run.config))
    split = data.build_from_config(run.config)
    ev = metrics.to_host(metrics.evaluate(m, split))
    last = run.metrics()[-1]
    assert ev["val_acc"] == pytest.approx(last["val_acc"], abs=1e-6)
    assert ev["train_loss"] == pytest.approx(last["train_loss"], rel=1e-4)
    # `run --resume` of a member stopped at step 20 continues the same curve as the uninterrupted member
    p20 = sweep.plan(cfg, {"seed": [1]}, tmp_path, name="half")
    m20 = p20.members[0]
    control = train.Control()
    out = group.run_ensemble([m20], tmp_path, "half", [_StopAt(control, 20)], control)
    assert out["half-000"]["status"] == "stopped"
    weights, state = resume_paths(tmp_path / "half-000")
    assert state.name == "step-00000020.state.json"
    w = runs.RunWriter(tmp_path / "half-000", m20.cfg, resume=True)
    try:
        train.run_training(m20.cfg, w, resume_from=(weights, state))
    finally:
        w.close()
    resumed = runs.open_run(tmp_path, "half-000").metrics()
    _compare([r for r in resumed if r["step"] > 20], [r for r in run.metrics() if r["step"] > 20])


class _StopAt(Reporter):
    """Asks the loop to stop once it reports `step` (checked between steps, like SIGINT)."""

    def __init__(self, control, step):
        self.control, self.step = control, step

    def on_progress(self, index, step):
        if step >= self.step:
            self.control.stop.set()


@pytest.mark.parametrize("over", [{}, {"layers": 2, "norm": "none", "tokens": "aob=", "heads": 2},
                                  {"scale_invariant": True, "layers": 2}])
def test_batched_forward_equals_vmap_and_the_plain_model(base, over):
    cfg = config.apply_overrides(base, over)
    ens = ensemble.Ensemble([config.apply_overrides(cfg, {"seed": s}) for s in range(3)], torch.device("cpu"))
    assert ens.batched  # the self-check passed: the hand-batched forward is the one in use
    x = ens.table_x[:40]
    fast = ens.forward(x, shared_x=True)
    ens.batched = False  # the same forward through the functional_call + vmap path
    torch.testing.assert_close(fast, ens.forward(x, shared_x=True), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast[1], ens.member_model(1)(x), rtol=1e-5, atol=1e-5)


def test_vmap_path_trains_like_single_runs(base, tmp_path):
    cfgs = [config.apply_overrides(base, {"seed": s, "steps": 10, "eval_every": 5}) for s in (0, 1)]
    ens = ensemble.Ensemble(cfgs, torch.device("cpu"))
    ens.batched = False  # the functional_call + vmap path (used for models the batched forward does not know)
    trainers = [train.Trainer(c) for c in cfgs]
    for _ in range(10):
        ens.train_step()
        for t in trainers:
            t.train_step()
    ev = metrics.to_host({f"{k}.{i}": v[i] for k, v in ens.evaluate().items() for i in range(2)})
    for i, t in enumerate(trainers):
        row = t.eval_rows({}, 0.0)[0]
        assert ev[f"train_loss.{i}"] == pytest.approx(row["train_loss"], rel=1e-4)
        assert ev[f"weight_norm.{i}"] == pytest.approx(row["weight_norm"], rel=1e-5)


@pytest.mark.parametrize("name", ["adamw", "adam"])
def test_fused_step_is_torchs_fused_step(base, name):
    cfgs = [config.apply_overrides(base, {"optimizer": name, "lr": 0.01, "weight_decay": wd}) for wd in (0.5, 0.1)]
    torch.manual_seed(0)
    p0 = torch.randn(2, 50)
    p = p0.clone()
    vec = VecOptimizer(cfgs, p)
    assert vec.fused is not None and len(vec.fused) == 2  # two weight decays: two kernel calls a step
    refs = [torch.nn.Parameter(p0[k].clone()) for k in range(2)]
    opt_cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    opts = [opt_cls([r], lr=0.01, betas=(0.9, 0.98), eps=1e-8, weight_decay=wd, fused=True)
            for r, wd in zip(refs, (0.5, 0.1), strict=True)]
    for _ in range(4):
        g = torch.randn(2, 50)
        for k in range(2):
            refs[k].grad = g[k].clone()
            opts[k].step()
        vec.step(p, g, torch.full((2, 1), 0.01, dtype=torch.float64), [0.01, 0.01])
    for k in range(2):
        assert torch.equal(p[k], refs[k].detach())


def test_one_members_io_failure_stays_with_that_member(base, tmp_path, monkeypatch):
    """A member whose run directory stops taking writes fails with its sentence; the others go on (as a
    member with a NaN loss does)."""
    import errno

    real = runs.RunWriter.metrics

    def metrics(self, row):
        if self.run_id == "io-000" and row["step"] >= 20:
            raise PermissionError(errno.EACCES, "Permission denied", str(self.path / "metrics.jsonl"))
        return real(self, row)

    monkeypatch.setattr(runs.RunWriter, "metrics", metrics)
    cfgs = _member_cfgs(base, [{"seed": 0}, {"seed": 1}])
    members = [sweep.Member(i, f"io-{i:03d}", c, {}) for i, c in enumerate(cfgs)]
    out = group.run_ensemble(members, tmp_path, "io")
    assert out["io-000"]["status"] == "failed" and "cannot write the run directory" in out["io-000"]["error"]
    assert out["io-000"]["steps_run"] == 20 and out["io-001"]["status"] == "finished"
    assert runs.open_run(tmp_path, "io-000").status == "failed"
    other = runs.open_run(tmp_path, "io-001")
    assert other.status == "finished" and other.metrics()[-1]["step"] == base.train.steps
