import pytest
import torch

from grok_tui import config

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_cfg():
    """The smoke preset cut to a few dozen steps on the CPU."""
    return config.resolve("smoke", overrides={"steps": 60, "eval_every": 10, "checkpoint_every": 20,
                                              "device": "cpu"})


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    d = tmp_path / "runs"
    monkeypatch.setenv("GROK_TUI_RUNS_DIR", str(d))
    return d
