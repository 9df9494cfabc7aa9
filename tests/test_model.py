import pytest
import torch

from grok_tui.spec import config
from grok_tui.train import data, model


@pytest.mark.parametrize("tokens", ["ab", "aob="])
@pytest.mark.parametrize("norm", ["layernorm", "none"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("rows", ["few", "table"])
@pytest.mark.parametrize("si", [False, True])
def test_shapes_and_training_forward_equals_full_pass(tokens, norm, layers, rows, si):
    cfg = config.apply_overrides(config.Config(), {"p": 13, "tokens": tokens, "norm": norm, "layers": layers,
                                                   "d_model": 32, "heads": 4, "scale_invariant": si})
    arch = model.arch_from_config(cfg)
    m = model.build(arch, seed=0)
    split = data.build_from_config(cfg)
    # 5 rows: every position per row; the whole table (169 rows > p): the positions before b once per a
    x = split.train_x[:5] if rows == "few" else torch.cat([split.train_x, split.val_x])
    out = m(x)
    assert out.shape == (x.shape[0], 13)
    torch.testing.assert_close(out, m.forward_all_positions(x), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.forward_all_positions(x).sum().backward()
    for g, p in zip(grads, m.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=5e-5)  # sums over up to 156 rows


def test_same_seed_same_weights_and_global_rng_untouched():
    arch = model.Arch(vocab=9, seq_len=2, n_classes=7, layers=1, d_model=16, heads=2)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, b = model.build(arch, seed=5), model.build(arch, seed=5)
    after = torch.rand(3)
    assert torch.equal(before, after)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(model.build(arch, seed=6).parameters()), next(a.parameters()))


def test_param_groups_cover_every_parameter():
    m = model.build(model.Arch(vocab=9, seq_len=4, n_classes=7, layers=2, d_model=16, heads=2), seed=0)
    groups = {model.param_group(n) for n, _ in m.named_parameters()}
    assert groups == {"embed", "attn", "mlp", "norm", "head"}


@pytest.mark.parametrize("tq, t, offset", [(2, 4, 2), (1, 4, None), (2, 2, 0), (1, 2, None)])
def test_attention_broadcasts_equal_the_fused_kernel(tq, t, offset):
    """The CPU path of model.attend against the fused kernel the GPU takes, leading dims included."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 5, n, 4, 8, generator=g) for n in (tq, t, t))
    whole = model.attend(q, [k], [v], offset, fused=True)
    torch.testing.assert_close(model.attend(q, [k], [v], offset, fused=False), whole, rtol=1e-5, atol=1e-6)
    parts = [k[..., :1, :, :], k[..., 1:, :, :]], [v[..., :1, :, :], v[..., 1:, :, :]]
    torch.testing.assert_close(model.attend(q, *parts, offset, fused=False), whole, rtol=1e-5, atol=1e-6)


def test_fused_attention_in_chunks_of_sequences_equals_one_call(monkeypatch):
    """Above SDPA_MAX_BATCH sequences the fused path calls the kernel chunk by chunk: same values and
    gradients as one call."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 7, 2, 4, 8, generator=g, requires_grad=True) for _ in range(3))
    one = model.attend(q, [k], [v], 0, fused=True)
    grads = torch.autograd.grad(one.square().sum(), (q, k, v))
    monkeypatch.setattr(model, "SDPA_MAX_BATCH", 4)  # 21 sequences: 6 calls
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **kw: calls.append(a[0].shape[0]) or real(*a, **kw))
    chunked = model.attend(q, [k], [v], 0, fused=True)
    assert calls == [4, 4, 4, 4, 4, 1]
    torch.testing.assert_close(chunked, one)
    for a, b in zip(torch.autograd.grad(chunked.square().sum(), (q, k, v)), grads, strict=True):
        torch.testing.assert_close(a, b)


def _traced_ops(cfg) -> tuple[torch.Tensor, list, set[str]]:
    """Logits, gradients and the ops of the forward and backward graphs AOTAutograd builds when the
    training forward is compiled on the CPU (no inductor: the graphs as the compiler receives them)."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    seen: set[str] = set()

    def record(gm, example_inputs):
        seen.update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return make_boxed_func(gm.forward)

    m = model.build(model.arch_from_config(cfg), seed=0)
    split = data.build_from_config(cfg)
    x = torch.cat([split.train_x, split.val_x])
    torch._dynamo.reset()
    out = torch.compile(m, backend=aot_autograd(fw_compiler=record, bw_compiler=record))(x)
    out.sum().backward()
    return out, [p.grad.clone() for p in m.parameters()], seen


@pytest.mark.parametrize("si", [False, True])
def test_a_compiled_cpu_graph_keeps_relu_and_gathers_whole_with_the_eager_values(si):
    """In a compiled CPU graph ReLU and the row gathers (and the gathers' backward) are opaque ops
    (train/opaque.py: inductor's code for them was the slowest of the step), with eager's values."""
    cfg = config.apply_overrides(config.Config(), {"p": 13, "tokens": "aob=", "d_model": 32, "heads": 4,
                                                   "scale_invariant": si})
    out, grads, ops = _traced_ops(cfg)
    assert {"grok_tui.relu.default", "grok_tui.take_rows.default", "grok_tui.take_rows_grad.default"} <= ops
    assert not {o for o in ops if "embedding" in o or o.startswith("aten.relu")}, ops
    m = model.build(model.arch_from_config(cfg), seed=0)
    split = data.build_from_config(cfg)
    eager = m(torch.cat([split.train_x, split.val_x]))
    eager.sum().backward()
    torch.testing.assert_close(out, eager)
    for g, p in zip(grads, m.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)
