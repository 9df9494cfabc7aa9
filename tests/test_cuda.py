"""GPU-only paths: skipped where CUDA is absent."""

import pytest
import torch

from grok_tui import config, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class Rows(train.Callback):
    def __init__(self):
        self.rows = []

    def on_eval(self, row):
        self.rows.append(row)


def test_cuda_run_follows_the_cpu_curve(tiny_cfg):
    cpu, gpu = Rows(), Rows()
    train.run_training(tiny_cfg, None, [cpu])
    s = train.run_training(config.apply_overrides(tiny_cfg, {"device": "cuda"}), None, [gpu])
    assert s["status"] == "finished" and s["device"].startswith("cuda")
    for a, b in zip(cpu.rows[:2], gpu.rows[:2], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-2)


def test_compiled_cuda_run_trains(tiny_cfg):
    rows = Rows()
    s = train.run_training(config.apply_overrides(tiny_cfg, {"device": "cuda", "compile": True}), None, [rows])
    assert s["status"] == "finished"
    assert rows.rows[-1]["train_loss"] < rows.rows[0]["train_loss"]
