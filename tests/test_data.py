import math

import numpy as np
import pytest
import torch

from grok_tui.errors import ConfigError
from grok_tui.spec import ops
from grok_tui.spec.checks import validate
from grok_tui.train import data


def reference(name: str, a: int, b: int, p: int) -> int:
    """Plain-Python definitions of every operation, written independently of spec/ops.py."""
    if name == "add":
        return (a + b) % p
    if name == "sub":
        return (a - b) % p
    if name == "mul":
        return (a * b) % p
    if name == "div":
        return next(c for c in range(p) if (c * b) % p == a % p)
    if name == "sq_add":
        return (a ** 2 + b ** 2) % p
    if name == "quad":
        return (a ** 2 + a * b + b ** 2) % p
    if name == "cube":
        return (a ** 3 + a * b) % p
    if name == "nonsym":
        return (a * b + b * b) % p
    if name == "sin":
        return math.floor(abs(math.sin(a + b)) * 3 * p) % p
    raise KeyError(name)


@pytest.mark.parametrize("op", ops.OPS, ids=lambda op: op.name)
@pytest.mark.parametrize("p", [7, 13])
def test_every_table_matches_plain_python(op, p):
    a, b, c = ops.table(op, p)
    lo = 1 if op.name == "div" else 0
    assert len(c) == p * (p - lo)
    expected = [reference(op.name, x, y, p) for x in range(p) for y in range(lo, p)]
    assert c.tolist() == expected
    assert a.tolist() == [x for x in range(p) for _ in range(lo, p)]


def test_ops_addressable_by_name_and_formula():
    for op in ops.OPS:
        assert ops.find_op(op.name) is op
        assert ops.find_op(op.formula) is op
        assert ops.find_op(" " + op.formula.replace("+", " + ") + " ") is op
    assert ops.find_op("x**2+y**2").name == "sq_add"
    assert ops.find_op("nonsense") is None
    with pytest.raises(ConfigError, match="unknown operation"):
        ops.get_op("x%y")


def test_split_is_deterministic_and_disjoint():
    tr1, va1 = data.split_indices(500, 0.4, seed=3)
    tr2, va2 = data.split_indices(500, 0.4, seed=3)
    tr3, _ = data.split_indices(500, 0.4, seed=4)
    assert torch.equal(tr1, tr2) and torch.equal(va1, va2)
    assert not torch.equal(tr1, tr3)
    assert len(tr1) == 200 and len(va1) == 300
    assert set(tr1.tolist()).isdisjoint(va1.tolist())
    assert sorted(tr1.tolist() + va1.tolist()) == list(range(500))


def test_build_token_formats():
    two = data.build("x+y", 11, 0.5, "ab", seed=0)
    four = data.build("x+y", 11, 0.5, "aob=", seed=0)
    assert two.train_x.shape[1] == 2 and four.train_x.shape[1] == 4
    assert torch.equal(four.train_x[:, [0, 2]], two.train_x)
    assert (four.train_x[:, 1] == 11).all() and (four.train_x[:, 3] == 12).all()
    assert torch.equal((two.train_x[:, 0] + two.train_x[:, 1]) % 11, two.train_y)
    assert two.n_train + two.n_val == 121


def test_division_needs_prime_and_a_nonempty_split():
    from grok_tui.spec import config

    errs = validate(config.apply_overrides(config.Config(), {"p": 12}))
    assert any("p must be prime for x/y" in e for e in errs)
    assert not validate(config.apply_overrides(config.Config(), {"p": 12, "op": "x+y"}))
    with pytest.raises(ConfigError, match="no train"):
        data.build("x+y", 3, 0.05, "ab", seed=0)
    assert np.all(ops.table(ops.get_op("div"), 5)[1] > 0)
