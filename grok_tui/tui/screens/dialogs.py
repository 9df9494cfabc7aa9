"""Small dialogs: confirm (yes/no), export (where and which format) and run details."""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

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

    def __init__(self, run: store.RunInfo):
        super().__init__(classes="dialog")
        self.run = run

    def compose(self) -> ComposeResult:
        r = self.run
        lines = [f"[b]{escape(r.id)}[/]  {r.status}", f"[dim]{escape(str(r.path))}[/]", ""]
        if r.config:
            for section, values in r.config.to_dict().items():
                lines.append(f"[b]{section}[/]  " + escape("  ".join(f"{k}={v}" for k, v in values.items())))
        s = r.summary

        def val(key: str) -> str:
            v = s.get(key)
            return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

        lines += ["", f"memorized at {val('memorized_step')}, grokked at {val('grokked_step')}, "
                      f"best val acc {val('best_val_acc')}, steps run {val('steps_run')}, device {val('device')}"]
        if s.get("error"):
            lines.append(f"[red]error:[/] {escape(str(s['error']))}")
        ckpts = [str(step) for step, _ in r.checkpoints()]
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
