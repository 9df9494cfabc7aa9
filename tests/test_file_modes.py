"""Every file of a run directory honours the user's umask as any file the user creates does: under umask
022 a colleague on a shared machine can read all of a run (config, summary, checkpoints, connectivity
results, figures), under 077 nobody else can read any of it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A short run, a fitted connectivity curve between two of its checkpoints (result + bend checkpoint) and
# a figure, in one interpreter (one torch import).
SCRIPT = """
import sys
from grok_tui.cli.main import app
runs = sys.argv[1]
for args in (
    ["run", "--preset", "smoke", "--steps", "40", "--eval-every", "10", "--checkpoint-every", "20",
     "--device", "cpu", "--threads", "1", "--name", "r"],
    ["connect", "r@20", "r@40", "--curve", "polyline", "--points", "3", "--fit-steps", "2", "--no-grad-norm",
     "--device", "cpu", "--threads", "1", "--json"],
    ["plot", "r"],
    ["plot", "r", "--csv", runs + "/r/figures/val_acc.csv"],
):
    try:
        rc = app([*args, "--runs-dir", runs], standalone_mode=False)
    except SystemExit as e:
        rc = e.code
    if rc:
        sys.exit(f"{args[0]} exited {rc}")
"""


@pytest.mark.parametrize("umask, want", [(0o022, 0o644), (0o077, 0o600)])
def test_every_file_of_a_run_follows_the_umask(tmp_path, umask, want):
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(runs)], env=env, cwd=tmp_path, umask=umask,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    files = {p.relative_to(runs).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in (runs / "r").rglob("*") if p.is_file()}
    kinds = {"config.toml", "summary.json", "metrics.jsonl", "events.jsonl", "lock",
             "checkpoints/step-00000020.safetensors", "checkpoints/step-00000020.json",
             "figures/val_acc.png", "figures/val_acc.csv"}
    assert kinds <= {k.removeprefix("r/") for k in files}, sorted(files)
    assert any(k.startswith("r/checkpoints/") and ".state." in k for k in files)
    assert any(k.startswith("r/connect/") and k.endswith(".json") for k in files)
    assert any(k.startswith("r/connect/") and ".bend" in k for k in files)
    wrong = {k: oct(m) for k, m in files.items() if m != want}
    assert not wrong, f"under umask {umask:03o} these are not {want:o}: {wrong}"
