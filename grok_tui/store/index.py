"""A derived cache of the runs' parsed configs beside them (``<runs>/.index.json``), so that listing a
thousand runs does not parse a thousand TOML files (0.7 ms each) on every `grok-tui runs`.

Each entry is keyed by the (inode, size, mtime) of the run's config.toml: an entry whose key differs
is read again from the file, and a missing, unreadable or foreign index is rebuilt. The run directory
stays the only record; the index is never read for anything the config file does not say, and it is
written only when something changed and the runs directory is writable (never in a run directory).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from grok_tui.errors import GrokError
from grok_tui.spec.config import Config, field_specs, from_dict
from grok_tui.spec.tomlfile import load_toml
from grok_tui.store.files import atomic_write_text, read_json

INDEX_NAME = ".index.json"


def _version() -> str:
    """Changes with the config's fields, so an index written by another version is rebuilt."""
    return "1:" + ",".join(sorted(field_specs()))


class ConfigIndex:
    """The parsed configs of the runs under `root`, from the index where it is current."""

    def __init__(self, root: Path):
        self.path = Path(root) / INDEX_NAME
        raw = read_json(self.path)
        ok = raw.get("version") == _version() and isinstance(raw.get("runs"), dict)
        self._old: dict[str, list] = raw["runs"] if ok else {}
        self._new: dict[str, list] = {}
        self.parsed = 0  # config files parsed in this listing (the rest came from the index)

    def config(self, run_dir: Path) -> Config | None:
        """The run's config (None when its config.toml is missing or not a valid config)."""
        path = Path(run_dir) / "config.toml"
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = [st.st_ino, st.st_size, st.st_mtime_ns]
        entry = self._old.get(path.parent.name)
        if isinstance(entry, list) and len(entry) == 4 and entry[:3] == key:
            self._new[path.parent.name] = entry
            try:
                return from_dict(entry[3]) if entry[3] is not None else None
            except (GrokError, TypeError, AttributeError):
                pass
        self.parsed += 1
        try:
            cfg = load_toml(path)
        except GrokError:
            cfg = None
        self._new[path.parent.name] = [*key, cfg.to_dict() if cfg is not None else None]
        return cfg

    def save(self) -> None:
        """Write the index when it changed (runs added, changed or gone); a read-only directory is fine."""
        if self._new == self._old:
            return
        try:
            atomic_write_text(self.path, json.dumps({"version": _version(), "runs": self._new}))
        except OSError:
            pass
