"""The front that only reads files never imports torch (nor matplotlib, a dependency only the figure
functions import): importing the CLI, --help, runs, runs show, ops, presets, optimizers and the TUI's
first frame, each in a fresh interpreter (docs/architecture.md, "Layers")."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from grok_tui.spec.presets import preset

ROOT = Path(__file__).resolve().parents[1]

# Runs the Typer app in this process, then says whether torch was imported (the last line of stdout).
CLI = """
import sys
from grok_tui.cli.main import app
args = sys.argv[1:]
rc = app(args, standalone_mode=False) if args != ["--import-only"] else 0
print(json.dumps({"rc": rc or 0, "torch": "torch" in sys.modules, "matplotlib": "matplotlib" in sys.modules}))
"""

TUI = """
import asyncio, sys
from grok_tui.tui.app import make_app

async def first_frame():
    app = make_app(runs_dir=sys.argv[1])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()

asyncio.run(first_frame())
print(json.dumps({"rc": 0, "torch": "torch" in sys.modules, "matplotlib": "matplotlib" in sys.modules}))
"""

# The Inside view (i) on a run with progress rows: the spectrum's bars, its heatmap and the loss chart.
TUI_INSIDE = """
import asyncio, sys
from grok_tui.tui.app import make_app
from grok_tui.tui.widgets.spectrum import SpectrumBars, SpectrumHeatmap

async def inside():
    app = make_app(runs_dir=sys.argv[1], attach_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.attach("plain")
        await pilot.press("i")
        for _ in range(200):
            if app.screen.query_one(SpectrumHeatmap).columns:
                break
            await pilot.pause(0.1)
        return app.screen.query_one(SpectrumBars).row is not None

shown = asyncio.run(inside())
print(json.dumps({"rc": 0, "shown": shown, "torch": "torch" in sys.modules, "matplotlib": "matplotlib" in sys.modules}))
"""


# The app's whole form path: a bad value is refused at its field (validation on the UI thread), then a
# good config is started; the child trains (torch is imported there), the app process never imports it.
TUI_START = """
import asyncio, os, signal, sys, time
from pathlib import Path
from textual.widgets import Input, Static
from grok_tui.tui.app import make_app

runs = Path(sys.argv[1])

async def type_into(pilot, name, text):
    w = pilot.app.screen.query_one(f"#f-{name}", Input)
    w.focus()
    await pilot.pause()
    w.value = ""
    await pilot.press(*list(text))

async def start_twice():
    app = make_app(runs_dir=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await type_into(pilot, "p", "1")
        app.screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        await pilot.pause()
        refused = "p must be at least 2" in str(app.screen.query_one("#err-p", Static).render())
        for name, text in (("p", "7"), ("steps", "20"), ("eval_every", "10"), ("threads", "1"), ("device", "cpu")):
            await type_into(pilot, name, text)
        app.screen.query_one("#chart-acc").focus()
        await pilot.press("s")
        await pilot.pause()
        started = app.live is not None
        return refused, started

refused, started = asyncio.run(start_twice())
print(json.dumps({"rc": 0, "torch": "torch" in sys.modules, "refused": refused, "started": started}))
"""


def _python(code: str, *args: str) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "120", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", "import json\n" + code, *args], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    *out, last = res.stdout.strip().splitlines()
    return json.loads(last), "\n".join(out)


@pytest.fixture
def plain_runs(tmp_path) -> Path:
    """One finished run, written as plain files (no engine): config, summary, rows, events, a checkpoint."""
    d = tmp_path / "runs" / "plain"
    (d / "checkpoints").mkdir(parents=True)
    cfg = preset("smoke")
    (d / "config.toml").write_text(cfg.to_toml())
    (d / "summary.json").write_text(json.dumps({"status": "finished", "steps_run": 40, "memorized_step": 20,
                                                "grokked_step": 40, "best_val_acc": 1.0}))
    rows = [{"step": s, "train_acc": a, "val_acc": v, "train_loss": 1.0 / s, "val_loss": 2.0 / s}
            for s, a, v in ((20, 1.0, 0.4), (40, 1.0, 1.0))]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "events.jsonl").write_text(json.dumps({"event": "memorized", "step": 20}) + "\n"
                                    + json.dumps({"event": "grokked", "step": 40}) + "\n")
    (d / "checkpoints" / "step-00000040.safetensors").write_bytes(b"not read by these commands")
    (d / "checkpoints" / "step-00000040.json").write_text(json.dumps({"step": 40, "tags": ["final"]}))
    return d.parent


@pytest.mark.parametrize("args, shows", [
    (["--import-only"], ""),
    (["--help"], "Without a command, opens the TUI"),
    (["runs"], "plain"),
    (["runs", "--where", "grokked train_frac>=0.5", "--sort", "-grok"], "plain"),
    (["runs", "show", "plain"], "checkpoints at steps: 40"),
    (["ops"], "x^2+xy+y^2"),
    (["presets"], "seed004"),
    (["optimizers"], "lion_beta2"),
    (["inspect", "--help"], "--checkpoints"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_cli_without_torch(args, shows, plain_runs):
    runs_dir = ["--runs-dir", str(plain_runs)] if args[0] == "runs" else []
    result, out = _python(CLI, *args, *runs_dir)
    assert result["rc"] == 0, out
    assert shows in out
    assert not result["torch"], f"grok-tui {' '.join(args)} imported torch"
    assert not result["matplotlib"], f"grok-tui {' '.join(args)} imported matplotlib"


def test_tui_first_frame_without_torch(plain_runs):
    result, _ = _python(TUI, str(plain_runs))
    assert not result["torch"], "the TUI's first frame imported torch"
    assert not result["matplotlib"], "the TUI's first frame imported matplotlib"


def test_tui_inside_view_without_torch(plain_runs):
    rows = [{"step": s, "basis": "additive", "spectrum": [1.0, 2.0 * s, 0.5], "key_freqs": [2], "gini": 0.5,
             "ipr": 0.6, "restricted_loss": 0.1, "excluded_loss": 2.0} for s in (20, 40)]
    (plain_runs / "plain" / "progress.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result, _ = _python(TUI_INSIDE, str(plain_runs))
    assert result["shown"], "the Inside view did not show the progress rows"
    assert not result["torch"], "the Inside view imported torch"
    assert not result["matplotlib"], "the Inside view imported matplotlib"


def test_tui_form_and_start_without_torch(tmp_path):
    """Validating the form and pressing Start stay torch-free in the app's process (the run is a child)."""
    runs = tmp_path / "runs"
    try:
        result, _ = _python(TUI_START, str(runs))
        assert result["refused"], "the bad p was not refused at its field"
        assert result["started"], "the good config did not start a run"
        assert not result["torch"], "the form or Start imported torch in the app's process"
    finally:  # the started child trains 20 steps on its own; never leave it behind
        for summary in runs.glob("*/summary.json"):
            pid = json.loads(summary.read_text() or "{}").get("pid")
            if isinstance(pid, int):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


def test_openmp_threads_spin_briefly_in_every_command():
    """The CLI sets GOMP_SPINCOUNT=1000 before torch loads, unless the user set a wait policy of their own."""
    code = ("import os, sys; sys.argv = ['grok-tui', 'ops']; from grok_tui.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for extra, expect in (({}, "1000 None"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "None ACTIVE"),
                          ({"GOMP_SPINCOUNT": "50"}, "50 None")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**env, **extra})
        assert out.stdout.strip().splitlines()[-1] == expect
