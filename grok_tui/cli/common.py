"""Pieces every Typer command shares: consoles, common options, flags from the config fields, error
handling, the JSON-lines writer and the signal handlers of a headless run. No engine imports."""

from __future__ import annotations

import functools
import inspect
import json
import os
import signal
import sys
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand

from grok_tui.errors import describe
from grok_tui.report import Reporter
from grok_tui.spec.config import FieldSpec, field_specs
from grok_tui.store.runs import RUNS_DIR_ENV


def silence(stream) -> None:
    """Point a standard stream's descriptor at /dev/null (its reader is gone: a closed pipe, a terminal
    that hung up), so later writes and the flush at exit succeed quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class QuietConsole(Console):
    """A Rich console that goes quiet when its output goes away, instead of raising (Rich's default on a
    broken pipe is SystemExit, which would end a headless run in the middle of a step)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        silence(self.file)

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()
        except OSError:  # EIO from a terminal that hung up, and the like
            del self._buffer[:]
            self.on_broken_pipe()


console = QuietConsole(highlight=False)
err_console = QuietConsole(stderr=True, highlight=False)

RunsDir = Annotated[Path, typer.Option("--runs-dir", envvar=RUNS_DIR_ENV, show_default=True,
                                       help=f"directory of run directories (env {RUNS_DIR_ENV})")]
Preset = Annotated[Optional[str], typer.Option("--preset", help="named setting: canonical, seed004, seed001, smoke, ...")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="TOML file with \\[data] \\[model] \\[optim] \\[train] tables")]
JsonOut = Annotated[bool, typer.Option("--json", help="print JSON (one object per line) instead of tables")]


def plural(n: int, word: str) -> str:
    """'1 thread', '2 threads'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    return typer.Exit(code=code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the engine's user-facing errors into one sentence on stderr and their exit code (the
    classification is errors.describe: a GrokError, an OSError, out of memory); a bug goes on up."""
    try:
        yield
    except Exception as e:
        known = describe(e)
        if known is None:
            raise
        raise fail(*known) from None


# --- one flag per config field -------------------------------------------------------------------

def field_flags(collector: str, option: Callable[[FieldSpec], Any], keep: Callable[[Any], bool]):
    """A decorator adding one flag per config field (`train_frac` -> `--train-frac`, default None).

    `option(spec)` gives a field's annotation (type and typer.Option); the wrapped command receives
    the flags whose value `keep`s, collected by field name in its parameter `collector`.
    """
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        specs = field_specs()
        hints = typing.get_type_hints(func, include_extras=True)
        params = [p.replace(annotation=hints.get(p.name, p.annotation))
                  for p in inspect.signature(func).parameters.values() if p.name != collector]
        params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option(spec))
                   for name, spec in specs.items()]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            given = {k: kwargs.pop(k) for k in list(kwargs) if k in specs}
            return func(**{collector: {k: v for k, v in given.items() if keep(v)}}, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__
        return wrapper

    return decorate


def _config_option(spec: FieldSpec) -> Any:
    flag = "--" + spec.name.replace("_", "-")
    decl = f"{flag}/--no-{flag[2:]}" if spec.type is bool else flag
    help_text = spec.help + (f" \\[{'|'.join(spec.choices)}]" if spec.choices else "")
    return Annotated[Optional[spec.type], typer.Option(decl, help=help_text, rich_help_panel=spec.section,
                                                       show_default=False)]


# The flags a single run takes, collected in `overrides: dict` (the flags given, by field name).
with_config_flags = field_flags("overrides", _config_option, lambda v: v is not None)


# --- output and signals --------------------------------------------------------------------------

class JsonLines(Reporter):
    """The engine's reports (report.Reporter) as JSON lines on stdout, {"type": kind, ...}; which hooks
    become which lines is the run's and the sweep's subclasses' choice."""

    closed = False  # set when stdout went away: the run goes on, printing nothing more

    def write(self, kind: str, obj: dict) -> None:
        if self.closed:
            return
        try:
            sys.stdout.write(json.dumps({"type": kind, **obj}) + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            self.closed = True
            silence(sys.stdout)


@contextmanager
def stop_on_signals(control: Any) -> Iterator[None]:
    """While inside: SIGINT/SIGTERM stop `control` cleanly, SIGUSR1/2 pause and resume it, SIGHUP (the
    terminal closed, the SSH connection dropped) is ignored: a run lives on its own.

    `control` is the engine's Control (stop and pause events, stop_reason). After a first Ctrl-C a
    second one interrupts at once. The old handlers come back on the way out.
    """
    def stop(signum, frame):  # noqa: ARG001
        control.stop_reason = "stopped"
        control.stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once

    handlers = {signal.SIGINT: stop, signal.SIGTERM: stop}
    if hasattr(signal, "SIGUSR1"):
        handlers[signal.SIGUSR1] = lambda s, f: control.pause.set()
        handlers[signal.SIGUSR2] = lambda s, f: control.pause.clear()
    if hasattr(signal, "SIGHUP"):
        handlers[signal.SIGHUP] = signal.SIG_IGN
    old = {sig: signal.signal(sig, h) for sig, h in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class PlainUsage(TyperCommand):
    """A usage line that names the arguments as the help lists them: `connect [OPTIONS] A B`,
    `plot [OPTIONS] [RUN...]` (Typer writes a required argument as `{A}`)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if isinstance(p, TyperArgument) and not p.hidden:
                name = p.metavar or (p.name or "").upper()
                pieces.append(name if p.required else f"[{name}]")
        return pieces
