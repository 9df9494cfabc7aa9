"""A sweep's grid: the values of each swept setting, from flag text (``0..7``, ``0..20:5``,
``0.3..0.8:0.1``, ``0.3,0.4,0.5``) or a TOML sweep file (``[grid]`` table)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from grok_tui.errors import ConfigError
from grok_tui.spec.config import Config, FieldSpec, coerce, field_specs, from_dict
from grok_tui.spec.presets import preset
from grok_tui.spec.tomlfile import read_toml

MAX_MEMBERS = 4096


def _num(spec: FieldSpec, text: str) -> int | float:
    try:
        return int(text) if spec.type is int else float(text)
    except ValueError:
        raise ConfigError(f"--{spec.name.replace('_', '-')} value '{text}' is not a{'n integer' if spec.type is int else ' number'}.") from None


def parse_values(name: str, text: str) -> list[Any]:
    """The values of one grid field from flag text: ``a,b,c``, ``lo..hi`` (ints) or ``lo..hi:step``."""
    specs = field_specs()
    key = name.replace("-", "_")
    if key not in specs:
        raise ConfigError(f"unknown setting '{name}' (known: {', '.join(sorted(specs))}).")
    spec = specs[key]
    flag = "--" + key.replace("_", "-")
    out: list[Any] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ConfigError(f"{flag} has an empty value in '{text}'.")
        if ".." in part and spec.type in (int, float):
            lo_text, _, rest = part.partition("..")
            hi_text, _, step_text = rest.partition(":")
            lo, hi = _num(spec, lo_text), _num(spec, hi_text)
            if step_text:
                step = _num(spec, step_text)
            elif spec.type is int:
                step = 1
            else:
                raise ConfigError(f"{flag} range '{part}' of a real setting needs a step (e.g. 0.3..0.8:0.1).")
            if not all(math.isfinite(v) for v in (lo, hi, step)):
                raise ConfigError(f"{flag} range '{part}' needs finite numbers.")
            if not step > 0:
                raise ConfigError(f"{flag} range '{part}' needs a positive step.")
            if hi < lo:
                raise ConfigError(f"{flag} range '{part}' ends before it starts.")
            count = (hi - lo) / step + 1e-9
            if not count < MAX_MEMBERS:
                raise ConfigError(f"{flag} range '{part}' has more than {MAX_MEMBERS} values.")
            n = int(math.floor(count)) + 1
            out.extend(lo + i * step if spec.type is int else round(lo + i * step, 12) for i in range(n))
        elif spec.type is bool:
            low = part.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{flag} value '{part}' is not true or false.")
            out.append(low in ("true", "1", "yes"))
        elif spec.type in (int, float):
            out.append(_num(spec, part))
        else:
            out.append(part)
    return out


def dedupe(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def load_grid_file(path: str | Path, base: Config | None = None) -> tuple[Config, dict[str, list[Any]]]:
    """A sweep file: an optional ``preset``, base settings (sections or flat keys) and a ``[grid]``.

    The file's own preset applies only when no base is given (--preset and --config come first).
    """
    path = Path(path)
    raw = read_toml(path, "sweep file")
    grid_raw = raw.pop("grid", {})
    if not isinstance(grid_raw, dict):
        raise ConfigError(f"[grid] in {path} must be a table of setting = [values].")
    if base is None and isinstance(raw.get("preset"), str):
        base = preset(raw["preset"])
    cfg = from_dict(raw, base, where=f"in {path} ")
    specs = field_specs()
    grid: dict[str, list[Any]] = {}
    for key, value in grid_raw.items():
        if key not in specs:
            raise ConfigError(f"unknown setting '{key}' in [grid] of {path}.")
        if isinstance(value, str):
            grid[key] = parse_values(key, value)
        elif isinstance(value, list) and value:
            grid[key] = [coerce(specs[key], v, f"in [grid] of {path} ") for v in value]
        else:
            raise ConfigError(f"{key} in [grid] of {path} must be a non-empty list or a range string like '0..7'.")
    return cfg, grid


