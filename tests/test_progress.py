"""Progress measures (train/progress.py) against independent float64 references on small p."""

import math

import numpy as np
import pytest
import torch

from grok_tui.spec import ops
from grok_tui.spec.resolve import resolve
from grok_tui.train import data, metrics, model, progress


def brute_log(p: int) -> tuple[int, dict[int, int]]:
    """The smallest generator of the nonzero residues mod p and its discrete logs, by enumeration."""
    for g in range(2, p):
        powers = [pow(g, i, p) for i in range(p - 1)]
        if sorted(powers) == list(range(1, p)):
            return g, {x: i for i, x in enumerate(powers)}
    raise AssertionError("no generator")


def rfft_spectrum(w: np.ndarray) -> tuple[np.ndarray, float]:
    """(spectrum, const) of the rows of w (n, d) from numpy's FFT: for 0 < k < n/2 the unit cos and sin
    rows have norm sqrt(n/2), so ‖cos_k·w‖² + ‖sin_k·w‖² = (2/n) Σ_d |F_k|²; k = n/2 (even n): (1/n) Σ|F_k|²."""
    n = w.shape[0]
    f = np.fft.rfft(w, axis=0)
    power = (np.abs(f) ** 2).sum(1)
    scale = np.array([2.0 / n if 2 * k < n else 1.0 / n for k in range(1, n // 2 + 1)])
    return np.sqrt(power[1:n // 2 + 1] * scale), math.sqrt(power[0] / n)


@pytest.mark.parametrize("n", [7, 12, 13])
def test_fourier_basis_is_orthonormal_cos_sin(n):
    b = progress.fourier_basis(n, dtype=torch.float64).numpy()
    assert b.shape == (n, n)
    np.testing.assert_allclose(b @ b.T, np.eye(n), atol=1e-12)
    x = np.arange(n)
    np.testing.assert_allclose(b[0], np.full(n, n ** -0.5))
    c3 = np.cos(2 * np.pi * 3 * x / n)
    np.testing.assert_allclose(b[5], c3 / np.linalg.norm(c3), atol=1e-12)  # rows: const, c1, s1, c2, s2, c3
    s2 = np.sin(2 * np.pi * 2 * x / n)
    np.testing.assert_allclose(b[4], s2 / np.linalg.norm(s2), atol=1e-12)


@pytest.mark.parametrize("p", [12, 13])
def test_additive_spectrum_matches_numpy_fft(p):
    rng = np.random.default_rng(p)
    emb = rng.normal(size=(p + 2, 16))  # the op and '=' rows must be ignored
    emb[p:] = 1e3
    spec, const = progress.embedding_spectrum(torch.tensor(emb, dtype=torch.float32), "x+y", p)
    ref, ref_const = rfft_spectrum(emb[:p])
    assert spec.shape == (p // 2,)
    np.testing.assert_allclose(spec.numpy(), ref, rtol=1e-5)
    assert float(const) == pytest.approx(ref_const, rel=1e-5)


@pytest.mark.parametrize("op", ["x*y", "x/y"])
def test_multiplicative_spectrum_orders_tokens_by_discrete_log(op):
    p = 13
    g, log = brute_log(p)
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(p + 2, 8))
    spec, const = progress.embedding_spectrum(torch.tensor(emb, dtype=torch.float32), op, p)
    ref, ref_const = rfft_spectrum(emb[[pow(g, i, p) for i in range(p - 1)]])  # token 0 left out
    assert spec.shape == ((p - 1) // 2,)
    np.testing.assert_allclose(spec.numpy(), ref, rtol=1e-5)
    assert float(const) == pytest.approx(ref_const, rel=1e-5)


@pytest.mark.parametrize("p", [2, 3, 7, 11, 13, 97])
def test_discrete_log_against_enumerated_powers(p):
    g, log = brute_log(p) if p > 2 else (1, {1: 0})
    assert progress.primitive_root(p) == g
    table = progress.discrete_log(p)
    assert table[0] == -1
    assert {x: int(table[x]) for x in range(1, p)} == log
    assert list(progress.number_rows("x*y", p)) == ([pow(g, i, p) for i in range(p - 1)] if p > 2 else [0, 1])


def one_frequency_embedding(p: int, k: int, op: str, noise: float = 0.0) -> torch.Tensor:
    """Number embeddings cos/sin of frequency k along the basis's group (plus a constant part, which
    the spectrum reports apart), d = 12, and two extra token rows."""
    rng = np.random.default_rng(k)
    u, v, c = rng.normal(size=(3, 12))
    if op in ("x*y", "x/y"):
        _, log = brute_log(p)
        n, pos = p - 1, np.array([log.get(x, 0) for x in range(p)])
    else:
        n, pos = p, np.arange(p)
    ph = 2 * np.pi * k * pos / n
    emb = np.cos(ph)[:, None] * u + np.sin(ph)[:, None] * v + 5 * c + noise * rng.normal(size=(p, 12))
    if op in ("x*y", "x/y"):
        emb[0] = rng.normal(size=12) * 10  # token 0 is outside the multiplicative group
    return torch.tensor(np.vstack([emb, rng.normal(size=(2, 12))]), dtype=torch.float32)


@pytest.mark.parametrize("op,p,k", [("x+y", 13, 4), ("x-y", 11, 5), ("x*y", 13, 2), ("x/y", 11, 3)])
def test_one_frequency_is_sparse_with_that_key_frequency(op, p, k):
    m = progress.to_host(progress.measures_from(one_frequency_embedding(p, k, op), None, op, p))
    assert m["gini"] > 0.9 and m["ipr"] > 0.9
    assert m["key_freqs"] == [k]
    assert m["restricted_loss"] is None and m["excluded_loss"] is None  # no logits given
    # a noisy spread embedding is not sparse
    noisy = progress.to_host(progress.measures_from(one_frequency_embedding(p, k, op, noise=30.0), None, op, p))
    assert noisy["gini"] < 0.6 and noisy["ipr"] < 0.6 and len(noisy["key_freqs"]) > 1


def test_gini_and_ipr_against_their_formulas():
    x = torch.tensor([0.3, 2.0, 0.0, 1.1, 0.7], dtype=torch.float64)
    xs = x.numpy()
    ref_gini = np.abs(xs[:, None] - xs[None, :]).sum() / (2 * (len(xs) - 1) * xs.sum())
    e = xs ** 2
    assert float(progress.gini(x)) == pytest.approx(ref_gini, rel=1e-6)
    assert float(progress.ipr(x)) == pytest.approx((e ** 2).sum() / e.sum() ** 2, rel=1e-6)
    assert float(progress.gini(torch.ones(6))) == pytest.approx(0.0, abs=1e-7)
    assert float(progress.ipr(torch.ones(6))) == pytest.approx(1 / 6)


def test_key_frequencies_are_the_fewest_holding_the_share():
    spec = torch.tensor([0.05, 0.5, 0.15, 0.3]).sqrt()  # energies; total 1
    key = lambda share: [i + 1 for i, v in enumerate(progress.key_mask(spec, share).tolist()) if v]  # noqa: E731
    assert key(0.9) == [2, 3, 4]  # 0.5 + 0.3 = 0.8 < 0.9 <= 0.95
    assert key(0.75) == [2, 4]
    assert key(0.4) == [2]
    assert key(1.0) == [1, 2, 3, 4]
    assert progress.to_host(progress.measures_from(torch.randn(9, 4), None, "x+y", 7,
                                                   key_freqs=[3, 1]))["key_freqs"] == [1, 3]
    with pytest.raises(ValueError):
        progress.mask_of([4], 3)


def brute_losses(logits: np.ndarray, op: str, p: int, keys: list[int], train: np.ndarray):
    """Restricted and excluded loss in float64: the key directions built explicitly over (row, c),
    the projection by least squares."""
    a, b, c = ops.table(ops.get_op(op), p)
    sign = -1 if op in ("x-y", "x/y") else 1
    if op in ("x*y", "x/y"):
        _, log = brute_log(p)
        n = p - 1
        rows = [i for i in range(len(c)) if a[i] != 0 and b[i] != 0]
        s = np.array([(log[a[i]] + sign * log[b[i]]) % n for i in rows])
        t = np.array([log.get(x, 0) for x in range(p)])
        valid = np.arange(p) != 0
    else:
        n, rows = p, list(range(len(c)))
        s, t, valid = (a + sign * b) % p, np.arange(p), np.ones(p, bool)
    L = logits.astype(np.float64)[rows]
    cols = []
    for k in keys:
        ph = 2 * np.pi * k * (s[:, None] - t[None, :]) / n
        cols += [(np.cos(ph) * valid).ravel(), (np.sin(ph) * valid).ravel()]
    D = np.stack(cols, 1)
    coef = np.linalg.lstsq(D, L.ravel(), rcond=None)[0]
    P = (D @ coef).reshape(L.shape)

    def ce(z, y):
        z = z - z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))

    y = c[rows]
    restricted = P + (L - P).mean(0, keepdims=True)
    tr = train[rows]
    return ce(restricted, y), ce((L - P)[tr], y[tr])


@pytest.mark.parametrize("op,p,keys", [("x+y", 7, [1, 3]), ("x+y", 8, [2, 4]), ("x-y", 7, [2]),
                                       ("x*y", 7, [1, 3]), ("x/y", 11, [2, 5]), ("x*y", 11, [1, 2, 3, 4, 5])])
def test_restricted_and_excluded_loss_against_least_squares(op, p, keys):
    a, b, c = ops.table(ops.get_op(op), p)
    rng = np.random.default_rng(p + len(keys))
    n = p - 1 if op in ("x*y", "x/y") else p
    if op in ("x*y", "x/y"):
        _, log = brute_log(p)
        s = np.array([(log.get(x, 0) + (-1 if op == "x/y" else 1) * log.get(y, 0)) for x, y in zip(a, b, strict=True)])
        t = np.array([log.get(x, 0) for x in range(p)])
    else:
        s, t = a + (-1 if op == "x-y" else 1) * b, np.arange(p)
    # structure along one key frequency and a non-key one, per-answer biases, and noise
    ph = lambda k: 2 * np.pi * k * (s[:, None] - t[None, :]) / n  # noqa: E731
    logits = (4 * np.cos(ph(keys[0])) + 2 * np.sin(ph(keys[0])) + 3 * np.cos(ph(keys[-1] % (n // 2) + 1))
              + rng.normal(size=p) + rng.normal(size=(len(c), p)))
    train = rng.random(len(c)) < 0.5
    m = progress.measures_from(torch.randn(p + 2, 8), torch.tensor(logits, dtype=torch.float32), op, p,
                               torch.from_numpy(train), key_freqs=keys)
    ref_r, ref_e = brute_losses(logits.astype(np.float32), op, p, keys, train)
    assert float(m["restricted_loss"]) == pytest.approx(ref_r, abs=1e-5, rel=1e-5)
    assert float(m["excluded_loss"]) == pytest.approx(ref_e, abs=1e-5, rel=1e-5)
    # the train rows as indices give the same
    m2 = progress.measures_from(torch.randn(p + 2, 8), torch.tensor(logits, dtype=torch.float32), op, p,
                                torch.from_numpy(np.flatnonzero(train)), key_freqs=keys)
    assert float(m2["excluded_loss"]) == pytest.approx(float(m["excluded_loss"]), abs=1e-6)


def test_projection_keeps_the_key_directions_and_removes_nothing_else():
    p, op = 7, "x+y"
    a, b, _ = ops.table(ops.get_op(op), p)
    cvals = np.arange(p)
    f = np.cos(2 * np.pi * 2 * ((a + b)[:, None] - cvals) / p)  # one key direction exactly
    g = np.cos(2 * np.pi * 1 * ((a + b)[:, None] + cvals) / p)  # cos(w(a+b+c)): orthogonal to all of them
    key = progress.mask_of([1, 2, 3], 3)
    proj = progress.key_projection(torch.tensor(f + g, dtype=torch.float32), op, p, key)
    np.testing.assert_allclose(proj.numpy(), f, atol=1e-5)


@pytest.mark.parametrize("op", ["x^2+y^2", "x*y+y*y", "floor(|sin(x+y)|*3p)"])
def test_other_operations_have_a_spectrum_but_no_losses(op):
    p = 11
    n_rows = len(ops.table(ops.get_op(op), p)[2])
    m = progress.to_host(progress.measures_from(torch.randn(p + 2, 8), torch.randn(n_rows, p), op, p,
                                                torch.arange(10)))
    assert m["restricted_loss"] is None and m["excluded_loss"] is None
    assert len(m["spectrum"]) == p // 2 and m["basis"] == "additive"
    assert math.isfinite(m["gini"]) and m["key_freqs"]


def test_mul_with_p_not_prime_falls_back_to_the_additive_spectrum():
    m = progress.measures_from(torch.randn(12, 8), torch.randn(100, 10), "x*y", 10, torch.arange(5))
    assert m["basis"] == "additive" and m["restricted_loss"] is None and m["spectrum"].shape == (5,)


def _tiny(op: str, tokens: str = "ab"):
    cfg = resolve("smoke", overrides={"op": op, "p": 11, "tokens": tokens, "d_model": 32,
                                             "device": "cpu"})
    net = model.build(model.arch_from_config(cfg), seed=0)
    return cfg, net


@pytest.mark.parametrize("op,tokens", [("x+y", "ab"), ("x*y", "ab"), ("x/y", "aob="), ("x-y", "aob=")])
def test_measure_on_a_model_of_this_project(op, tokens):
    cfg, net = _tiny(op, tokens)
    net.train()
    m = progress.measure(net, cfg)
    assert net.training  # its mode is restored
    assert set(m) == {"spectrum", "const_norm", "gini", "ipr", "key_freqs", "basis", "restricted_loss",
                      "excluded_loss"}
    assert all(math.isfinite(m[k]) for k in ("const_norm", "gini", "ipr", "restricted_loss", "excluded_loss"))
    k = (cfg.data.p - 1) // 2 if op in ("x*y", "x/y") else cfg.data.p // 2
    assert len(m["spectrum"]) == k and m["key_freqs"] == sorted(m["key_freqs"]) and m["key_freqs"]
    assert m["basis"] == ("multiplicative" if op in ("x*y", "x/y") else "additive")
    # logits computed once and passed in give the same
    again = progress.measure(net, cfg, logits=progress.all_logits(net, cfg))
    assert again == pytest.approx(m)


@pytest.mark.parametrize("op,tokens", [("x+y", "ab"), ("x/y", "aob=")])
def test_all_logits_and_train_rows_are_the_training_split(op, tokens):
    """The table's logits read at the split's training rows give the train loss of an evaluation: the
    token format, the readout and the split agree with the project's."""
    cfg, net = _tiny(op, tokens)
    split = data.build_from_config(cfg)
    train_loss = float(metrics.evaluate(net.eval(), split)["train_loss"])
    logits, rows = progress.all_logits(net, cfg), progress.train_rows(cfg)
    _, _, c = ops.table(ops.get_op(op), cfg.data.p)
    ce = float(torch.nn.functional.cross_entropy(logits[rows], torch.from_numpy(c)[rows]))
    assert ce == pytest.approx(train_loss, rel=1e-5)
    if op == "x+y":  # no key frequency removed: the excluded loss is the train loss
        m = progress.measure(net, cfg, key_freqs=[], logits=logits)
        assert m["excluded_loss"] == pytest.approx(train_loss, rel=1e-5)


def test_logits_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="ops.table order"):
        progress.measures_from(torch.randn(13, 4), torch.randn(11 * 11, 11), "x/y", 11)
