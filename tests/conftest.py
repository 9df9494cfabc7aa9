import pytest
import torch

from grok_tui.spec.resolve import resolve

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_cfg():
    """The smoke preset cut to a few dozen steps on the CPU."""
    return resolve("smoke", overrides={"steps": 60, "eval_every": 10, "checkpoint_every": 20,
                                              "device": "cpu"})


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    d = tmp_path / "runs"
    monkeypatch.setenv("GROK_TUI_RUNS_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def smoke_pair(tmp_path_factory):
    """A runs dir with two short smoke runs for the connectivity tests: 'a' (seed 0, checkpoints every
    100 steps and at its memorized milestone, 300 steps) and 'b' (seed 1, milestones and step 300)."""
    from helpers import train_run

    root = tmp_path_factory.mktemp("smoke_pair") / "runs"
    for name, seed, every in (("a", 0, 100), ("b", 1, 0)):
        cfg = resolve("smoke", overrides={"steps": 300, "eval_every": 50, "checkpoint_every": every,
                                                 "seed": seed, "device": "cpu"})
        train_run(cfg, root / name)
    return root
