"""The one rule for the names a user gives: run ids, sweep ids and result names (no torch).

A name is one directory or file name under the runs directory (or a run's connect/): it cannot reach
outside it, hide, clash with the sweeps' own directory, or be blank. Every command that takes a name
or a run reference (`--name`, `--resume`, `runs show`, `plot`, `RUN@STEP`) checks it here.
"""

from __future__ import annotations

from grok_tui.errors import ConfigError

RESERVED = ("sweeps",)  # <runs-dir>/sweeps holds the sweep summaries
MAX_LEN = 120  # room for a sweep member's -000 and a result's .bend1.safetensors within 255 bytes


def name_error(kind: str, name: str) -> str | None:
    """The sentence saying why `name` cannot be a {kind} name, or None when it can."""
    shown = repr(name)
    if not name or not name.strip():
        return f"a {kind} name cannot be empty or blank, got {shown}."
    if name != name.strip():
        return f"a {kind} name cannot start or end with white space, got {shown}."
    if not name.isprintable():
        return f"a {kind} name cannot hold control characters such as a newline, got {shown}."
    if any(c in name for c in "/\\@") or name.startswith("."):
        return f"a {kind} name may not contain '/', '\\' or '@' or start with '.', got {shown}."
    if name in RESERVED:
        return f"'{name}' is reserved (the sweep summaries' directory); choose another {kind} name."
    if len(name.encode()) > MAX_LEN:
        return f"a {kind} name may be at most {MAX_LEN} bytes long, got {len(name.encode())}."
    return None


def check_name(kind: str, name: str) -> str:
    """`name` when it is a good {kind} name; else ConfigError with the sentence (exit 2)."""
    bad = name_error(kind, name)
    if bad:
        raise ConfigError(bad)
    return name
