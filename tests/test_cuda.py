"""GPU-only paths: skipped where CUDA is absent."""

import pytest
import torch

from grok_tui.spec import config
from grok_tui.train import trainer as train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class Rows(train.Callback):
    def __init__(self):
        self.rows = []

    def on_eval(self, row):
        self.rows.append(row)


def test_cuda_run_trains_and_is_deterministic(tiny_cfg):
    cfg = config.apply_overrides(tiny_cfg, {"device": "cuda"})
    a, b = Rows(), Rows()
    s = train.run_training(cfg, None, [a])
    train.run_training(cfg, None, [b])
    assert s["status"] == "finished" and s["device"].startswith("cuda")
    assert a.rows[-1]["train_loss"] < a.rows[0]["train_loss"]
    assert [r["step"] for r in a.rows] == [r["step"] for r in b.rows]
    assert a.rows[0]["train_loss"] == pytest.approx(b.rows[0]["train_loss"], rel=1e-4)


def test_compiled_cuda_run_trains(tiny_cfg):
    rows = Rows()
    s = train.run_training(config.apply_overrides(tiny_cfg, {"device": "cuda", "compile": True}), None, [rows])
    assert s["status"] == "finished"
    assert rows.rows[-1]["train_loss"] < rows.rows[0]["train_loss"]
