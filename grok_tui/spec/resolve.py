"""A run's config from its three sources: preset (default ``canonical``) < config file < flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grok_tui.errors import ConfigError
from grok_tui.spec.checks import validate
from grok_tui.spec.config import Config, apply_overrides
from grok_tui.spec.presets import preset
from grok_tui.spec.tomlfile import load_toml


def resolve(preset_name: str | None = None, config_file: str | Path | None = None,
            overrides: dict[str, Any] | None = None) -> Config:
    """preset < file < overrides, then validated; raises ConfigError listing every problem."""
    cfg = preset(preset_name) if preset_name is not None else None
    if config_file is not None:
        cfg = load_toml(config_file, cfg)
    cfg = apply_overrides(cfg or Config(), {k: v for k, v in (overrides or {}).items() if v is not None},
                          where="on the command line ")
    errs = validate(cfg)
    if errs:
        raise ConfigError(" ".join(errs) if len(errs) == 1 else "\n".join(errs))
    return cfg
