"""Pieces every Typer command shares: the runs-dir option, config-field flags, error handling."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from grok_tui.errors import GrokError
from grok_tui.spec.config import field_specs
from grok_tui.store.runs import RUNS_DIR_ENV

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

RunsDir = Annotated[Path, typer.Option("--runs-dir", envvar=RUNS_DIR_ENV, show_default=True,
                                       help=f"directory of run directories (env {RUNS_DIR_ENV})")]
Preset = Annotated[Optional[str], typer.Option("--preset", help="named setting: canonical, seed004, seed001, smoke, ...")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="TOML file with \\[data] \\[model] \\[optim] \\[train] tables")]
JsonOut = Annotated[bool, typer.Option("--json", help="print JSON (one object per line) instead of tables")]


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    return typer.Exit(code=code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the engine's user-facing errors into one sentence on stderr and their exit code."""
    try:
        yield
    except GrokError as e:
        raise fail(str(e), e.exit_code) from None
    except OSError as e:
        raise fail(f"{e.strerror or e} ({e.filename})" if e.filename else str(e), 1) from None


def with_config_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one flag per config field (`train_frac` -> `--train-frac`, default None = not given).

    The wrapped command receives them collected in `overrides: dict`.
    """
    specs = field_specs()
    own = [p for p in inspect.signature(func).parameters.values() if p.name != "overrides"]
    params = list(own)
    annotations = {p.name: p.annotation for p in own}
    hints = __import__("typing").get_type_hints(func, include_extras=True)
    annotations.update({k: v for k, v in hints.items() if k in annotations})
    params = [p.replace(annotation=annotations[p.name]) for p in own]
    for name, spec in specs.items():
        flag = "--" + name.replace("_", "-")
        decl = f"{flag}/--no-{flag[2:]}" if spec.type is bool else flag
        help_text = spec.help + (f" \\[{'|'.join(spec.choices)}]" if spec.choices else "")
        ann = Annotated[Optional[spec.type], typer.Option(decl, help=help_text, rich_help_panel=spec.section,
                                                          show_default=False)]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann))
        annotations[name] = ann

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in specs}
        return func(overrides={k: v for k, v in overrides.items() if v is not None}, **kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = annotations
    del wrapper.__wrapped__
    return wrapper


def is_tty() -> bool:
    return sys.stdout.isatty()
