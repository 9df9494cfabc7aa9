"""What the CLI says around a command: usage lines that name the arguments, `runs show` with the settings
the run's optimizer reads. No torch needed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grok_tui.cli.main import app

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


@pytest.mark.parametrize("command, usage", [
    (["connect"], "connect [OPTIONS] A B"),
    (["landscape"], "landscape [OPTIONS] CKPT"),
    (["plot"], "plot [OPTIONS] [RUN...]"),
    (["runs", "show"], "runs show [OPTIONS] RUN"),
    (["stop"], "stop [OPTIONS] RUN"),
])
def test_usage_lines_name_the_arguments(command, usage):
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if "Usage:" in ln)
    assert line.strip().endswith(usage) and "{" not in line, line


def test_a_missing_argument_is_named_as_in_the_usage():
    res = CliRunner().invoke(app, ["connect", "a@1"])
    assert res.exit_code == 2 and "Missing argument 'B'" in res.output


def _show(runs: Path, run: str) -> str:
    """The [optim] line of `runs show` (however the console wrapped it)."""
    res = CliRunner().invoke(app, ["runs", "show", run, "--runs-dir", str(runs)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    return "optim " + text.split(" optim ", 1)[1].split(" train steps=", 1)[0]


def test_runs_show_lists_the_settings_the_runs_optimizer_reads(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES, runs)
    line = _show(runs, "smoke-lr2e-3")  # AdamW
    words = {w.split("=")[0] for w in line.split()[1:]}
    assert {"optimizer", "lr", "weight_decay", "beta1", "beta2", "eps", "warmup_steps", "grokfast_lambda"} <= words
    assert not words & {"momentum", "nesterov", "lion_beta1", "lion_beta2", "muon_lr", "prodigy_d_coef",
                        "agd_gain", "grokfast_alpha"}, line
    toml = runs / "smoke-wd0.3" / "config.toml"
    toml.write_text(toml.read_text().replace('optimizer = "adamw"', 'optimizer = "sgd"')
                    .replace("momentum = 0.0", "momentum = 0.9"))
    words = {w.split("=")[0] for w in _show(runs, "smoke-wd0.3").split()[1:]}
    assert {"momentum", "nesterov"} <= words and not words & {"beta1", "beta2", "eps"}
    res = CliRunner().invoke(app, ["runs", "show", "smoke-wd0.3", "--json", "--runs-dir", str(runs)])
    assert "beta1" in json.loads(res.output)["config"]["optim"]  # --json keeps the whole config
