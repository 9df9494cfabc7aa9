"""The run configuration as a form, built from the engine's field specs (never a hand-kept list).

Sections come from `config.field_specs()`; the optimizer section shows the common fields, the fields
of the chosen optimizer (`spec.optimizers.OPTIMIZERS[name].fields`) and any field no optimizer claims (such as
gradient filters). Problems are shown at the field they concern, before a run starts.
"""

from __future__ import annotations

import re
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from grok_tui.errors import GrokError
from grok_tui.spec import config as config_mod
from grok_tui.spec import ops, optimizers
from grok_tui.spec.checks import validate
from grok_tui.spec.config import Config, FieldSpec
from grok_tui.spec.presets import PRESETS, preset

SECTION_TITLES = {"data": "Dataset", "model": "Model", "optim": "Optimizer", "train": "Training"}
# Shorter labels for long field names, also phrases the validation sentences use.
LABELS = {"train_frac": "train ratio", "memorized_threshold": "memorized at", "grokked_threshold": "grokked at",
          "checkpoint_every": "ckpt every", "data_seed": "split seed", "scale_invariant": "scale-inv."}
ALIASES = {"operation": "op", "train ratio": "train_frac"}


def label_of(name: str) -> str:
    return LABELS.get(name, name.replace("_", " "))  # cut with an ellipsis by the stylesheet where narrow


def _text(value: Any) -> str:
    """A field's value as the form shows it ('' for None; floats as Python writes them, 1e-3 stays 0.001)."""
    return "" if value is None else (repr(value) if isinstance(value, float) else str(value))


def _optimizer_fields() -> set[str]:
    return {f for spec in optimizers.OPTIMIZERS.values() for f in spec.fields}


def field_for_error(sentence: str, names: list[str]) -> str | None:
    """The field a validation sentence is about: the field named earliest in it."""
    phrases: dict[str, str] = dict(ALIASES)
    for n in names:
        phrases[n] = n
        phrases[n.replace("_", " ")] = n
        if n in LABELS:
            phrases[LABELS[n]] = n
    best: tuple[int, int, str] | None = None
    for phrase, name in phrases.items():
        m = re.search(rf"(?<![\w']){re.escape(phrase)}(?![\w'])", sentence)
        if m and (best is None or (m.start(), -len(phrase)) < best[:2]):
            best = (m.start(), -len(phrase), name)
    return best[2] if best else None


class ConfigForm(VerticalScroll):
    """Preset picker plus one row per config field; `read()` returns a validated Config or the problems."""

    def __init__(self, cfg: Config | None = None, id: str | None = None):
        super().__init__(id=id)
        self.specs: dict[str, FieldSpec] = config_mod.field_specs()
        self._initial = cfg or preset("smoke")
        self._base: dict[str, Any] = self._initial.flat()
        self._loading = False
        self._choices: dict[str, list[str]] = {}  # option values of each Select field
        self.shown_errors: dict[str, str] = {}  # the problems shown at their fields now

    # -- building -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Label("Preset", classes="section-title")
        yield Select([(name, name) for name in PRESETS], prompt="load a preset…", id="preset",
                     compact=True, allow_blank=True)
        for section in config_mod.SECTIONS:
            yield Label(SECTION_TITLES.get(section, section.title()), classes="section-title")
            for name, spec in self.specs.items():
                if spec.section != section:
                    continue
                with Horizontal(classes="field-row", id=f"row-{name}"):
                    yield Label(label_of(name), classes="field-label")
                    yield self._editor(name, spec)
                yield Static("", classes="field-error", id=f"err-{name}", markup=False)

    def _editor(self, name: str, spec: FieldSpec) -> Widget:
        wid = f"f-{name}"
        tip = spec.help
        options: list[tuple[str, str]] | None = None
        if name == "op":
            options = [(f"{op.formula} ({op.name})", op.formula) for op in ops.OPS]
        elif name == "optimizer":
            options = [(n, n) for n in optimizers.OPTIMIZERS]
        elif spec.choices:
            options = [(c, c) for c in spec.choices]
        if options is not None:
            self._choices[name] = [v for _, v in options]
            w: Widget = Select(options, id=wid, compact=True, allow_blank=False)
        elif spec.type is bool:
            w = Checkbox("", id=wid, compact=True)
        else:
            placeholder = "(same as seed)" if spec.optional else str(spec.default)
            w = Input(placeholder=placeholder, id=wid, compact=True, select_on_focus=True)
        w.tooltip = tip
        return w

    def on_mount(self) -> None:
        self.set_config(self._initial)

    # -- values ---------------------------------------------------------------------------------
    def editor(self, name: str) -> Widget:
        return self.query_one(f"#f-{name}")

    def set_config(self, cfg: Config) -> None:
        """Put every field of cfg into the form (a preset, or a run's config)."""
        self._loading = True
        flat = cfg.flat()
        self._base = flat  # an emptied field means this value, shown greyed as its placeholder
        for name in self.specs:
            self._set(name, flat.get(name))
            w = self.editor(name)
            if isinstance(w, Input) and not self.specs[name].optional:
                w.placeholder = _text(flat.get(name))
        self._loading = False
        self.clear_errors()
        self.update_optimizer_fields()

    def _set(self, name: str, value: Any) -> None:
        w = self.editor(name)
        if isinstance(w, Select):
            if name == "op":
                op = ops.find_op(str(value))
                value = op.formula if op else value
            if value in self._choices.get(name, ()):
                w.value = value
        elif isinstance(w, Checkbox):
            w.value = bool(value)
        elif isinstance(w, Input):
            w.value = _text(value)

    def raw_values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Parsed field values and the fields whose text is not a value of their type."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, spec in self.specs.items():
            w = self.editor(name)
            if isinstance(w, Select):
                values[name] = None if w.value is Select.NULL else w.value
            elif isinstance(w, Checkbox):
                values[name] = w.value
            elif isinstance(w, Input):
                text = w.value.strip()
                label = LABELS.get(name, name)
                if not text:  # the value it shows greyed: the loaded config's (None for an optional field)
                    values[name] = None if spec.optional else self._base.get(name, spec.default)
                    continue
                try:
                    if spec.type is int:
                        values[name] = int(text)
                    elif spec.type is float:
                        values[name] = float(text)
                    else:
                        values[name] = text
                except ValueError:
                    kind = "a whole number" if spec.type is int else "a number"
                    errors[name] = f"{label} must be {kind}, got '{text}'."
        return values, errors

    def read(self) -> tuple[Config | None, dict[str, str], list[str]]:
        """(config, problems by field, problems no field owns), the problems shown at their fields. The
        config is None when there are problems."""
        cfg, errors, general = self.problems()
        self.show_errors(errors)
        return cfg, errors, general

    def problems(self) -> tuple[Config | None, dict[str, str], list[str]]:
        """What `read` finds, shown nowhere."""
        values, errors = self.raw_values()
        general: list[str] = []
        cfg = None
        if not errors:
            try:
                cfg = config_mod.apply_overrides(Config(), values)
            except GrokError as e:
                general.append(str(e))
            if cfg is not None:
                for sentence in validate(cfg):
                    name = field_for_error(sentence, list(self.specs))
                    if name is None:
                        general.append(sentence)
                    else:
                        errors[name] = (errors[name] + " " + sentence) if name in errors else sentence
        return (cfg if not errors and not general else None), errors, general

    # -- problems at the fields -------------------------------------------------------------------
    def show_errors(self, errors: dict[str, str], focus: bool = True) -> None:
        self.shown_errors = dict(errors)
        for name in self.specs:
            msg = errors.get(name)
            err = self.query_one(f"#err-{name}", Static)
            err.update(msg or "")
            err.display = bool(msg)
            self.editor(name).set_class(bool(msg), "-invalid")
            if msg:  # an error on a hidden optimizer field must still be seen
                self.query_one(f"#row-{name}").display = True
        if errors and focus:
            first = next(n for n in self.specs if n in errors)
            self.editor(first).focus()
            self.scroll_to_widget(self.query_one(f"#row-{first}"))

    def clear_errors(self) -> None:
        self.show_errors({}) if self.is_mounted else None

    def update_optimizer_fields(self) -> None:
        """Show the optimizer fields the chosen optimizer reads (and every field no optimizer claims)."""
        w = self.editor("optimizer")
        spec = optimizers.OPTIMIZERS.get(w.value) if isinstance(w, Select) else None
        own = set(spec.fields) if spec else set()
        claimed = _optimizer_fields()
        for name, fs in self.specs.items():
            if fs.section != "optim" or name == "optimizer" or name in optimizers.COMMON_FIELDS:
                continue
            show = name in own or name not in claimed
            self.query_one(f"#row-{name}").display = show
            if not show:
                self.query_one(f"#err-{name}").display = False

    # -- events -----------------------------------------------------------------------------------
    @on(Select.Changed, "#f-optimizer")
    def _optimizer_changed(self) -> None:
        self.update_optimizer_fields()

    def recheck(self) -> None:
        """After an edit: a shown problem that the form no longer has goes at once, one that changed
        reads anew (fixing d_model also clears the error shown at heads). No new ones appear before the
        next start; nothing takes the focus."""
        if self._loading or not self.shown_errors:
            return
        _, errors, _ = self.problems()
        self.show_errors({n: errors[n] for n in self.shown_errors if n in errors}, focus=False)

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _edited(self, event) -> None:
        control = getattr(event, "input", None) or getattr(event, "select", None) or getattr(event, "checkbox", None)
        if control is None or not (control.id or "").startswith("f-"):
            return
        self.recheck()

    @on(Select.Changed, "#preset")
    def _preset_chosen(self, event: Select.Changed) -> None:
        if event.value is Select.NULL:
            return
        self.set_config(preset(str(event.value)))
        self.notify(f"loaded preset {event.value}", timeout=2)
