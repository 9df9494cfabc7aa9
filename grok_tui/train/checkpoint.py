"""Checkpoint tensors: safetensors weights + a JSON sidecar, written atomically (temp file + rename).

``step-00001234.safetensors``   model weights; metadata holds the architecture and the step
``step-00001234.json``          step, metrics at that step, tags ("memorized", "grokked", "final"), arch
``step-00001234.state.safetensors`` + ``.state.json``   optimizer, RNG and data-order state for
                                --resume; kept for the newest checkpoint only

File names, atomic writes and the sidecar reader need no torch and live in ``store/files.py``.
"""

from __future__ import annotations

import dataclasses
import errno
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from grok_tui.errors import CheckpointError
from grok_tui.store import files
from grok_tui.store.files import ckpt_name
from grok_tui.train.model import Arch


def _save_tensors(tensors: dict[str, torch.Tensor], tmp: str, metadata: dict[str, str] | None = None) -> None:
    """safetensors' save_file, its I/O failures as OSError (a full disk is ENOSPC) like every other write."""
    try:
        save_file(tensors, tmp, metadata=metadata)
    except SafetensorError as e:
        full = "No space left" in str(e) or "os error 28" in str(e)
        raise OSError(errno.ENOSPC if full else errno.EIO, str(e).split(": ")[-1], tmp) from None


def write_weights(path: Path, weights: dict[str, torch.Tensor], arch: Arch, step: int, make_dirs: bool = True) -> Path:
    """Weights in checkpoint format (the architecture and step in the metadata), written atomically;
    a full disk is an OSError (ENOSPC) and leaves no partial file."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    meta = {"arch": json.dumps(dataclasses.asdict(arch)), "step": str(step)}
    files.atomic_write(Path(path), lambda tmp: _save_tensors(tensors, tmp, meta), make_dirs)
    return Path(path)


def save(directory: Path, step: int, model: torch.nn.Module, arch: Arch, metrics: dict, tags: list[str]) -> Path:
    """Write the weights and the sidecar of one checkpoint into `directory` (which must exist: a run
    directory removed under its writer is not made again); returns the .safetensors path."""
    base = directory / ckpt_name(step)
    write_weights(base.with_suffix(".safetensors"), model.state_dict(), arch, step, make_dirs=False)
    sidecar = {"step": step, "tags": tags, "metrics": metrics, "arch": dataclasses.asdict(arch)}
    files.atomic_write_text(base.with_suffix(".json"), json.dumps(sidecar, indent=1), make_dirs=False)
    return base.with_suffix(".safetensors")


def read_arch(path: Path) -> Arch:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return Arch(**json.loads(meta["arch"]))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist.") from None
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a grok-tui checkpoint ({e}).") from None


def load_weights(path: Path, arch: Arch | None = None) -> tuple[dict[str, torch.Tensor], Arch]:
    """The weights of a checkpoint and its architecture; checks it against `arch` when given."""
    path = Path(path)
    saved = read_arch(path)
    if arch is not None and saved != arch:
        diffs = [f"{f.name} {getattr(saved, f.name)} vs {getattr(arch, f.name)}"
                 for f in dataclasses.fields(Arch) if getattr(saved, f.name) != getattr(arch, f.name)]
        raise CheckpointError(f"checkpoint {path} does not fit this model: {', '.join(diffs)}.")
    try:
        return load_file(str(path)), saved
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt ({e}).") from None


def load_into(model: torch.nn.Module, path: Path, arch: Arch) -> None:
    weights, _ = load_weights(path, arch)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path} does not fit this model: {first}") from None


# --- resumable state: optimizer, RNG, data order ----------------------------------------------

def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict, template: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    for idx, st in info["scalars"].items():
        state.setdefault(int(idx), {}).update(st)
    groups = []
    for saved, cur in zip(info["param_groups"], template["param_groups"], strict=True):
        groups.append({k: (tuple(v) if isinstance(cur.get(k), tuple) else v) for k, v in saved.items()})
    return {"state": state, "param_groups": groups}


def save_state(directory: Path, step: int, optimizer: torch.optim.Optimizer, extra_tensors: dict[str, torch.Tensor],
               extra: dict[str, Any]) -> None:
    """Resumable state of the checkpoint at `step`; older state files are removed afterwards."""
    base = directory / (ckpt_name(step) + ".state")
    tensors, info = _flatten_optimizer(optimizer.state_dict())
    tensors.update({k: v.detach().contiguous().cpu() for k, v in extra_tensors.items()})
    files.atomic_write(Path(str(base) + ".safetensors"), lambda tmp: _save_tensors(tensors, tmp), make_dirs=False)
    files.atomic_write_text(Path(str(base) + ".json"), json.dumps({"step": step, "optimizer": info, **extra}),
                      make_dirs=False)
    for old in directory.glob("step-*.state.*"):
        if not old.name.startswith(ckpt_name(step) + "."):
            old.unlink(missing_ok=True)


def load_state(json_path: Path, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Restore the optimizer; return the other saved tensors and the JSON extras."""
    where = Path(json_path)  # the file the error is about
    try:
        info = json.loads(where.read_text())
        if not isinstance(info, dict) or not isinstance(info.get("optimizer"), dict):
            raise ValueError("not an object with an 'optimizer' object")
        where = Path(str(json_path).removesuffix(".json") + ".safetensors")
        tensors = load_file(str(where))
        where = Path(json_path)
        optimizer.load_state_dict(_unflatten_optimizer(tensors, info.pop("optimizer"), optimizer.state_dict()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, SafetensorError,
            RuntimeError) as e:
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"resume state {where} is corrupt or does not fit this run ({why}); "
                              "it cannot be resumed.") from None
    return {k: v for k, v in tensors.items() if not k.startswith("optim.")}, info
