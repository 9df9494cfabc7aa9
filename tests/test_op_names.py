"""One operation, one name: every spelling of an operation (short name, formula, any spacing or case) is
stored, listed, queried, grouped and swept as its formula."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grok_tui.cli.main import app
from grok_tui.errors import ConfigError
from grok_tui.spec import config, ops
from grok_tui.spec.resolve import resolve
from grok_tui.spec.tomlfile import load_toml
from grok_tui.store import query, runs

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
SPELLINGS = [(s, op.formula) for op in ops.OPS
             for s in (op.name, op.formula, op.name.upper(), f"  {op.formula} ", " ".join(op.formula), *op.aliases)]


@pytest.mark.parametrize("spelling, formula", SPELLINGS)
def test_every_spelling_becomes_the_formula_and_round_trips(spelling, formula, tmp_path):
    assert ops.canonical_op(spelling) == formula
    cfg = resolve("smoke", overrides={"op": spelling})  # a flag
    assert cfg.data.op == formula
    assert config.from_dict({"data": {"op": spelling}}).data.op == formula  # a config file, the app's form
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml())
    assert load_toml(path).data.op == formula


def test_an_unknown_operation_is_still_reported():
    assert ops.canonical_op(" x%y ") == "x%y"
    with pytest.raises(ConfigError, match="unknown operation 'x%y'"):
        resolve("smoke", overrides={"op": "x%y"})


@pytest.fixture
def runs_dir(tmp_path):
    """The fixture runs (x+y), and two x*y runs: one saved by the app (op = "x*y"), one by an older
    `grok-tui run --op mul` (op = "mul")."""
    d = tmp_path / "runs"
    shutil.copytree(FIXTURES, d)
    for name, spelling in (("mul-app", "x*y"), ("mul-flag", "mul")):
        shutil.copytree(d / "smoke-wd0.3", d / name)
        toml = d / name / "config.toml"
        toml.write_text(toml.read_text().replace('op = "x+y"', f'op = "{spelling}"'))
    return d


def ids(infos):
    return sorted(r.id for r in infos)


def test_a_run_on_disk_with_the_short_name_is_listed_and_queried_as_the_formula(runs_dir):
    infos = runs.list_runs(runs_dir)
    by_id = {r.id: r for r in infos}
    assert by_id["mul-flag"].config.data.op == "x*y"
    assert by_id["mul-flag"].row()["op"] == "x*y"
    assert query.run_fields(by_id["mul-flag"])["op"] == "x*y"
    for text in ("op=x*y", "op=mul", "op=MUL", "op='x * y'", 'op="x * y"', "op=xy"):
        assert ids(query.parse(text).filter(infos)) == ["mul-app", "mul-flag"], text
    assert ids(query.parse("op=add").filter(infos)) == ["diverged-lr1e4", "smoke-lr2e-3", "smoke-wd0.3"]
    assert ids(query.parse("op!=mul").filter(infos)) == ["diverged-lr1e4", "smoke-lr2e-3", "smoke-wd0.3"]
    assert ids(query.parse("op='x + y' grokked").filter(infos)) == ["smoke-lr2e-3"]
    assert query.sort_runs(infos, "op")[0].config.data.op == "x*y"  # one value, sorted as one


def test_runs_where_op_add_finds_the_x_plus_y_runs(runs_dir):
    res = CliRunner().invoke(app, ["runs", "--runs-dir", str(runs_dir), "--json", "--where", "op=add"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert sorted(r["run"] for r in rows) == ["diverged-lr1e4", "smoke-lr2e-3", "smoke-wd0.3"]
    assert {r["op"] for r in rows} == {"x+y"}
    res = CliRunner().invoke(app, ["runs", "--runs-dir", str(runs_dir), "--json", "--where", "op=mul"])
    assert sorted(json.loads(line)["run"] for line in res.output.splitlines()) == ["mul-app", "mul-flag"]


def test_grouping_by_op_draws_one_group(runs_dir):
    from grok_tui.figures import compare

    infos = [r for r in runs.list_runs(runs_dir) if r.id.startswith("mul-")]
    values = [query.run_fields(r) for r in infos]
    assert compare.varying_fields(values, ["op"]) == []
    assert {v["op"] for v in values} == {"x*y"}


@pytest.mark.parametrize("text, sentence", [
    ("op=x%y", "unknown operation 'x%y' in 'op=x%y'"),
    ("op='x * y", "has a quote that is not closed"),
])
def test_bad_op_queries_are_one_sentence(text, sentence):
    with pytest.raises(query.QueryError) as e:
        query.parse(text)
    assert sentence in str(e.value) and "\n" not in str(e.value)


def test_a_backslash_in_a_regex_stays(runs_dir):
    infos = runs.list_runs(runs_dir)
    assert ids(query.parse(r"run~^smoke-wd\d").filter(infos)) == ["smoke-wd0.3"]


def test_a_sweep_over_two_spellings_of_one_op_is_one_value(tmp_path):
    from grok_tui.sweep.plan import build_plan

    plan = build_plan(tmp_path / "runs", preset_name="smoke", flags={"op": ["mul,x*y"], "seed": ["0,1"]})
    assert plan.grid["op"] == ["x*y"]
    assert {m.cfg.data.op for m in plan.members} == {"x*y"} and len(plan.members) == 2
    plan = build_plan(tmp_path / "runs", preset_name="smoke", flags={"op": ["add,mul"]})
    assert plan.grid["op"] == ["x+y", "x*y"]
