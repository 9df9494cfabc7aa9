"""Key help (`?`): the keys of the view underneath, as its bindings declare them, and the app's."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static


def key_lines(screen: Screen) -> list[str]:
    """One line per binding active on screen (the focused widget's, the screen's and the app's)."""
    lines, seen = [], set()

    def owner(active) -> int:  # the view's own keys first, then the app's, then the focused widget's
        return 0 if active.node is screen else 1 if active.node is screen.app else 2

    for active in sorted(screen.active_bindings.values(), key=owner):
        b = active.binding
        if b.action in seen and not b.show:
            continue
        seen.add(b.action)
        # a key's hidden stand-in for when its action cannot act (it says why): the action's own words
        twin = None if b.description else next(
            (o for o in active.node._bindings.key_to_bindings.get(b.key, []) if o.description), None)
        desc = b.description or (twin.description if twin else b.action)
        state = "" if active.enabled and twin is None else "  [dim](not now)[/]"
        lines.append(f"[b]{escape(b.key_display or screen.app.get_key_display(b))}[/]  {escape(desc)}{state}")
    return lines


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q,enter", "close", "Close")]

    def __init__(self, screen: Screen):
        super().__init__(classes="dialog")
        self.lines = key_lines(screen)
        self.what = type(screen).__name__.removesuffix("Screen").lower() or "app"

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-box details"):
            yield Static(f"[b]keys: {escape(self.what)} view[/]\n\n" + "\n".join(self.lines), id="help-text")
            yield Label("[dim]esc / ?: close · ctrl+p: all commands[/]")

    def action_close(self) -> None:
        self.dismiss(None)
