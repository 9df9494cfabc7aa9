"""The table of runs: one row per run directory, updated in place (the cursor stays where it is).

A run whose `RunInfo` is the one of the last sync (the scanner keeps the RunInfo of a run whose files
did not change) and whose colour is the same is not looked at again."""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from grok_tui.display import fmt
from grok_tui.store.runs import RunInfo

# The run id comes first and whole (ids are readable at 80 columns; the rest scrolls sideways).
COLUMNS = (("sel", " "), ("run", "run"), ("status", "status"), ("grok", "grok"), ("mem", "mem"),
           ("best_val", "best"), ("ratio", "ratio"), ("opt", "optim"), ("lr", "lr"), ("wd", "wd"),
           ("steps", "steps"), ("op", "op"), ("p", "p"))
STATUS_STYLE = {"running": "green", "finished": "", "stopped": "yellow", "failed": "red",
                "interrupted": "red", "paused": "yellow"}


def short_id(run_id: str) -> str:
    """'20261125-015339-add-p31-adamw' -> '015339-add-p31-adamw' (the date is in the table's order)."""
    m = re.match(r"^\d{8}-(\d{6}-.*)$", run_id)
    return m.group(1) if m else run_id


def row_cells(r: RunInfo, color: str | None) -> dict[str, Any]:
    """The table's cells for a run: its headline (RunInfo.row) as text, the status coloured, the id short."""
    row = r.row()
    cells: dict[str, Any] = {key: fmt(row[key]) for key, _ in COLUMNS if key in row}
    cells.update(sel=Text("●", style=color) if color else Text(" "),
                 status=Text(row["status"], style=STATUS_STYLE.get(row["status"], "")),
                 run=r.id)
    return cells


class RunTable(DataTable):
    """Runs by id; `sync()` adds, updates and removes rows without moving the cursor."""

    def __init__(self, id: str | None = None):
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._cells: dict[str, dict[str, Any]] = {}
        self._from: dict[str, tuple[RunInfo, str | None]] = {}  # what each row's cells were made from
        self.made = 0  # rows whose cells were computed (a sync of unchanged runs adds none)

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def sync(self, runs: list[RunInfo], colors: dict[str, str]) -> None:
        """Rows for these runs, in this order (a new order re-adds the rows; the cursor stays on its run)."""
        order = [r.id for r in runs]
        wanted = set(order)
        after = [rid for rid in self._cells if rid in wanted] + [rid for rid in order if rid not in self._cells]
        if after != order:
            current = self.current_id
            self.clear()
            self._cells, self._from = {}, {}
            self.sync(runs, colors)
            if current in self._cells:
                self.move_cursor(row=order.index(current))
            return
        seen = set()
        for r in runs:
            seen.add(r.id)
            color = colors.get(r.id)
            made = self._from.get(r.id)
            if made is not None and made[0] is r and made[1] == color:
                continue
            self._from[r.id] = (r, color)
            self.made += 1
            cells = row_cells(r, color)
            old = self._cells.get(r.id)
            if old is None:
                self.add_row(*(cells[k] for k, _ in COLUMNS), key=r.id)
            else:
                for k, _ in COLUMNS:
                    if str(old[k]) != str(cells[k]) or (k == "sel" and old[k].style != cells[k].style):
                        self.update_cell(r.id, k, cells[k])
            self._cells[r.id] = cells
        for gone in set(self._cells) - seen:
            self.remove_row(gone)
            del self._cells[gone]
            self._from.pop(gone, None)

    @property
    def current_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:  # noqa: BLE001 - an empty or changing table
            return None
