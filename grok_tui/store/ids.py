"""Ids of new runs and sweeps: a name the user gave (checked), else <date>-<time>-<what it is> (no torch)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from grok_tui.spec.config import Config
from grok_tui.spec.ops import get_op
from grok_tui.store.names import check_name


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


def new_run_id(root: Path, cfg: Config, name: str | None = None) -> str:
    """`name`, or <date>-<time>-<op>-p<p>-<optimizer> not yet under root."""
    stem = f"{get_op(cfg.data.op).name}-p{cfg.data.p}-{cfg.optim.optimizer}"
    return new_id("run", stem, name, lambda run_id: (Path(root) / run_id).exists())
