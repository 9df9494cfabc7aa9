"""Config and sweep files: a TOML table read with one sentence per way it can be wrong."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

from grok_tui.errors import ConfigError
from grok_tui.spec.config import Config, from_dict
from grok_tui.spec.presets import preset

MAX_TOML_BYTES = 1 << 20  # a config or sweep file is a few hundred bytes; 1 MiB is a wrong file


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The table in a TOML file; ConfigError (one sentence naming `what` and the path) when it cannot be.
    Only a regular file of at most 1 MiB is read (not /dev/zero, a FIFO or a terminal)."""
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{what} {path} is a directory.")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file.")
        if st.st_size > MAX_TOML_BYTES:
            raise ConfigError(f"{what} {path} is larger than 1 MiB ({st.st_size} bytes); it is not a config file.")
        with open(path, "rb") as f:
            data = f.read(MAX_TOML_BYTES + 1)
        if len(data) > MAX_TOML_BYTES:
            raise ConfigError(f"{what} {path} is larger than 1 MiB; it is not a config file.")
        return tomllib.loads(data.decode())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist.") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory.") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid TOML: {e}.") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} nests tables or arrays too deeply to be a config file.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text.") from None
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read: {e.strerror or e}.") from None


def load_toml(path: str | Path, base: Config | None = None) -> Config:
    raw = read_toml(path)
    if "preset" in raw and not isinstance(raw["preset"], str):
        raise ConfigError(f"preset in {path} must be a preset's name (text), got {raw['preset']!r}.")
    if base is None and "preset" in raw:
        base = preset(raw["preset"])
    return from_dict(raw, base, where=f"in {path} ")

