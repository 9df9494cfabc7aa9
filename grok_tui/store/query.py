"""A small query over runs, as a lab notebook filters them: `optimizer=lion train_frac>=0.5 grokked`.

A query is words separated by spaces, all of which must hold (AND):

- `FIELD OP VALUE` with OP one of `= != >= <= > < ~` (`~`: the value is a regular expression searched
  in the field's text, case-insensitive). FIELD is any config field (`train_frac`, `optimizer`,
  `weight_decay`, `seed`, ...), a summary field (`status`, `steps`, `mem`, `grok`, `best_val`,
  `gap`) or `run` (the id); the runs table's short names (`ratio`, `opt`, `wd`) work too.
- a bare boolean field: `grokked`, `memorized`, `nesterov`, ...; `!grokked` (or `-grokked`) negates it.

Numbers compare as numbers, everything else as text (`=` ignores case). An operation is stored under
its formula and any spelling finds it: `op=add`, `op=x+y`, `op='x + y'` (quotes keep blanks in one word). A run without a value for a
field (a run that has not grokked has no `grok` step) matches no comparison on it. Errors are one
sentence (`QueryError`, exit code 2). No torch, no UI imports.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grok_tui.errors import ConfigError
from grok_tui.spec.config import field_specs
from grok_tui.spec.ops import canonical_op, find_op, op_names
from grok_tui.store.runs import RunInfo

OPS = ("!=", ">=", "<=", "=", ">", "<", "~")  # longest first, so `>=` is not read as `>`
ALIASES = {"ratio": "train_frac", "opt": "optimizer", "wd": "weight_decay", "mem": "memorized_step",
           "grok": "grokked_step", "best_val": "best_val_acc", "steps": "steps_run", "id": "run",
           "frac": "train_frac"}
SUMMARY_FIELDS = ("run", "status", "steps_run", "memorized_step", "grokked_step", "best_val_acc", "gap",
                  "memorized", "grokked")


class QueryError(ConfigError):
    """A query that cannot be read: one sentence."""


def canonical(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


def known_fields() -> list[str]:
    return [*SUMMARY_FIELDS, *field_specs()]


def run_fields(info: RunInfo) -> dict[str, Any]:
    """Every field a query, a sort or a grouping can name, for one run (None where unknown)."""
    out: dict[str, Any] = {k: None for k in field_specs()}
    if info.config is not None:
        out.update(info.config.flat())
        if out.get("data_seed") is None:
            out["data_seed"] = out.get("seed")
    s = info.summary
    mem, grok = s.get("memorized_step"), s.get("grokked_step")
    steps, best = info.steps_and_best()
    out.update(run=info.id, status=info.status, steps_run=steps, memorized_step=mem,
               grokked_step=grok, best_val_acc=best,
               gap=grok - mem if isinstance(mem, int) and isinstance(grok, int) else None,
               memorized=isinstance(mem, int), grokked=isinstance(grok, int))
    return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


@dataclass(frozen=True)
class Term:
    """One word of a query."""

    text: str
    field: str
    op: str  # one of OPS, or "is" / "not" for a bare boolean field
    value: str = ""

    def __call__(self, fields: dict[str, Any]) -> bool:
        have = fields.get(self.field)
        if self.op in ("is", "not"):
            return bool(have) == (self.op == "is")
        if have is None:
            return False
        if self.op == "~":
            return re.search(self.value, str(have), re.IGNORECASE) is not None
        a, b = _number(have), _number(self.value)
        if a is not None and b is not None and not isinstance(have, str):
            return {"=": a == b, "!=": a != b, ">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[self.op]
        if isinstance(have, bool):  # nesterov=true
            want = self.value.lower() in ("true", "1", "yes")
            return (have == want) == (self.op == "=")
        x, y = str(have).lower(), self.value.lower()
        return {"=": x == y, "!=": x != y, ">=": x >= y, "<=": x <= y, ">": x > y, "<": x < y}[self.op]


@dataclass(frozen=True)
class Query:
    text: str
    terms: tuple[Term, ...]

    def __call__(self, info: RunInfo | dict[str, Any]) -> bool:
        fields = info if isinstance(info, dict) else run_fields(info)
        return all(t(fields) for t in self.terms)

    def filter(self, runs: Sequence[RunInfo]) -> list[RunInfo]:
        return [r for r in runs if self(r)]


def _term(word: str) -> Term:
    known = set(known_fields())
    for op in OPS:
        name, sep, value = word.partition(op)
        if not sep:
            continue
        if not name:
            raise QueryError(f"'{word}' needs a field name before '{op}' (e.g. train_frac{op}0.5).")
        if not value:
            raise QueryError(f"'{word}' needs a value after '{op}'.")
        field = canonical(name)
        if field not in known:
            raise QueryError(f"unknown field '{name}' in '{word}' (fields: {', '.join(SUMMARY_FIELDS)} "
                             "and every config field, e.g. train_frac, optimizer, weight_decay, seed).")
        if op == "~":
            try:
                re.compile(value)
            except re.error as e:
                raise QueryError(f"'{value}' in '{word}' is not a regular expression ({e}).") from None
        elif op not in ("=", "!=") and _number(value) is None:
            raise QueryError(f"'{word}' compares with '{value}', which is not a number.")
        elif field == "op":  # runs store an operation by its formula: op=mul is op=x*y
            if find_op(value) is None:
                raise QueryError(f"unknown operation '{value}' in '{word}' (known: {', '.join(op_names())}).")
            value = canonical_op(value)
        return Term(word, field, op, value)
    neg = word[:1] in ("!", "-")
    name = word[1:] if neg else word
    field = canonical(name)
    specs = field_specs()
    if field in ("grokked", "memorized") or (field in specs and specs[field].type is bool):
        return Term(word, field, "not" if neg else "is")
    if field in known:
        raise QueryError(f"'{word}' needs a comparison, e.g. {field}=VALUE or {field}>=VALUE.")
    raise QueryError(f"'{word}' is neither a comparison (FIELD=VALUE, FIELD>=VALUE, FIELD~REGEX) nor a "
                     "yes/no field such as grokked or memorized.")


def words(text: str) -> list[str]:
    """The words of a query: split at blanks, except inside quotes (`op='x * y'` is one word). A
    backslash stays as it is (`run~^frac-\\d`)."""
    lex = shlex.shlex(text, posix=True)
    lex.whitespace_split, lex.escape, lex.commenters = True, "", ""
    try:
        return list(lex)
    except ValueError:
        raise QueryError(f"the query '{text}' has a quote that is not closed.") from None


def parse(text: str) -> Query:
    """The query in text (an empty text matches every run); QueryError with one sentence when it cannot."""
    return Query(text, tuple(_term(w) for w in words(text)))


# --- sorting -----------------------------------------------------------------------------------------

def sort_key(column: str) -> tuple[str, bool]:
    """`-grok` -> ('grokked_step', True): the field and whether the order is descending."""
    desc = column.startswith("-")
    field = canonical(column.lstrip("-+"))
    if field not in known_fields():
        raise QueryError(f"cannot sort by '{column}' (fields: {', '.join(SUMMARY_FIELDS)} and every config field).")
    return field, desc


def sort_runs(runs: Sequence[RunInfo], column: str) -> list[RunInfo]:
    """Runs ordered by a field (prefix '-' for descending); runs without a value come last, by id."""
    field, desc = sort_key(column)
    fields = {r.id: run_fields(r) for r in runs}

    def value(r: RunInfo) -> Any:
        return fields[r.id][field]

    have = [r for r in runs if value(r) is not None]
    rest = sorted((r for r in runs if value(r) is None), key=lambda r: r.id)
    numeric = all(_number(value(r)) is not None and not isinstance(value(r), str) for r in have)
    key: Callable[[RunInfo], Any] = (lambda r: _number(value(r))) if numeric else (lambda r: str(value(r)).lower())
    return sorted(have, key=key, reverse=desc) + rest
