"""The CLI keeps a step's freed buffers in the heap (train/malloc.py): page faults per step, not times."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from grok_tui.train import malloc

# Canonical's step (its 0.1-2 MiB buffers are what glibc would mmap or trim); one thread.
STEPS = r"""
import resource, sys
{setup}
import torch
from grok_tui.train.trainer import build_trainer
torch.set_num_threads(1)
from grok_tui.spec import config
from grok_tui.spec.presets import preset
tr = build_trainer(config.apply_overrides(preset("canonical"), {{"device": "cpu"}}))
for _ in range(4):
    tr.train_step()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    tr.train_step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 8)
"""
THROUGH_MAIN = ("sys.argv = ['grok-tui', 'ops']\nfrom grok_tui.cli.main import main\n"
                "try:\n    main()\nexcept SystemExit:\n    pass")


def _faults_per_step(setup: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in malloc.USER_SETTINGS}
    out = subprocess.run([sys.executable, "-c", STEPS.format(setup=setup)], capture_output=True, text=True,
                         check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def _glibc() -> bool:
    code = "from grok_tui.train import malloc; print(malloc.keep_freed_memory())"
    env = {k: v for k, v in os.environ.items() if k not in malloc.USER_SETTINGS}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip() == "True"


@pytest.mark.skipif(not sys.platform.startswith("linux") or "LD_PRELOAD" in os.environ or not _glibc(),
                    reason="glibc's malloc only (not another allocator preloaded)")
def test_cli_keeps_freed_memory_so_a_step_faults_no_pages_in():
    plain = _faults_per_step("")
    tuned = _faults_per_step(THROUGH_MAIN)
    assert plain > 150, f"the untuned step should fault its buffers in afresh ({plain} faults a step)"
    assert tuned < plain / 4, (plain, tuned)


def test_a_users_malloc_setting_stands():
    code = "from grok_tui.train import malloc; print(malloc.keep_freed_memory())"
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"
