"""The optimizer zoo: one step against each algorithm, training the smoke preset, errors, resume."""

import copy
import math

import pytest
import torch
from helpers import train_run

from grok_tui.errors import ConfigError
from grok_tui.optim import registry as optim
from grok_tui.optim.agd import AGD
from grok_tui.optim.base import Composite
from grok_tui.optim.grokfast import Grokfast
from grok_tui.optim.orthograd import OrthoGrad
from grok_tui.report import Reporter
from grok_tui.spec import config
from grok_tui.spec.optimizers import OPTIMIZERS
from grok_tui.spec.resolve import resolve
from grok_tui.train import losses, metrics
from grok_tui.train import trainer as train
from grok_tui.train.model import Arch, build
from grok_tui.train.prepare import resume_paths

ZOO = ("lion", "glion", "prodigy", "sfadamw", "muon", "agd", "orthoadamw")


def _model(**kw):
    return build(Arch(vocab=9, seq_len=2, n_classes=7, layers=1, d_model=16, heads=2, **kw), seed=0)


def _loss(m):
    x = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]])
    return torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 1, 2, 3]))


def _optim(**kw):
    return config.apply_overrides(config.Config(), kw).optim


def _grads(m):
    m.zero_grad()
    _loss(m).backward()
    return {n: p.grad.clone() for n, p in m.named_parameters()}


def test_zoo_is_registered_with_its_fields():
    for name in ZOO:
        assert name in OPTIMIZERS
    fields = set(config.field_specs())
    for spec in OPTIMIZERS.values():
        assert set(spec.fields) <= fields, spec.name
    assert "lion_beta2" in OPTIMIZERS["lion"].fields
    assert {"muon_lr", "muon_momentum", "muon_ns_steps"} <= set(OPTIMIZERS["muon"].fields)


def test_lion_step_is_the_algorithm():
    """Seed 000, algorithm 2: c = b1 m + (1-b1) g; θ -= η (sign(c) + λ θ); m = b2 m + (1-b2) g."""
    o = _optim(optimizer="lion", lr=0.01, weight_decay=0.5, lion_beta1=0.8, lion_beta2=0.95)
    m = _model()
    ref = {n: p.detach().clone() for n, p in m.named_parameters()}
    mom = {n: torch.zeros_like(p) for n, p in ref.items()}
    opt = optim.build(m, o)
    for _ in range(3):
        g = _grads(m)
        opt.step()
        for n in ref:
            c = 0.8 * mom[n] + 0.2 * g[n]
            ref[n] = ref[n] - 0.01 * (torch.sign(c) + 0.5 * ref[n])
            mom[n] = 0.95 * mom[n] + 0.05 * g[n]
    for n, p in m.named_parameters():
        torch.testing.assert_close(p, ref[n], msg=n)


def test_group_lion_step_is_its_rule():
    o = _optim(optimizer="glion", lr=0.01, weight_decay=0.5, lion_beta1=0.8, lion_beta2=0.95)
    m = _model()
    ref = {n: p.detach().clone() for n, p in m.named_parameters()}
    mom = {n: torch.zeros_like(p) for n, p in ref.items()}
    opt = optim.build(m, o)
    for _ in range(3):
        g = _grads(m)
        opt.step()
        for n in ref:
            c = 0.8 * mom[n] + 0.2 * g[n]
            rms = c.norm() / math.sqrt(c.numel())
            ref[n] = ref[n] * (1 - 0.01 * 0.5) - 0.01 * c / (rms + 1e-12)
            mom[n] = 0.95 * mom[n] + 0.05 * g[n]
    for n, p in m.named_parameters():
        torch.testing.assert_close(p, ref[n], msg=n)
    # one lr per group: within a tensor the update is parallel to c, with RMS exactly lr (wd 0)
    m2 = _model()
    opt2 = optim.build(m2, _optim(optimizer="glion", lr=0.01, weight_decay=0.0))
    before = {n: p.detach().clone() for n, p in m2.named_parameters()}
    g = _grads(m2)
    opt2.step()
    w = dict(m2.named_parameters())["blocks.0.mlp.fc.weight"]
    delta = before["blocks.0.mlp.fc.weight"] - w.detach()
    assert delta.pow(2).mean().sqrt().item() == pytest.approx(0.01, rel=1e-5)
    torch.testing.assert_close(delta / delta.norm(), g["blocks.0.mlp.fc.weight"] / g["blocks.0.mlp.fc.weight"].norm())


def test_grokfast_filter_is_the_ema_rule():
    m = _model()
    ref = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = Grokfast(torch.optim.SGD(m.parameters(), lr=0.1), alpha=0.9, lamb=2.0)
    ema = {}
    for _ in range(3):
        g = _grads(m)
        opt.step()
        for n in ref:
            ema[n] = g[n].clone() if n not in ema else 0.9 * ema[n] + 0.1 * g[n]
            ref[n] = ref[n] - 0.1 * (g[n] + 2.0 * ema[n])
    for n, p in m.named_parameters():
        torch.testing.assert_close(p, ref[n], msg=n)


def test_grokfast_wraps_any_optimizer_from_the_config():
    m = _model()
    for name in ("adamw", "lion", "muon"):
        opt = optim.build(m, _optim(optimizer=name, grokfast_lambda=2.0))
        assert isinstance(opt, Grokfast)
    assert not isinstance(optim.build(m, _optim(optimizer="adamw")), Grokfast)


def test_orthograd_projects_and_keeps_the_norm():
    m = _model()
    m.zero_grad()
    _loss(m).backward()
    before = {n: p.grad.clone() for n, p in m.named_parameters()}
    OrthoGrad(torch.optim.SGD(m.parameters(), lr=0.0)).filter([p for p in m.parameters()])
    for n, p in m.named_parameters():
        if p.detach().norm() > 0:
            assert torch.dot(p.grad.reshape(-1), p.detach().reshape(-1)).abs() < 1e-5 * p.detach().norm() * p.grad.norm() + 1e-12, n
        torch.testing.assert_close(p.grad.norm(), before[n].norm(), msg=n)
    assert isinstance(optim.build(m, _optim(optimizer="orthoadamw")), OrthoGrad)
    assert isinstance(optim.build(m, _optim(optimizer="sgd", orthograd=True)), OrthoGrad)


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    m = _model()
    opt = optim.build(m, _optim(optimizer="muon"))
    assert isinstance(opt, Composite)
    muon, adamw = opt.parts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    names = {id(p): n for n, p in m.named_parameters()}
    hidden = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    assert hidden == {"blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight", "blocks.0.mlp.fc.weight",
                      "blocks.0.mlp.proj.weight"}
    rest = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert {"tok_emb.weight", "pos_emb.weight", "head.weight", "head.bias", "blocks.0.ln1.weight"} <= rest
    assert len(hidden) + len(rest) == len(list(m.parameters()))


def test_agd_initialises_orthogonally_and_steps_by_its_rule():
    m = _model()
    opt = optim.build(m, _optim(optimizer="agd", agd_gain=1.0))
    agd = opt.parts[0]
    assert isinstance(agd, AGD)
    w = dict(m.named_parameters())
    s = torch.linalg.svdvals(w["blocks.0.mlp.fc.weight"].detach())  # 64 x 16: sqrt(64 / 16) = 2
    torch.testing.assert_close(s, torch.full_like(s, 2.0))
    s = torch.linalg.svdvals(w["tok_emb.weight"].detach())  # table 9 x 16 = map 9 -> 16: sqrt(16 / 9)
    torch.testing.assert_close(s, torch.full_like(s, 4 / 3))
    mats = [(n, p) for n, p in m.named_parameters() if p.ndim == 2]
    before = {n: p.detach().clone() for n, p in mats}
    g = _grads(m)
    scales = dict(zip([n for n, _ in mats], agd.param_groups[0]["scales"], strict=True))
    big_g = sum(g[n].norm() * scales[n] for n, _ in mats) / len(mats)
    eta = math.log((1 + math.sqrt(1 + 4 * big_g.item())) / 2)
    opt.step()
    for n, p in mats:
        want = before[n] - eta / len(mats) * scales[n] * g[n] / g[n].norm()
        torch.testing.assert_close(p.detach(), want, msg=n)


def test_stablemax_loss():
    logits = torch.tensor([[2.0, -1.0, 0.0], [-3.0, 0.5, 4.0]])
    y = torch.tensor([0, 2])
    s = torch.where(logits >= 0, logits + 1, 1 / (1 - logits))
    want = -(s[torch.arange(2), y] / s.sum(-1)).log().mean()
    torch.testing.assert_close(losses.stablemax_cross_entropy(logits, y), want)
    big = torch.tensor([[200.0, 0.0, -50.0]])  # softmax rounds to one-hot here, StableMax does not
    assert torch.nn.functional.cross_entropy(big, torch.tensor([0])).item() == 0.0
    assert 0 < losses.stablemax_cross_entropy(big, torch.tensor([0])).item()
    with pytest.raises(ValueError):
        losses.get("hinge")


@pytest.mark.parametrize("setting", [
    {"optimizer": "lion", "lr": 3e-4, "weight_decay": 3.0},
    {"optimizer": "glion", "lr": 3e-4, "weight_decay": 3.0},
    {"optimizer": "prodigy"},
    {"optimizer": "sfadamw"},
    {"optimizer": "muon"},
    {"optimizer": "agd", "agd_gain": 10.0},
    {"optimizer": "adamw", "grokfast_lambda": 2.0},
    {"optimizer": "lion", "lr": 3e-4, "weight_decay": 3.0, "grokfast_lambda": 2.0},
    {"optimizer": "orthoadamw", "loss": "stablemax", "weight_decay": 0.0},
    {"optimizer": "sgd", "lr": 0.3, "orthograd": True},
], ids=lambda s: "-".join(f"{v}" for v in s.values()))
def test_every_optimizer_trains_the_smoke_preset(setting):
    cfg = resolve("smoke", overrides={**setting, "steps": 40, "eval_every": 20, "device": "cpu"})
    t = train.Trainer(cfg)
    first = metrics.to_host(metrics.evaluate(t.model, t.split, t.loss_fn))["train_loss"]
    for _ in range(40):
        t.train_step()
    row = t.eval_rows({}, 0.0)[0]
    assert all(math.isfinite(v) for v in row.values() if isinstance(v, float)), row
    assert row["train_loss"] < first - 0.02, (first, row["train_loss"])


@pytest.mark.parametrize("setting, message", [
    ({"optimizer": "lion", "lion_beta1": 1.5}, "lion_beta1 must be in [0, 1)"),
    ({"optimizer": "glion", "lion_beta2": -0.1}, "lion_beta2 must be in [0, 1)"),
    ({"optimizer": "lion", "lr": 0.5, "weight_decay": 3.0}, "lr * weight decay must be below 1"),
    ({"optimizer": "prodigy", "prodigy_d_coef": 0.0}, "prodigy d coef must be a positive number"),
    ({"optimizer": "muon", "muon_ns_steps": 0}, "muon ns steps must be in [1, 100]"),
    ({"optimizer": "muon", "muon_lr": -1.0}, "muon lr must be a positive number"),
    ({"optimizer": "muon", "muon_momentum": 1.0}, "muon momentum must be in [0, 1)"),
    ({"optimizer": "agd", "agd_gain": 0.0}, "agd gain must be a positive number"),
    ({"grokfast_alpha": 1.0}, "grokfast alpha must be in [0, 1)"),
    ({"grokfast_lambda": -2.0}, "grokfast lambda must be >= 0"),
    ({"loss": "hinge"}, "loss must be ce or stablemax"),
    ({"sgn_every": -1}, "sgn every must be >= 0"),
])
def test_invalid_hyperparameters_get_one_sentence(setting, message):
    with pytest.raises(ConfigError) as e:
        resolve("smoke", overrides=setting)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_every_optimizer_has_one_spec_and_one_builder():
    assert list(OPTIMIZERS) == list(optim.BUILDERS)


def test_muon_on_a_torch_without_it_is_one_sentence(monkeypatch):
    from grok_tui.spec import optimizers

    monkeypatch.setattr(optimizers, "torch_version", lambda: "2.8.1+cpu")
    with pytest.raises(ConfigError, match=r"muon needs torch >= 2.9 \(torch.optim.Muon\); this is torch 2.8.1\+cpu"):
        resolve("smoke", overrides={"optimizer": "muon"})
    monkeypatch.setattr(optimizers, "torch_version", lambda: "2.10.0")
    assert resolve("smoke", overrides={"optimizer": "muon"}).optim.optimizer == "muon"


class Rows(Reporter):
    def __init__(self):
        self.rows = []

    def on_eval(self, run_id, row):
        self.rows.append(row)


@pytest.mark.parametrize("setting", [
    {"optimizer": "lion", "lr": 3e-4, "weight_decay": 3.0},
    {"optimizer": "adamw", "grokfast_lambda": 2.0},
    {"optimizer": "sfadamw"},
    {"optimizer": "muon", "grokfast_lambda": 1.0},
], ids=lambda s: "-".join(f"{v}" for v in s.values()))
def test_resume_equals_straight_run(tiny_cfg, runs_dir, setting):
    """N steps, stop, resume, M more == N+M straight, optimizer (and Grokfast EMA) state included."""
    cfg = config.apply_overrides(tiny_cfg, {**setting, "steps": 40, "checkpoint_every": 0, "eval_every": 10,
                                            "sgn_every": 2})
    straight = Rows()
    train_run(cfg, runs_dir / "straight", reporters=[straight])
    control = train.Control()

    class StopAt(Rows):
        def on_eval(self, run_id, row):
            super().on_eval(run_id, row)
            if row["step"] == 20:
                control.stop.set()

    first = StopAt()
    train_run(cfg, runs_dir / "split", reporters=[first], control=control)
    second = Rows()
    s = train_run(cfg, runs_dir / "split", reporters=[second], resume=True,
               resume_from=resume_paths(runs_dir / "split"))
    assert s["steps_run"] == 40
    got = first.rows + second.rows
    assert [r["step"] for r in got] == [r["step"] for r in straight.rows] == [10, 20, 30, 40]
    for a, b in zip(got, straight.rows, strict=True):
        for key in ("train_loss", "val_loss", "weight_norm", "grad_norm", "eff_lr"):
            assert a[key] == b[key], (a["step"], key)
    assert "sgn" in got[1] and got[1]["sgn"] == straight.rows[1]["sgn"]


def test_wrapped_state_dict_round_trips():
    m = _model()
    o = _optim(optimizer="muon", grokfast_lambda=2.0)
    opt = optim.build(m, o)
    for _ in range(2):
        _grads(m)
        opt.step()
    sd = opt.state_dict()
    assert any("grokfast_ema" in s for s in sd["state"].values())
    assert any("momentum_buffer" in s for s in sd["state"].values())
    m2 = copy.deepcopy(m)
    opt2 = optim.build(m2, o)
    opt2.load_state_dict(copy.deepcopy(sd))
    for a, b in ((m, opt), (m2, opt2)):
        _grads(a)
        b.step()
    for pa, pb in zip(m.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_sync_free_prodigy_is_prodigyopts_algorithm():
    """The tensor port of Prodigy's step follows prodigyopt's within float32 rounding, and its saved
    state is prodigyopt's (d as a number in the param groups), restored exactly."""
    import contextlib
    import copy
    import io

    from prodigyopt import Prodigy

    from grok_tui.optim.prodigy import SyncFreeProdigy

    torch.manual_seed(0)
    m1 = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    m2 = copy.deepcopy(m1)
    kw = {"lr": 1.0, "betas": (0.9, 0.98), "eps": 1e-8, "weight_decay": 0.5, "decouple": True, "d_coef": 1.0}
    with contextlib.redirect_stdout(io.StringIO()):
        ref = Prodigy(m1.parameters(), **kw)
    port = SyncFreeProdigy(m2.parameters(), **kw)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    for _ in range(50):
        for m, o in ((m1, ref), (m2, port)):
            o.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            o.step()
    assert ref.param_groups[0]["d"] > 10 * 1e-6  # d grew from d0: the estimate did its work
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    sd = port.state_dict()
    assert sd["param_groups"][0]["d"] == pytest.approx(ref.param_groups[0]["d"], rel=1e-4)
    m3 = copy.deepcopy(m2)
    again = SyncFreeProdigy(m3.parameters(), **kw)
    again.load_state_dict(copy.deepcopy(sd))
    assert again.state_dict()["param_groups"][0]["d"] == sd["param_groups"][0]["d"]  # saved again as loaded
    for m, o in ((m2, port), (m3, again)):  # and it steps on from there as the optimizer it came from
        o.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        o.step()
    for a, b in zip(m2.parameters(), m3.parameters(), strict=True):
        assert torch.equal(a, b)
