"""Checkpoint references: `RUN@STEP`, `RUN@memorized`, `RUN@grokked`, `RUN@last` or a .safetensors path,
resolved to a file; and the run a checkpoint file lives in (no torch)."""

from __future__ import annotations

from pathlib import Path

from grok_tui.errors import CheckpointError, ConfigError
from grok_tui.spec.config import MILESTONES
from grok_tui.store.names import name_error
from grok_tui.store.runs import RunInfo, open_run


def resolve_checkpoint(ref: str, root: Path) -> Path:
    """`RUN@STEP`, `RUN@memorized`, `RUN@grokked`, `RUN@last` or a path to a .safetensors file."""
    if ref.endswith(".safetensors") and "@" not in ref:
        path = Path(ref)
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {ref} does not exist.")
        return path
    run_id, _, which = ref.partition("@")
    which = which or "last"
    run = open_run(root, run_id)
    ckpts = dict(run.checkpoints())
    if not ckpts:
        raise CheckpointError(f"run '{run_id}' has no checkpoints.")
    if which == "last":
        return ckpts[max(ckpts)]
    if which in MILESTONES:
        step = run.milestone_step(which)
        if step is None:
            raise CheckpointError(f"run '{run_id}' has not {which} (no such milestone yet).")
    else:
        try:
            step = int(which)
        except ValueError:
            raise ConfigError(f"'{ref}' must name a step, memorized, grokked or last after '@'.") from None
    if step not in ckpts:
        near = ", ".join(str(s) for s in sorted(ckpts)[:8])
        raise CheckpointError(f"run '{run_id}' has no checkpoint at step {step} (it has {near}"
                              f"{', ...' if len(ckpts) > 8 else ''}).")
    return ckpts[step]


def milestone_checkpoints(info: RunInfo) -> dict[str, int]:
    """The milestones of a run that have a checkpoint, with its step ({"memorized": 260, ...}): what
    RUN@memorized and RUN@grokked name."""
    steps = {s for s, _ in info.checkpoints()}
    found = {m: info.milestone_step(m) for m in MILESTONES}
    return {m: s for m, s in found.items() if s is not None and s in steps}


def run_of_checkpoint(path: Path) -> RunInfo | None:
    """The run a checkpoint file lives in, if it lives in a run directory."""
    run_dir = Path(path).resolve().parent.parent
    if (run_dir / "config.toml").is_file() and name_error("run", run_dir.name) is None:
        return open_run(run_dir.parent, run_dir.name)
    return None
