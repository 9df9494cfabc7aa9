"""Ids of new runs and sweeps: a name the user gave (checked), else <date>-<time>-<what it is> (no torch)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from grok_tui.spec.config import Config
from grok_tui.spec.ops import get_op
from grok_tui.store.names import check_name

# <runs>/.start/<id>.toml and .log: the config of a run the app launches and the runner's output until
# its run directory exists (tui/followed.py); the runner removes them itself once that directory exists
START_DIR = ".start"


def new_id(kind: str, stem: str, name: str | None, taken: Callable[[str], bool]) -> str:
    """`name` when given (checked), else `<date>-<time>-<stem>`, then `-2`, `-3`, ... while `taken(id)`."""
    if name is not None:
        return check_name(kind, name)
    stem = f"{datetime.now():%Y%m%d-%H%M%S}-{stem}"
    new, n = stem, 1
    while taken(new):
        n += 1
        new = f"{stem}-{n}"
    return new


def run_id_taken(root: Path, run_id: str) -> bool:
    """An id is taken by its run directory, or by the start file of a run the app launches under it
    (``<root>/.start/<id>.toml``, claimed before its runner makes the directory: store.runs.claim_start_file)."""
    root = Path(root)
    return os.path.lexists(root / run_id) or os.path.lexists(root / START_DIR / f"{run_id}.toml")


def run_stem(cfg: Config) -> str:
    """The generated part of a run id after its date and time: <op>-p<p>-<optimizer>."""
    return f"{get_op(cfg.data.op).name}-p{cfg.data.p}-{cfg.optim.optimizer}"


def new_run_id(root: Path, cfg: Config, name: str | None = None) -> str:
    """`name`, or <date>-<time>-<op>-p<p>-<optimizer> not yet taken under root (run_id_taken)."""
    return new_id("run", run_stem(cfg), name, lambda run_id: run_id_taken(root, run_id))
