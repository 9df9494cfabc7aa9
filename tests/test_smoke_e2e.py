"""End to end: the README's main command memorizes and then groks (about 10-20 s on 2 CPU cores)."""

import subprocess
import sys

import pytest

from grok_tui.store import runs


@pytest.mark.slow
def test_smoke_preset_memorizes_then_groks(runs_dir):
    out = subprocess.run([sys.executable, "-m", "grok_tui", "run", "--preset", "smoke", "--name", "smoke",
                          "--runs-dir", str(runs_dir), "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    info = runs.open_run(runs_dir, "smoke")
    events = [e["event"] for e in info.events()]
    assert events.index("memorized") < events.index("grokked")
    mem, grok = info.summary["memorized_step"], info.summary["grokked_step"]
    assert mem < grok
    assert info.summary["best_val_acc"] >= 0.99
    assert info.metrics()[-1]["val_acc"] >= 0.98  # seed 0 ends at 0.9896: 4 of 385 val examples wrong
    assert "memorized at step" in out.stdout and "grokked at step" in out.stdout
    assert runs.resolve_checkpoint("smoke@grokked", runs_dir).is_file()
