"""Small dialogs: confirm (yes/no), quit with runs training, attach to a run, export, run details."""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static

from grok_tui.store import runs as store


class ConfirmScreen(ModalScreen[bool]):
    """A question answered with y / n (or the buttons); dismisses with True for yes."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str):
        super().__init__(classes="dialog")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="error", compact=True)
                yield Button("No (n)", id="no", compact=True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class QuitScreen(ModalScreen[str | None]):
    """Quit while runs train: leave them training (the default), stop them, or cancel.
    Dismisses with "leave", "stop" or None."""

    BINDINGS = [Binding("l,enter", "answer('leave')", "Leave training"), Binding("s", "answer('stop')", "Stop"),
                Binding("c,escape", "answer(None)", "Cancel")]

    def __init__(self, run_ids: list[str]):
        super().__init__(classes="dialog")
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        names = ", ".join(self.run_ids[:3]) + (f" and {len(self.run_ids) - 3} more" if len(self.run_ids) > 3 else "")
        one = len(self.run_ids) == 1
        with Vertical(classes="dialog-box"):
            yield Label(escape(f"{names} {'is' if one else 'are'} training. {'It goes' if one else 'They go'} on "
                               f"without the app unless you stop {'it' if one else 'them'} (with a final "
                               "checkpoint)."), classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Leave training (l)", id="leave", variant="primary", compact=True)
                yield Button(f"Stop {'it' if one else 'them'} (s)", id="stop", variant="error", compact=True)
                yield Button("Cancel (c)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#leave", Button).focus()

    def action_answer(self, choice: str | None) -> None:
        self.dismiss(choice)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)


class AttachScreen(ModalScreen[str | None]):
    """Pick one of the runs training now; dismisses with its id or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_ids: list[str]):
        super().__init__(classes="dialog")
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label("Follow a run that is training (enter):", classes="dialog-text")
            yield OptionList(*self.run_ids, id="attach-list")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.run_ids[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportScreen(ModalScreen[tuple[str, str] | None]):
    """Ask where to write the figure and the CSV; dismisses with (path stem, format) or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, stem: str, what: str):
        super().__init__(classes="dialog")
        self.stem = stem
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(f"Export {self.what}: a figure (matplotlib) and the data as CSV", classes="dialog-text")
            yield Input(self.stem, id="export-path", compact=True)
            yield Select([("PNG", "png"), ("SVG", "svg"), ("PDF", "pdf")], value="png", id="export-format",
                         compact=True, allow_blank=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (enter)", id="save", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def _submit(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        if not path:
            self.notify("give a file name.", severity="error")
            return
        self.dismiss((path, str(self.query_one("#export-format", Select).value)))

    @on(Input.Submitted)
    def _entered(self) -> None:
        self._submit()

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        self._submit()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class RunDetailsScreen(ModalScreen[None]):
    """Config, status, milestones, checkpoints and the last metrics of one run (read-only)."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, run: store.RunInfo, checkpoints: list[int] | None = None):
        super().__init__(classes="dialog")
        self.run = run
        self.checkpoint_steps = checkpoints  # read in a thread by the caller (None: read here)

    def compose(self) -> ComposeResult:
        r = self.run
        lines = [f"[b]{escape(r.id)}[/]  {r.status}", f"[dim]{escape(str(r.path))}[/]", ""]
        if r.config:
            for section, values in r.config.to_dict().items():
                lines.append(f"[b]{section}[/]  " + escape("  ".join(f"{k}={v}" for k, v in values.items())))
        steps_run, best_val = r.steps_and_best()  # a killed run's: from its metric rows
        s = {**r.summary, "steps_run": steps_run, "best_val_acc": best_val}

        def val(key: str) -> str:
            v = s.get(key)
            return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

        lines += ["", f"memorized at {val('memorized_step')}, grokked at {val('grokked_step')}, "
                      f"best val acc {val('best_val_acc')}, steps run {val('steps_run')}, device {val('device')}"]
        if s.get("error"):
            lines.append(f"[red]error:[/] {escape(str(s['error']))}")
        steps = self.checkpoint_steps if self.checkpoint_steps is not None else [s for s, _ in r.checkpoints()]
        ckpts = [str(step) for step in steps]
        lines.append(f"checkpoints at steps: {', '.join(ckpts) or 'none'}")
        last = s.get("last") or {}
        if last:
            lines.append("last: " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in last.items() if "." not in k))
        with VerticalScroll(classes="dialog-box details"):
            yield Static("\n".join(lines), id="details-text")
            yield Label("[dim]esc / enter: close[/]")

    def action_close(self) -> None:
        self.dismiss(None)
