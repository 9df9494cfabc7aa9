"""The pure logic of comparing runs: debiased EMA smoothing, groups with mean and band, the run query
and sort (store/query.py) and the phase grid of a sweep (figures/phase.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from grok_tui.figures import compare, phase
from grok_tui.figures.series import Series
from grok_tui.store import query, runs

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


# --- smoothing ---------------------------------------------------------------------------------------

def test_ema_is_debiased_like_tensorboard():
    y = [1.0, 2.0, 3.0, 4.0]
    w = 0.6
    out = compare.ema(y, w)
    assert out[0] == pytest.approx(1.0)  # debiased: the first value is not pulled towards 0
    # TensorBoard's formula written out: last = last*w + (1-w)*y, divided by 1 - w^n
    last, ref = 0.0, []
    for n, v in enumerate(y, start=1):
        last = last * w + (1 - w) * v
        ref.append(last / (1 - w ** n))
    assert out == pytest.approx(ref)
    assert compare.ema([5.0] * 10, 0.99) == pytest.approx([5.0] * 10)  # a constant stays itself
    assert compare.ema(y, 0.0) == y


def test_ema_passes_non_finite_values_and_checks_the_weight():
    out = compare.ema([1.0, math.nan, 3.0], 0.5)
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == pytest.approx((0.25 + 1.5) / 0.75)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        compare.ema([1.0], 1.0)


def test_smooth_keeps_the_raw_values_and_parse_smooth_reads_weights_and_windows():
    s = compare.smooth(Series("a", [1, 2, 3], [0.0, 1.0, 0.0]), 0.5)
    assert s.raw == [0.0, 1.0, 0.0] and s.y != s.raw and s.x == [1, 2, 3]
    assert compare.smooth(s, 0.0) is s
    assert compare.parse_smooth("0.9") == 0.9 and compare.parse_smooth("10") == pytest.approx(0.9)
    with pytest.raises(ValueError, match="weight in"):
        compare.parse_smooth("-1")


# --- groups ------------------------------------------------------------------------------------------

def test_aggregate_mean_and_bands_over_each_members_range():
    a = Series("a", [10, 20, 30], [0.0, 0.5, 1.0], {"grokked": 30})
    b = Series("b", [10, 20], [1.0, 0.5], {"grokked": 10, "memorized": 10})
    band = compare.aggregate([a, b], "g")
    assert band.x == [10, 20, 30] and band.n == [2, 2, 1]
    assert band.mean == [0.5, 0.5, 1.0] and band.lo == [0.0, 0.5, 1.0] and band.hi == [1.0, 0.5, 1.0]
    assert band.milestones == {"grokked": 20, "memorized": 10} and band.reached == {"memorized": 1, "grokked": 2}
    std = compare.aggregate([a, b], "g", band="std")
    assert std.lo[0] == pytest.approx(0.5 - math.sqrt(0.5)) and std.hi[2] == 1.0
    c = Series("c", [15], [2.0])  # between the others' points: they are interpolated there
    assert compare.aggregate([a, c], "g").mean == [0.0, 1.125, 0.5, 1.0]


def test_a_smoothed_band_keeps_its_mean_inside_and_the_raw_mean():
    a = Series("a", [1, 2, 3, 4], [0.0, 1.0, 0.0, 1.0])
    b = Series("b", [1, 2, 3, 4], [0.2, 0.4, 0.9, 0.1])
    for kind in compare.BANDS:
        raw = compare.aggregate([a, b], "g", band=kind)
        band = compare.smooth_band(raw, 0.8)
        assert band.raw == raw.mean and band.mean == compare.ema(raw.mean, 0.8)
        assert all(lo <= m <= hi for lo, m, hi in zip(band.lo, band.mean, band.hi, strict=True))
        assert band.lo != raw.lo and band.hi != raw.hi  # the edges are smoothed with the mean
    assert compare.smooth_band(raw, 0.0) is raw


def test_group_by_value_one_colour_and_label_each():
    items = [(Series("r1", [1], [1.0]), 0.5), (Series("r2", [1], [3.0]), 0.5), (Series("r3", [1], [0.0]), 0.3)]
    bands = compare.group(items, "train_frac", palette=("cyan", "magenta"))
    assert [b.label for b in bands] == ["train_frac=0.3 (1 run)", "train_frac=0.5 (2 runs)"]
    assert [b.color for b in bands] == ["cyan", "magenta"] and bands[1].mean == [2.0]
    assert compare.varying_fields([{"a": 1, "b": 2}, {"a": 1, "b": 3}], ["a", "b"]) == ["b"]


# --- queries -----------------------------------------------------------------------------------------

@pytest.fixture
def infos(tmp_path):
    d = tmp_path / "runs"
    shutil.copytree(FIXTURES, d)
    return runs.list_runs(d)


def ids(rs):
    return [r.id for r in rs]


def test_query_over_config_and_summary(infos):
    assert ids(query.parse("grokked").filter(infos)) == ["smoke-lr2e-3"]
    assert ids(query.parse("!grokked memorized").filter(infos)) == ["smoke-wd0.3"]
    assert ids(query.parse("weight_decay<1").filter(infos)) == ["smoke-wd0.3"]
    assert ids(query.parse("wd>=1 status=finished").filter(infos)) == ["smoke-lr2e-3"]
    assert ids(query.parse("status=FAILED").filter(infos)) == ["diverged-lr1e4"]
    assert ids(query.parse("run~^smoke optimizer=adamw train_frac>=0.5").filter(infos)) == ["smoke-lr2e-3",
                                                                                             "smoke-wd0.3"]
    assert ids(query.parse("grok<3000").filter(infos)) == ["smoke-lr2e-3"]  # no grok step: no match
    assert ids(query.parse("op!=x+y").filter(infos)) == []
    assert len(query.parse("").filter(infos)) == 3
    fields = query.run_fields(infos[1])
    assert fields["gap"] == 2460 - 240 and fields["data_seed"] == fields["seed"]


@pytest.mark.parametrize("text, sentence", [
    ("colour=red", "unknown field 'colour'"),
    ("train_frac>=abc", "'train_frac>=abc' compares with 'abc', which is not a number."),
    (">=0.5", "needs a field name before '>='"),
    ("optimizer=", "'optimizer=' needs a value after '='."),
    ("run~(", "is not a regular expression"),
    ("optimizer", "'optimizer' needs a comparison, e.g. optimizer=VALUE"),
    ("lion", "'lion' is neither a comparison"),
])
def test_bad_queries_are_one_sentence(text, sentence):
    with pytest.raises(query.QueryError) as e:
        query.parse(text)
    msg = str(e.value)
    assert sentence in msg and "\n" not in msg and e.value.exit_code == 2


def test_sort_by_any_column_missing_values_last(infos):
    assert ids(query.sort_runs(infos, "mem")) == ["smoke-wd0.3", "smoke-lr2e-3", "diverged-lr1e4"]
    assert ids(query.sort_runs(infos, "-mem")) == ["smoke-lr2e-3", "smoke-wd0.3", "diverged-lr1e4"]
    assert ids(query.sort_runs(infos, "status")) == ["diverged-lr1e4", "smoke-lr2e-3", "smoke-wd0.3"]
    with pytest.raises(query.QueryError, match="cannot sort by 'nope'"):
        query.sort_runs(infos, "nope")


# --- phase grid --------------------------------------------------------------------------------------

def summary():
    return json.loads((FIXTURES / "sweeps" / "phase-long.json").read_text())


def test_phase_grid_from_a_sweep_summary():
    s = summary()
    g = phase.phase_grid(s, "train_frac", "weight_decay")
    assert g.xs == sorted(s["grid"]["train_frac"]) and g.ys == sorted(s["grid"]["weight_decay"])
    for m in s["members"]:
        c = g.cell(g.xs.index(m["values"]["train_frac"]), g.ys.index(m["values"]["weight_decay"]))
        assert c.runs == 1
        if m["grokked_step"] is None:
            assert c.value is None and c.text == "no grok"
        else:
            assert c.value == m["grokked_step"] and c.grokked == 1
    gap = phase.phase_grid(s, "train_frac", "weight_decay", "gap")
    assert all(c.value is None or c.value >= 0 for c in gap.cells.values())
    best = phase.phase_grid(s, "weight_decay", "train_frac", "best_val")
    assert all(c.value is not None and 0 <= c.value <= 1 for c in best.cells.values())
    rows = phase.csv_rows(g)
    assert rows[0][:2] == ["train_frac", "weight_decay"] and len(rows) == 1 + len(g.xs) * len(g.ys)


def test_phase_grid_refuses_fields_the_sweep_does_not_vary():
    with pytest.raises(ValueError, match=r"does not vary 'lr' \(it varies train_frac, weight_decay"):
        phase.phase_grid(summary(), "lr", "weight_decay")
    with pytest.raises(ValueError, match="two different fields"):
        phase.phase_grid(summary(), "train_frac", "train_frac")
