"""GPU-only paths: skipped where CUDA is absent."""

import pytest
import torch

from grok_tui.report import Reporter
from grok_tui.spec import config
from grok_tui.spec.optimizers import OPTIMIZERS
from grok_tui.spec.resolve import resolve
from grok_tui.train import trainer as train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class Rows(Reporter):
    def __init__(self):
        self.rows = []
        self.info = {}

    def on_member_start(self, run_id, info):
        self.info = info

    def on_eval(self, run_id, row):
        self.rows.append(row)


def test_cuda_run_trains_and_is_deterministic(tiny_cfg):
    cfg = config.apply_overrides(tiny_cfg, {"device": "cuda"})
    a, b = Rows(), Rows()
    s = train.run_training(cfg, None, [a])
    train.run_training(cfg, None, [b])
    assert s["status"] == "finished" and a.info["device"].startswith("cuda") and "gpu" in a.info
    assert a.rows[-1]["train_loss"] < a.rows[0]["train_loss"]
    assert [r["step"] for r in a.rows] == [r["step"] for r in b.rows]
    assert a.rows[0]["train_loss"] == pytest.approx(b.rows[0]["train_loss"], rel=1e-4)


def test_compiled_cuda_run_trains(tiny_cfg):
    rows = Rows()
    s = train.run_training(config.apply_overrides(tiny_cfg, {"device": "cuda", "compile": True}), None, [rows])
    assert s["status"] == "finished"
    assert rows.rows[-1]["train_loss"] < rows.rows[0]["train_loss"]


def _steps_without_sync(stepper, n: int) -> None:
    """n steps (the last with gradient norms, as before an evaluation) with CUDA's sync checker set to
    raise on any synchronising call; the first step, which makes lazy state, outside it."""
    stepper.train_step(want_grads=True)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(n):
            stepper.train_step(want_grads=i == n - 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_cuda_steps_never_sync_the_host(optimizer):
    """What tests/test_no_sync.py proves on the CPU by counting ops, checked by CUDA itself."""
    cfg = resolve("smoke", overrides={"steps": 40, "device": "cuda", "batch_size": 200, "optimizer": optimizer})
    _steps_without_sync(train.Trainer(cfg), 6)


def test_cuda_ensemble_steps_never_sync_the_host():
    from grok_tui.train.ensemble import Ensemble

    base = resolve("smoke", overrides={"steps": 40, "device": "cuda", "batch_size": 200})
    cfgs = [config.apply_overrides(base, {"seed": s}) for s in range(3)]
    _steps_without_sync(Ensemble(cfgs, torch.device("cuda")), 6)


def test_cuda_rows_carry_the_gpu_and_bf16_trains(tiny_cfg):
    rows = Rows()
    s = train.run_training(config.apply_overrides(tiny_cfg, {"device": "cuda", "precision": "bf16"}), None, [rows])
    assert s["status"] == "finished" and rows.rows[-1]["train_loss"] < rows.rows[0]["train_loss"]
    assert rows.rows[-1]["gpu_peak_mib"] > 0 and rows.rows[-1]["gpu_mem_mib"] >= 0


def test_cuda_step_profile_reads_device_time(tiny_cfg):
    from grok_tui.bench.profile import step_profile

    r = step_profile(config.apply_overrides(tiny_cfg, {"device": "cuda"}), steps=3, warmup=2)
    kinds = {row["kind"]: row for row in r["kinds"]}
    assert r["method"].startswith("profiler") and kinds["matrix products"]["share"] > 0
