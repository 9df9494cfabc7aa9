"""Listing a runs directory again and again, re-reading only the runs whose files changed (no torch).

`RunScanner.scan()` lists the run directories and keys each run by the (inode, size, mtime) of its
config.toml, summary.json, lock and metrics.jsonl: a run whose key is the one of the last scan keeps
its `RunInfo` (its config is not parsed again, its summary not read again, and what `RunInfo.steps_and_best`
read stays). The lock is probed only for runs whose summary says they train (their process may have
died without touching a file). `changed` says whether anything differs from the last scan, so a front
end does nothing when nothing happened.
"""

from __future__ import annotations

import os
from pathlib import Path

from grok_tui.store import control
from grok_tui.store.index import ConfigIndex
from grok_tui.store.names import name_error
from grok_tui.store.runs import RunInfo, read_run

KEY_FILES = ("config.toml", "summary.json", control.LOCK_NAME, "metrics.jsonl")


def _key(path: str) -> tuple | None:
    out = []
    for name in KEY_FILES:
        try:
            st = os.stat(os.path.join(path, name))
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out) if out[0] is not None else None  # no config.toml: not a run (yet)


class RunScanner:
    """The runs under `root`, kept between scans."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._runs: dict[str, tuple[tuple, bool | None, RunInfo]] = {}  # id -> (key, alive, info)
        self._names: dict[str, bool] = {}  # directory name -> is a valid run id
        self._index: ConfigIndex | None = None
        self.opened = 0  # runs read (config parsed, summary read) so far: unchanged runs add nothing
        self.complete = True  # the last scan read every run that changed (no `limit` cut it short)

    def _is_run_name(self, name: str) -> bool:
        ok = self._names.get(name)
        if ok is None:
            ok = self._names[name] = name_error("run", name) is None
        return ok

    def _alive(self, info: RunInfo) -> bool | None:
        """Whether a run whose summary says it trains has a process (None: the summary says it does not)."""
        if info.summary.get("status") in ("running", "paused"):
            return control.runner_alive(info.path, info.summary)
        return None

    def scan(self, limit: int | None = None) -> tuple[list[RunInfo], bool]:
        """(the runs by id, whether anything changed since the last scan). With `limit`, at most that
        many runs are read anew in this call (the rest keep their old state or wait): a first scan of a
        large directory can show its first runs early; call again until `complete`."""
        try:
            names = sorted(e.name for e in os.scandir(self.root) if e.is_dir() and self._is_run_name(e.name))
        except OSError:
            names = []
        changed = False
        out: list[RunInfo] = []
        seen = set()
        opened = 0
        self.complete = True
        root = os.fspath(self.root)
        for name in names:
            if limit is not None and opened >= limit:  # this call's share is read: the rest wait unchecked
                self.complete = False
                seen.add(name)
                if name in self._runs:
                    out.append(self._runs[name][2])
                continue
            key = _key(os.path.join(root, name))
            if key is None:
                continue
            seen.add(name)
            old = self._runs.get(name)
            if old is not None and old[0] == key:
                alive = self._alive(old[2]) if old[1] is not None else None
                if alive == old[1]:
                    out.append(old[2])
                    continue
            if limit is not None and opened >= limit:
                self.complete = False
                if old is not None:
                    out.append(old[2])
                continue
            if self._index is None:  # configs come from the runs' derived index where it is current
                self._index = ConfigIndex(self.root)
            try:
                info = read_run(self.root / name, self._index)
            except Exception:  # noqa: BLE001 - removed or unreadable meanwhile: not listed this time
                seen.discard(name)
                self._runs.pop(name, None)
                changed |= old is not None
                continue
            opened += 1
            self._runs[name] = (key, self._alive(info), info)
            out.append(info)
            changed = True
        for gone in set(self._runs) - seen:
            del self._runs[gone]
            changed = True
        if opened and self.complete and self._index is not None:
            self._index.save()
        self.opened += opened
        return out, changed
