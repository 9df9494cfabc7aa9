"""What the runs view overlays, apart from its widgets: the chart's series and group bands composed from
the selected runs (the app's followed runs, `tui/followed.LiveRun`, one per run for every view) for the
view's metric, pairing, smoothing and grouping. The series math is figures/compare.py's; nothing here
draws."""

from __future__ import annotations

from dataclasses import dataclass

from grok_tui.figures import compare
from grok_tui.figures.series import PALETTE, Series, metric_name, milestones_of
from grok_tui.store import query
from grok_tui.store import runs as store
from grok_tui.tui.followed import LiveRun
from grok_tui.tui.widgets.run_table import short_id

# Fields `g` groups by, in this order, when they differ between the selected runs.
GROUP_FIELDS = ("train_frac", "optimizer", "weight_decay", "lr", "seed", "data_seed", "op", "p", "layers",
                "d_model", "batch_size", "warmup_steps", "grokfast_lambda", "loss", "status")
def partner(metric: str) -> str | None:
    """train_acc <-> val_acc, train_loss <-> val_loss; None for metrics without a split."""
    for a, b in (("train_", "val_"), ("val_", "train_")):
        if metric.startswith(a):
            return b + metric[len(a):]
    return None


SORT_COLUMNS = ("run", "grok", "mem", "gap", "best_val", "ratio", "wd", "lr", "opt", "status")


@dataclass
class OverlayView:
    metric: str = "val_acc"
    paired: bool = False  # the metric's other split too (train_acc with val_acc), dotted
    smoothing: float = 0.0
    group_by: str | None = None
    band: str = "minmax"

    def metrics(self) -> list[tuple[str, str | None]]:
        """(metric, split label) pairs the chart shows: the metric, or train and val of it."""
        other = partner(self.metric)
        if not self.paired or other is None:
            return [(self.metric, None)]
        train, val = sorted((self.metric, other), key=lambda m: not m.startswith("train"))
        return [(train, "train"), (val, "val")]


def _series(view: OverlayView, metric: str, split: str | None, selected: list[str], followed: dict[str, LiveRun],
            infos: dict[str, store.RunInfo], colors: dict[str, str]) -> list[tuple[str, Series]]:
    out = []
    for rid in selected:
        f = followed.get(rid)
        if f is None or not f.seen:  # not read yet: it joins the chart with its rows
            continue
        info = infos.get(rid)
        ms = dict(f.milestones)
        if info is not None:
            ms.update({k: v for k, v in milestones_of([], info.summary).items() if k not in ms})
        label = short_id(rid) + (f" {split}" if split else "")
        col = f.series(metric)  # kept by the run and extended with its new rows only
        s = Series(label, col.x, col.y, {} if split == "val" else ms, colors[rid], metric=metric, run=rid)
        out.append((rid, s))
    return out


def overlay(view: OverlayView, selected: list[str], followed: dict[str, LiveRun], infos: dict[str, store.RunInfo],
            colors: dict[str, str]) -> tuple[list[Series], list[compare.Band], str]:
    """The chart's series (smoothed, raw kept) or, when grouped, its bands; and its title."""
    out: list[Series] = []
    bands: list[compare.Band] = []
    for k, (metric, split) in enumerate(view.metrics()):
        style = "-" if k == 0 else "--"
        got = _series(view, metric, split, selected, followed, infos, colors)
        for _, s in got:
            s.style = style
        if view.group_by is not None:
            items = [(s, query.run_fields(infos[rid])[view.group_by]) for rid, s in got if rid in infos]
            for b in compare.group(items, view.group_by, view.band, PALETTE):
                b.style, b.metric = style, metric
                if split:
                    b.label = f"{b.label} {split}"
                bands.append(compare.smooth_band(b, view.smoothing))
        else:
            out += [compare.smooth(s, view.smoothing) for _, s in got]
    metrics = [m for m, _ in view.metrics()]
    return out, bands, " / ".join(metric_name(m) for m in metrics) + f" ({', '.join(metrics)})"
