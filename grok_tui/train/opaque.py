"""Two ops kept whole in a compiled CPU graph: ReLU and the row gather (embedding) with its backward.

Inductor's CPU code for them was the slowest part of a compiled canonical step (torch 2.13): it saved
ReLU's backward mask as a bool tensor, whose vectorised store took 3.3 ms for 1024 x 512 values (0.05
ms without the mask), and it turned each gather's backward into an atomic scatter fused into the
attention's backward loop (4-10 ms a step). As custom ops they stay the eager kernels (ATen's ReLU,
whose backward reads the saved output; ATen's embedding backward), and inductor fuses everything
around them: a compiled canonical step went from 1.2x slower than eager to 1.2x faster
(docs/benchmarks.md). Used only while dynamo traces a CPU graph; eager code and GPU graphs (Triton
fuses these well) take the plain functions.
"""

# No `from __future__ import annotations`: torch.library.custom_op reads these signatures' annotations,
# and torch before 2.5 cannot read them as strings.
import torch
import torch.nn.functional as F


@torch.library.custom_op("grok_tui::relu", mutates_args=())
def _relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


@_relu.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _relu_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(output)


def _relu_backward(ctx, grad: torch.Tensor) -> torch.Tensor:
    (out,) = ctx.saved_tensors
    return torch.ops.aten.threshold_backward(grad, out, 0)


_relu.register_autograd(_relu_backward, setup_context=_relu_setup)


@torch.library.custom_op("grok_tui::take_rows", mutates_args=())
def _take_rows(idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    return F.embedding(idx, table)


@_take_rows.register_fake
def _(idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    return table.new_empty(idx.shape + table.shape[1:])


@torch.library.custom_op("grok_tui::take_rows_grad", mutates_args=())
def _take_rows_grad(grad: torch.Tensor, idx: torch.Tensor, rows: int) -> torch.Tensor:
    return torch.ops.aten.embedding_dense_backward(grad, idx, rows, -1, False)


@_take_rows_grad.register_fake
def _(grad: torch.Tensor, idx: torch.Tensor, rows: int) -> torch.Tensor:
    return grad.new_empty((rows,) + grad.shape[idx.dim():])


def _take_rows_setup(ctx, inputs, output) -> None:
    idx, table = inputs
    ctx.save_for_backward(idx)
    ctx.rows = table.shape[0]


def _take_rows_backward(ctx, grad: torch.Tensor):
    (idx,) = ctx.saved_tensors
    return None, _take_rows_grad(grad, idx, ctx.rows)


_take_rows.register_autograd(_take_rows_backward, setup_context=_take_rows_setup)


def _cpu_graph(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and torch.compiler.is_compiling()


def relu(x: torch.Tensor) -> torch.Tensor:
    return _relu(x) if _cpu_graph(x) else F.relu(x)


def embedding(idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """F.embedding(idx, table): table's rows idx, any shape of idx."""
    return _take_rows(idx, table) if _cpu_graph(table) else F.embedding(idx, table)
