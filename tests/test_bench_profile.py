"""`grok-tui bench --profile`: a step's time by kind of work."""

import json

import pytest

from grok_tui.bench import profile
from tests.test_cli import invoke


@pytest.mark.parametrize(("op", "kind"), [("aten::mm", "matrix products"), ("addmm.default", "matrix products"),
                                          ("threshold_backward", "ReLU, GELU"), ("aten::_fused_adamw_", "optimizer"),
                                          ("slice_backward", "copies, fills"),
                                          ("embedding_dense_backward", "gathers"),
                                          ("aten::_efficient_attention_backward", "fused attention"),
                                          ("aten::no_such_op", "other ops")])
def test_ops_fall_into_their_kind(op, kind):
    assert profile.kind_of(op) == kind


def test_a_step_is_split_by_kind_forward_backward_and_optimizer(tiny_cfg):
    r = profile.step_profile(tiny_cfg, steps=3, warmup=2)
    kinds = {row["kind"]: row for row in r["kinds"]}
    assert sum(row["share"] for row in r["kinds"]) == pytest.approx(1.0)
    assert r["step_ms"] > 0 and r["ops_ms"] == pytest.approx(sum(row["ms_per_step"] for row in r["kinds"]))
    # forward (addmm), backward (mm, threshold_backward) and the optimizer are all seen
    assert {"addmm", "mm"} <= set(kinds["matrix products"]["ops"]) and kinds["matrix products"]["share"] > 0
    assert "threshold_backward" in kinds["ReLU, GELU"]["ops"]
    assert "_fused_adamw_" in kinds["optimizer"]["ops"] and kinds["optimizer"]["calls_per_step"] >= 1
    assert "other ops" not in kinds, kinds.get("other ops")  # every op of this model has its kind


def test_bench_profile_prints_a_table_and_json(tmp_path):
    args = ["bench", "--profile", "--preset", "smoke", "--device", "cpu", "--threads", "1"]
    r = invoke(*args, "--out", str(tmp_path / "p.json"))
    assert r.exit_code == 0, r.output
    assert "where an eager step goes" in r.output and "matrix products" in r.output and "ms un-instrumented" in r.output
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["kinds"][0]["share"] >= saved["kinds"][-1]["share"] and saved["method"] == "wall clock per op"
    j = invoke(*args, "--json")
    assert j.exit_code == 0 and json.loads(j.output)["device"] == "cpu"


def test_bench_profile_with_compile_says_it_profiles_the_eager_step():
    r = invoke("bench", "--profile", "--compile", "--preset", "smoke", "--device", "cpu", "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "the eager step: a compiled step is one graph" in r.output and "where an eager step goes" in r.output
