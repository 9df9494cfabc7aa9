"""End to end: the README's main command memorizes and then groks (about 15-30 s on one CPU thread).
No assertion depends on how long it takes; the subprocess timeout only stops a child that hangs."""

import subprocess
import sys

import pytest

from grok_tui.store import refs, runs


@pytest.mark.slow
def test_smoke_preset_memorizes_then_groks(runs_dir):
    out = subprocess.run([sys.executable, "-m", "grok_tui", "run", "--preset", "smoke", "--name", "smoke",
                          "--runs-dir", str(runs_dir), "--device", "cpu", "--threads", "1"],
                         capture_output=True, text=True, timeout=1800)  # a guard against a hung child only
    assert out.returncode == 0, out.stderr
    info = runs.open_run(runs_dir, "smoke")
    events = [e["event"] for e in info.events()]
    assert events.index("memorized") < events.index("grokked")
    mem, grok = info.summary["memorized_step"], info.summary["grokked_step"]
    assert mem < grok
    assert info.status == "finished" and info.summary["steps_run"] == info.config.train.steps
    assert info.config.train.threads == 1
    assert info.summary["best_val_acc"] >= info.config.train.grokked_threshold
    # seed 0 on one thread ended at val acc 1.000 here; the margin leaves room for other CPUs' rounding
    assert info.metrics()[-1]["val_acc"] >= 0.95
    assert "memorized at step" in out.stdout and "grokked at step" in out.stdout
    assert refs.resolve_checkpoint("smoke@grokked", runs_dir).is_file()
