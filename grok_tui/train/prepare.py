"""Everything between a command line and the loop: a new run or a resume, checked before any file changes.

``prepare_run`` resolves the config (preset < file < flags), builds the trainer (restored from the
run's newest resumable checkpoint on a resume) and only then opens the run directory for writing,
so every problem a run can meet before its first step is one sentence that leaves the files as they
were. Front ends call it and ``trainer.run_training``; they parse and render, nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grok_tui.errors import ConfigError
from grok_tui.spec.config import Config
from grok_tui.spec.resolve import resolve
from grok_tui.store import ids
from grok_tui.store import runs as store
from grok_tui.store.files import atomic_write_text, checkpoints, ckpt_name, latest_state
from grok_tui.train.trainer import Trainer, build_trainer

# What a resume may change: the budget and how the run is carried out, never what it computes.
RESUME_CHANGEABLE = ("steps", "device", "eval_every", "checkpoint_every", "threads")


@dataclass
class PreparedRun:
    cfg: Config
    trainer: Trainer
    writer: store.RunWriter
    resume_from: tuple[Path, Path] | None  # (weights, state) of the checkpoint a resume starts from
    note: str | None = None  # a sentence for the user about how the run starts (a restart from step 0)


def resume_paths(run_path: Path) -> tuple[Path, Path]:
    """(weights, state) of the newest resumable checkpoint of a run."""
    ckpt_dir = Path(run_path) / "checkpoints"
    found = latest_state(ckpt_dir)
    if found is None:
        raise ConfigError(f"run {Path(run_path).name} has checkpoints but none is resumable (the newest one's "
                          ".state files are missing); start a new run from its config: grok-tui run "
                          f"--config {Path(run_path) / 'config.toml'} --name NEW.")
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
        cfg = resolve(preset, config_file, overrides)
        ids.new_run_id(runs_dir, cfg, name)  # a bad name is refused before the model is built
        trainer = build_trainer(cfg)  # the model and split exist before the run directory does
        return PreparedRun(cfg, trainer, store.create_writer(runs_dir, cfg, name), None)
    if preset is not None or config_file is not None or name is not None:
        raise ConfigError("--resume takes the run's own config; --preset, --config and --name do not apply.")
    bad = sorted(set(overrides) - set(RESUME_CHANGEABLE))
    if bad:
        raise ConfigError(f"--resume can only change {', '.join(RESUME_CHANGEABLE)}, not {', '.join(bad)}.")
    info = store.open_run(runs_dir, resume)
    if info.status == "running":
        raise ConfigError(f"run '{resume}' is still running (pid {info.summary.get('pid')}); stop it first.")
    cfg = resolve(config_file=info.path / "config.toml", overrides=overrides)
    ckpt_dir = info.path / "checkpoints"
    if latest_state(ckpt_dir) is None and not checkpoints(ckpt_dir):
        lost_history(info, resume)
        return _restart(info, resume, cfg)
    resume_from = resume_paths(info.path)
    trainer = build_trainer(cfg, resume_from)  # a bad checkpoint is found before anything is written
    if trainer.step >= cfg.train.steps:
        if trainer.step == cfg.train.steps:
            raise ConfigError(f"run '{resume}' has finished its {trainer.step} steps already; nothing was changed "
                              "(give a larger --steps to train it further).")
        raise ConfigError(f"run '{resume}' has run {trainer.step} steps already; --steps "
                          f"{cfg.train.steps} would end it before it starts.")
    # the lock first (a concurrent resume is refused here), then the rows and events past the
    # checkpoint are dropped and a torn last line repaired, before anything is appended
    writer = store.RunWriter(info.path, cfg, resume=True, resume_step=trainer.step)
    writer.write_summary(status="running")
    atomic_write_text(info.path / "config.toml", cfg.to_toml())
    return PreparedRun(cfg, trainer, writer, resume_from)


def lost_history(info: store.RunInfo, resume: str) -> None:
    """Refuse (ConfigError) to restart a run that finished, stopped or wrote a checkpoint: its checkpoints
    were deleted (to free disk, say), and a restart from step 0 would overwrite its history."""
    wrote = sum(e.get("event") == "checkpoint" for e in info.events())
    status = info.status
    if wrote or status in ("finished", "stopped"):
        did = f"wrote {wrote} checkpoint{'s' if wrote != 1 else ''}" if wrote else f"is {status}"
        raise ConfigError(f"run '{resume}' {did} but {info.path / 'checkpoints'} holds none now, so there is "
                          "nothing to resume from; its history is kept as it is (start a new run from its "
                          f"config: grok-tui run --config {info.path / 'config.toml'} --name NEW).")


def _restart(info: store.RunInfo, resume: str, cfg: Config) -> PreparedRun:
    """A run stopped (e.g. SIGKILLed) before its first checkpoint: there is nothing to resume from, so it
    starts again from step 0 with its own config. Its rows and events so far came from the same config
    and seed and are written again, so they are cleared first (no step appears twice)."""
    trainer = build_trainer(cfg)
    writer = store.RunWriter(info.path, cfg, resume=True)
    for f in ("metrics.jsonl", "events.jsonl"):
        os.truncate(info.path / f, 0)
    writer.summary = {k: v for k, v in writer.summary.items()
                      if k in ("pid", "pid_start", "host", "sweep", "sweep_member", "ensemble")}
    writer.write_summary(status="running")
    atomic_write_text(info.path / "config.toml", cfg.to_toml())
    note = (f"run '{resume}' stopped before its first checkpoint, so there is nothing to resume from; "
            "it starts again from step 0 with its own config.")
    return PreparedRun(cfg, trainer, writer, None, note)
