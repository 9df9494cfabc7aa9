"""`grok-tui ops`, `optimizers` and `presets`: the reference lists, from spec/ (no torch)."""

from __future__ import annotations

from rich.table import Table

from grok_tui.cli.common import console
from grok_tui.spec.ops import OPS
from grok_tui.spec.optimizers import COMMON_FIELDS, OPTIMIZERS
from grok_tui.spec.presets import DESCRIPTIONS, PRESETS


def ops() -> None:
    """The operations a dataset can use (by short name or by formula; a run stores the formula)."""
    table = Table("short name", "formula (stored)", "needs prime p", box=None, header_style="bold")
    for op in OPS:
        table.add_row(op.name, op.formula, "yes" if op.needs_prime else "")
    console.print(table)


def optimizers() -> None:
    """The optimizers in the registry and the settings each one reads."""
    table = Table("name", "settings", "what", box=None, header_style="bold")
    for spec in OPTIMIZERS.values():
        table.add_row(spec.name, ", ".join(COMMON_FIELDS[:2] + spec.fields), spec.help)
    console.print(table)


def presets() -> None:
    """The named presets and what each one changes from the defaults."""
    table = Table("preset", "what it is", "changes from the defaults", box=None, header_style="bold")
    for name, diff in PRESETS.items():
        table.add_row(name, DESCRIPTIONS.get(name, ""), " ".join(f"{k}={v}" for k, v in diff.items()) or "(the defaults)")
    console.print(table)
