"""Sweep summaries as files (runs/sweeps/<sweep-id>.json, written by sweep/plan.py): found and read
without the engine, so the TUI and `grok-tui plot --phase` read them without importing torch."""

from __future__ import annotations

from pathlib import Path

from grok_tui.errors import ConfigError
from grok_tui.store.files import read_json

SWEEPS_DIR = "sweeps"


def list_sweeps(runs_dir: str | Path) -> list[Path]:
    """Summary files of the sweeps under runs_dir, newest first."""
    d = Path(runs_dir) / SWEEPS_DIR
    if not d.is_dir():
        return []
    return sorted(d.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)


def load_summary(path: str | Path) -> dict:
    """A saved sweep summary; ConfigError when it is missing or not a sweep summary."""
    s = read_json(Path(path))
    if "points" not in s or "sweep_id" not in s:
        raise ConfigError(f"{path} is not a sweep summary.")
    return s
