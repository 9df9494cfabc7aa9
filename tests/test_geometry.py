"""Scale-invariant model (seed 000) and the geometry metrics in metrics.jsonl."""

import math

import pytest
import torch

from grok_tui.spec.resolve import resolve
from grok_tui.store import runs
from grok_tui.train import metrics, model
from grok_tui.train import trainer as train


def _arch(si=True, layers=2):
    return model.Arch(vocab=33, seq_len=2, n_classes=31, layers=layers, d_model=32, heads=4, scale_invariant=si)


def _x():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 31, (64, 2), generator=g), torch.randint(0, 31, (64,), generator=g)


@pytest.mark.parametrize("c", [1e-3, 0.1, 0.5, 3.0, 100.0, 1e4])
def test_scale_invariant_model_is_invariant(c):
    m = model.build(_arch(), seed=1)
    x, _ = _x()
    with torch.no_grad():
        want = torch.log_softmax(m(x), -1)
        for p in m.parameters():
            p.mul_(c)
        got = torch.log_softmax(m(x), -1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not any(n.startswith(("blocks.0.ln", "ln_f")) for n, _ in m.named_parameters())


def test_default_model_is_not_scale_invariant():
    m = model.build(_arch(si=False), seed=1)
    x, _ = _x()
    with torch.no_grad():
        want = torch.log_softmax(m(x), -1)
        for p in m.parameters():
            p.mul_(3.0)
        assert (torch.log_softmax(m(x), -1) - want).abs().max() > 0.1


def test_scale_invariant_gradient_is_orthogonal_to_the_weights():
    """d/dC L(Cθ) = <∇L, θ> = 0 at C = 1 (Euler's theorem), for every set of parameters that one
    normalisation makes invariant together: a linear map's weight and bias, the two embedding tables."""
    m = model.build(_arch(), seed=2)
    x, y = _x()
    torch.nn.functional.cross_entropy(m(x), y).backward()
    dots: dict[str, list[torch.Tensor]] = {}
    for n, p in m.named_parameters():
        key = "embed" if n.endswith("_emb.weight") else n.rsplit(".", 1)[0]
        dots.setdefault(key, []).append(torch.stack([torch.dot(p.grad.reshape(-1), p.detach().reshape(-1)),
                                                     p.grad.norm() * p.detach().norm()]))
    assert len(dots) == 1 + 2 * 4 + 1  # embed, 2 x (qkv, proj, fc, proj), head
    for key, parts in dots.items():
        dot, scale = torch.stack(parts).sum(0)
        assert abs(dot.item()) < 1e-4 * scale.item(), key


def test_scale_invariant_last_position_trick_matches_full_pass():
    m = model.build(_arch(), seed=3)
    x, _ = _x()
    with torch.no_grad():
        torch.testing.assert_close(m(x), m.forward_all_positions(x), atol=1e-5, rtol=1e-5)


def test_mean_grad_norm_is_the_mean_over_minibatches():
    m = model.build(_arch(si=False, layers=1), seed=0)
    x, y = _x()
    m.zero_grad()
    torch.nn.functional.cross_entropy(m(x[:5]), y[:5]).backward()
    kept = {n: p.grad.clone() for n, p in m.named_parameters()}
    got = metrics.to_host(metrics.mean_grad_norm(m, x, y, batch_size=24))
    norms = []
    for i in (0, 24, 48):  # 24 + 24 + 16
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(m(x[i:i + 24]), y[i:i + 24]),
                                    list(m.parameters()))
        norms.append(torch.sqrt(sum(g.pow(2).sum() for g in grads)).item())
    assert got["sgn"] == pytest.approx(sum(norms) / 3, rel=1e-5)
    assert {"sgn.embed", "sgn.attn", "sgn.mlp", "sgn.norm", "sgn.head"} <= set(got)
    for n, p in m.named_parameters():  # the optimizer's gradient is left alone
        assert torch.equal(p.grad, kept[n])


def test_geometry_metrics_in_metrics_jsonl(tmp_path):
    cfg = resolve("smoke", overrides={"steps": 40, "eval_every": 10, "sgn_every": 2, "device": "cpu",
                                             "scale_invariant": True, "optimizer": "sgd", "lr": 0.5,
                                             "weight_decay": 1e-3})
    writer = runs.RunWriter(tmp_path / "r", cfg)
    try:
        train.run_training(cfg, writer)
    finally:
        writer.close()
    rows = runs.read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert [("sgn" in r) for r in rows] == [False, True, False, True]
    for r in rows:
        for g in ("", ".embed", ".attn", ".mlp", ".head"):
            assert r["eff_grad_norm" + g] == pytest.approx(r["grad_norm" + g] * r["weight_norm" + g], rel=1e-5)
            assert r["eff_lr" + g] == pytest.approx(r["lr"] / r["weight_norm" + g] ** 2, rel=1e-5)
        assert all(math.isfinite(v) for k, v in r.items() if isinstance(v, float))
    assert rows[-1]["sgn"] > 0 and rows[-1]["sgn.mlp"] > 0


@pytest.mark.parametrize("name, opt", [("seed000-sgd", "sgd"), ("seed000-lion", "lion")])
def test_seed000_presets(name, opt):
    cfg = resolve(name)
    assert cfg.model.scale_invariant and cfg.optim.optimizer == opt and cfg.data.op == "x+y"
    assert model.arch_from_config(cfg).scale_invariant
