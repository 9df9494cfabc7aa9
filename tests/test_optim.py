import copy
import math

import pytest
import torch

from grok_tui.optim import registry as optim
from grok_tui.spec import config
from grok_tui.spec.optimizers import OPTIMIZERS
from grok_tui.spec.resolve import resolve
from grok_tui.train import model


def _model():
    return model.build(model.Arch(vocab=9, seq_len=2, n_classes=7, layers=1, d_model=16, heads=2), seed=0)


def _loss(m):
    x = torch.tensor([[1, 2], [3, 4], [5, 6]])
    return torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 1, 2]))


REFERENCE = {
    "adamw": lambda ps, o: torch.optim.AdamW(ps, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                             weight_decay=o.weight_decay, foreach=False),
    "adam": lambda ps, o: torch.optim.Adam(ps, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                           weight_decay=o.weight_decay, foreach=False),
    "sgd": lambda ps, o: torch.optim.SGD(ps, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                                         weight_decay=o.weight_decay, foreach=False),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_one_step_matches_the_plain_torch_optimizer(name):
    # eps well above rounding noise: the key bias has a zero gradient up to noise, where
    # m / (sqrt(v) + eps) would otherwise compare noise with noise.
    o = config.apply_overrides(config.Config(), {"optimizer": name, "lr": 0.05, "weight_decay": 0.1, "eps": 1e-4,
                                                 "momentum": 0.9, "nesterov": name == "sgd"}).optim
    a = _model()
    b = copy.deepcopy(a)
    opt_a, opt_b = optim.build(a, o), REFERENCE[name](b.parameters(), o)
    for m, opt in ((a, opt_a), (b, opt_b)):
        for _ in range(2):
            opt.zero_grad()
            _loss(m).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)
    assert not torch.equal(next(a.parameters()), next(_model().parameters()))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_registered_optimizer_lowers_the_loss(name):
    cfg = resolve("smoke", overrides={"optimizer": name, "lr": 1e-2 if name != "sgd" else 0.1})
    m = _model()
    opt = optim.build(m, cfg.optim)
    first = _loss(m).item()
    for _ in range(20):
        opt.zero_grad()
        _loss(m).backward()
        opt.step()
    last = _loss(m).item()
    assert math.isfinite(last) and last < first


def test_schedule_warmup_and_cooldowns():
    o = config.apply_overrides(config.Config(), {"warmup_steps": 10, "cooldown": "linear", "cooldown_steps": 20}).optim
    f = optim.lr_factor(o, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0 and f(50) == 1.0
    assert f(80) == pytest.approx(1.0) and f(90) == pytest.approx(0.5) and f(99) == pytest.approx(0.05)
    o.cooldown = "cosine"
    g = optim.lr_factor(o, 100)
    assert g(90) == pytest.approx(0.5) and g(99) < 0.01 and g(80) == pytest.approx(1.0)
    o.warmup_steps = 0
    assert optim.lr_factor(o, 100)(0) == 1.0


def test_the_ensembles_lr_table_is_every_members_schedule():
    """optim.lr_table (tensor ops, all steps and members at once) is lr_factor's schedule times each lr."""
    settings = [{}, {"warmup_steps": 10, "lr": 3e-3}, {"cooldown": "linear", "cooldown_steps": 20},
                {"warmup_steps": 7, "cooldown": "cosine", "cooldown_steps": 33, "lr": 0.5}, {"cooldown_steps": 5}]
    optims = [config.apply_overrides(config.Config(), s).optim for s in settings]
    table = optim.lr_table(optims, 100)
    assert table.shape == (100, len(optims)) and table.dtype == torch.float64
    for k, o in enumerate(optims):
        f = optim.lr_factor(o, 100)
        assert table[:, k].tolist() == pytest.approx([o.lr * f(s) for s in range(100)], rel=1e-12, abs=0)
