"""No host sync inside a training step, proven on the CPU.

A TorchDispatchMode counts the ops that would make a GPU wait for the host: reading a value out
(`.item()`, `bool(t)`, `int(t)`: `_local_scalar_dense`, `is_nonzero`, `equal`), data-dependent
shapes (`nonzero`, `masked_select`, boolean indexing), copies to the CPU from another device, and
tensors built from host data (`torch.tensor([...], device=...)`: `lift_fresh`, a blocking host-to-device
copy on CUDA). On
the CPU these cost nothing, so a sync that slipped into the hot loop would only show on a GPU; here
it fails the test.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grok_tui.spec import config
from grok_tui.spec.optimizers import OPTIMIZERS
from grok_tui.spec.resolve import resolve
from grok_tui.train.ensemble import Ensemble
from grok_tui.train.trainer import Trainer

SYNCING = ("aten._local_scalar_dense", "aten.is_nonzero", "aten.equal", "aten.nonzero", "aten.masked_select",
           "aten.item", "aten.unique", "aten.lift_fresh")


class SyncCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.hits: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        kwargs = kwargs or {}
        host_copy = ((name == "aten._to_copy" and args[0].device.type != "cpu"
                      and torch.device(kwargs.get("device", args[0].device)).type == "cpu")
                     or (name == "aten.copy_" and args[0].device.type == "cpu" and args[1].device.type != "cpu"))
        if name in SYNCING or host_copy:
            self.hits[name] = self.hits.get(name, 0) + 1
        return func(*args, **kwargs)


FILTERS = {"grokfast": {"grokfast_lambda": 2.0}, "orthograd": {"orthograd": True}}
def _cases():
    for name in OPTIMIZERS:
        yield pytest.param({"optimizer": name}, id=name)
    for name, ov in FILTERS.items():
        yield pytest.param(ov, id=name)


def _steps(stepper, n: int) -> dict[str, int]:
    stepper.train_step(want_grads=True)  # lazy state (optimizer moments, the index rows) made outside
    counter = SyncCounter()
    with counter:
        for i in range(n):
            stepper.train_step(want_grads=i == n - 1)  # the step before an evaluation also gives grad norms
    return counter.hits


@pytest.mark.parametrize("overrides", list(_cases()))
def test_a_single_runs_steps_never_sync(overrides):
    cfg = resolve("smoke", overrides={"steps": 40, "device": "cpu", "batch_size": 200, **overrides})
    assert _steps(Trainer(cfg), 6) == {}  # 6 steps of 200 rows cross an epoch boundary (576 train rows)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_an_ensembles_steps_never_sync(optimizer):
    base = resolve("smoke", overrides={"steps": 40, "device": "cpu", "batch_size": 200, "optimizer": optimizer})
    cfgs = [config.apply_overrides(base, {"seed": s, "train_frac": f}) for s, f in ((0, 0.6), (1, 0.5), (2, 0.6))]
    assert _steps(Ensemble(cfgs, torch.device("cpu")), 6) == {}


def test_the_counter_sees_a_sync():
    cfg = resolve("smoke", overrides={"steps": 40, "device": "cpu"})
    tr = Trainer(cfg)
    step = tr.train_step

    def syncing_step(want_grads=False):
        out = step(want_grads)
        float(tr.model.tok_emb.weight.detach().sum())
        return out

    tr.train_step = syncing_step
    assert _steps(tr, 2) == {"aten._local_scalar_dense": 2}
