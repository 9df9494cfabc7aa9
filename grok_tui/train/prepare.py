"""Everything between a command line and the loop: a new run or a resume, checked before any file changes.

``prepare_run`` resolves the config (preset < file < flags), builds the trainer (restored from the
run's newest resumable checkpoint on a resume) and only then opens the run directory for writing,
so every problem a run can meet before its first step is one sentence that leaves the files as they
were. Front ends call it and ``trainer.run_training``; they parse and render, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grok_tui.errors import ConfigError
from grok_tui.spec import config as config_mod
from grok_tui.spec.config import Config
from grok_tui.store import runs as store
from grok_tui.store.files import atomic_write_text, ckpt_name, latest_state
from grok_tui.train.trainer import Trainer, build_trainer

# What a resume may change: the budget and how the run is carried out, never what it computes.
RESUME_CHANGEABLE = ("steps", "device", "eval_every", "checkpoint_every", "threads")


@dataclass
class PreparedRun:
    cfg: Config
    trainer: Trainer
    writer: store.RunWriter
    resume_from: tuple[Path, Path] | None  # (weights, state) of the checkpoint a resume starts from


def resume_paths(run_path: Path) -> tuple[Path, Path]:
    """(weights, state) of the newest resumable checkpoint of a run."""
    ckpt_dir = Path(run_path) / "checkpoints"
    found = latest_state(ckpt_dir)
    if found is None:
        raise ConfigError(f"run {Path(run_path).name} has no resumable checkpoint.")
    step, state_json = found
    weights = ckpt_dir / (ckpt_name(step) + ".safetensors")
    if not weights.is_file():
        raise ConfigError(f"run {Path(run_path).name} lacks the weights of its step-{step} checkpoint.")
    return weights, state_json


def prepare_run(runs_dir: str | Path, *, resume: str | None = None, preset: str | None = None,
                config_file: str | Path | None = None, name: str | None = None,
                overrides: dict[str, Any] | None = None) -> PreparedRun:
    """A new run (preset < config file < overrides) or the resume of run `resume` with a few overrides."""
    runs_dir, overrides = Path(runs_dir), {k: v for k, v in (overrides or {}).items() if v is not None}
    if resume is None:
        cfg = config_mod.resolve(preset, config_file, overrides)
        store.new_run_id(runs_dir, cfg, name)  # a bad name is refused before the model is built
        trainer = build_trainer(cfg)  # the model and split exist before the run directory does
        return PreparedRun(cfg, trainer, store.create_writer(runs_dir, cfg, name), None)
    if preset or config_file or name:
        raise ConfigError("--resume takes the run's own config; --preset, --config and --name do not apply.")
    bad = sorted(set(overrides) - set(RESUME_CHANGEABLE))
    if bad:
        raise ConfigError(f"--resume can only change {', '.join(RESUME_CHANGEABLE)}, not {', '.join(bad)}.")
    info = store.open_run(runs_dir, resume)
    if info.status == "running":
        raise ConfigError(f"run '{resume}' is still running (pid {info.summary.get('pid')}); stop it first.")
    cfg = config_mod.resolve(config_file=info.path / "config.toml", overrides=overrides)
    resume_from = resume_paths(info.path)
    trainer = build_trainer(cfg, resume_from)  # a bad checkpoint is found before anything is written
    if trainer.step > cfg.train.steps:
        raise ConfigError(f"run '{resume}' has run {trainer.step} steps already; --steps "
                          f"{cfg.train.steps} would end it before it starts.")
    # the lock first (a concurrent resume is refused here), then the rows and events past the
    # checkpoint are dropped and a torn last line repaired, before anything is appended
    writer = store.RunWriter(info.path, cfg, resume=True, resume_step=trainer.step)
    writer.write_summary(status="running")
    atomic_write_text(info.path / "config.toml", cfg.to_toml())
    return PreparedRun(cfg, trainer, writer, resume_from)
