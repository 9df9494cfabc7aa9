"""`grok-tui bench --profile`: where a training step's time goes, by kind of work.

On the CPU every aten op of a step (forward, backward and optimizer: the autograd engine runs them
on this thread) is timed by the wall clock under a ``TorchDispatchMode``, then grouped by kind. On
CUDA the kernels' device time comes from ``torch.profiler`` (CUPTI), grouped by the aten op that
launched them. Both are shares of the time spent inside ops: the Python, autograd and dispatcher
time between ops is the difference between the un-instrumented step and that sum.

(``torch.profiler`` on the CPU is not used: at these op sizes its own bookkeeping made memory-bound
ops such as ReLU read 10-15x their real time, while the per-op wall clock agrees with the op timed
alone within about 1.5x.)
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grok_tui.spec.config import Config
from grok_tui.train.trainer import Trainer, build_trainer

# Kinds of work, in the order of the table; an op not named here is "other ops".
KINDS: dict[str, tuple[str, ...]] = {
    "matrix products": ("mm", "addmm", "bmm", "baddbmm", "matmul", "addmv", "mv", "dot", "linear",
                        "_mkldnn_linear", "mkldnn_linear"),
    # scaled_dot_product_attention's kernels (on CUDA the time sits in the inner ops that launch them)
    "fused attention": ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                        "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu",
                        "_scaled_dot_product_flash_attention_backward",
                        "_scaled_dot_product_efficient_attention_backward",
                        "_scaled_dot_product_cudnn_attention_backward",
                        "_scaled_dot_product_flash_attention_for_cpu_backward", "_efficient_attention_forward",
                        "_efficient_attention_backward", "_flash_attention_forward", "_flash_attention_backward",
                        "_cudnn_attention_forward", "_cudnn_attention_backward", "_scaled_dot_product_attention_math"),
    "element-wise": ("mul", "add", "sub", "div", "sum", "mean", "neg", "addcmul", "addcdiv", "pow", "sqrt", "rsqrt",
                     "exp", "where", "clamp", "amax", "max", "mul_", "add_", "sub_", "div_", "sum_", "norm",
                     "linalg_vector_norm"),
    "softmax, masks": ("_softmax", "_softmax_backward_data", "masked_fill", "masked_fill_", "triu", "tril",
                       "_safe_softmax"),
    "ReLU, GELU": ("relu", "relu_", "clamp_min", "clamp_min_", "threshold_backward", "gelu", "gelu_backward"),
    "layer norm": ("native_layer_norm", "native_layer_norm_backward"),
    "loss": ("_log_softmax", "_log_softmax_backward_data", "nll_loss_forward", "nll_loss_backward", "nll_loss",
             "nll_loss2d_forward", "cross_entropy_loss"),
    "gathers": ("embedding", "embedding_dense_backward", "index_select", "index", "index_add_", "index_add",
                "gather", "scatter_add_", "scatter_add", "take", "index_put_", "_index_put_impl_", "_embedding_bag"),
    "copies, fills": ("copy_", "_to_copy", "clone", "fill_", "zero_", "zeros", "zeros_like", "ones", "ones_like",
                      "arange", "cat", "slice_backward", "select_backward", "new_zeros", "empty_like", "contiguous",
                      "_unsafe_view", "stack", "full", "new_empty_strided", "empty_strided"),
    "optimizer": ("_fused_adamw_", "_fused_adam_", "_fused_sgd_", "_foreach_add_", "_foreach_mul_",
                  "_foreach_addcmul_", "_foreach_addcdiv_", "_foreach_sqrt", "_foreach_div_", "_foreach_lerp_",
                  "_foreach_sub_", "_foreach_maximum_", "_foreach_sign_", "_foreach_norm", "_foreach_mul",
                  "_foreach_add", "_foreach_div", "_foreach_sqrt_", "_foreach_zero_", "_foreach_copy_"),
    "views": ("view", "t", "slice", "select", "transpose", "as_strided", "expand", "unsqueeze", "squeeze", "reshape",
              "detach", "split", "split_with_sizes", "permute", "alias", "unbind", "flatten", "unflatten", "narrow",
              "_reshape_alias", "empty", "is_same_size", "_has_compatible_shallow_copy_type", "lift_fresh", "item",
              "_local_scalar_dense", "sym_size", "sym_stride", "numel", "size", "stride",
              "_record_function_enter_new", "_record_function_exit"),
}
_KIND_OF = {op: kind for kind, ops in KINDS.items() for op in ops}
OTHER = "other ops"


def kind_of(op: str) -> str:
    """The kind of work of an aten op, by its name ('aten::mm', 'mm.default' or 'mm')."""
    name = op.removeprefix("aten::").split(".")[0]
    return _KIND_OF.get(name, OTHER)


class _OpTimer(TorchDispatchMode):
    """Wall-clock seconds and calls per aten op (name without overload)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        t = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        self.seconds[name] += time.perf_counter() - t
        self.calls[name] += 1
        return out


def _step_seconds(trainer: Trainer, steps: int) -> float:
    """Median wall seconds of one un-instrumented step."""
    times = []
    for _ in range(steps):
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        t = time.perf_counter()
        trainer.train_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cpu_ops(trainer: Trainer, steps: int) -> tuple[Counter[str], Counter[str]]:
    with _OpTimer() as timer:
        for _ in range(steps):
            trainer.train_step()
    return timer.seconds, timer.calls


def _cuda_ops(trainer: Trainer, steps: int) -> tuple[Counter[str], Counter[str]]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            trainer.train_step()
        torch.cuda.synchronize(trainer.device)
    seconds: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue  # kernels are counted through the aten op that launched them
        us = getattr(e, "self_device_time_total", None)
        if us is None:
            us = getattr(e, "self_cuda_time_total", 0.0)
        name = e.key.removeprefix("aten::")
        seconds[name] += us / 1e6
        calls[name] += e.count
    return seconds, calls


def step_profile(cfg: Config, steps: int = 20, warmup: int = 10) -> dict[str, Any]:
    """Where a training step of cfg goes (eager; a compiled step is one graph and is not split here).
    Returns the un-instrumented step time, the time inside ops, and per kind: share, ms, calls, ops."""
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=False,
                                                              steps=max(cfg.train.steps, warmup + 2 * steps)))
    trainer = build_trainer(cfg)
    for _ in range(warmup):
        trainer.train_step()
    step_s = _step_seconds(trainer, steps)
    seconds, calls = (_cuda_ops if trainer.device.type == "cuda" else _cpu_ops)(trainer, steps)
    total = sum(seconds.values())
    by_kind: dict[str, dict[str, Any]] = {}
    for op, s in seconds.items():
        k = by_kind.setdefault(kind_of(op), {"seconds": 0.0, "calls": 0, "ops": Counter()})
        k["seconds"] += s
        k["calls"] += calls[op]
        k["ops"][op] += s
    rows = []
    for kind in sorted(by_kind, key=lambda k: -by_kind[k]["seconds"]):
        v = by_kind[kind]
        rows.append({"kind": kind, "share": v["seconds"] / total if total else 0.0,
                     "ms_per_step": v["seconds"] / steps * 1e3, "calls_per_step": v["calls"] / steps,
                     "ops": [op for op, _ in v["ops"].most_common(3)]})
    return {"device": str(trainer.device), "precision": cfg.train.precision, "threads": torch.get_num_threads(),
            "method": "profiler (device time)" if trainer.device.type == "cuda" else "wall clock per op",
            "steps": steps, "step_ms": step_s * 1e3, "ops_ms": total / steps * 1e3,
            "ops_per_step": sum(calls.values()) / steps, "kinds": rows}
