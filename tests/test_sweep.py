"""Sweep grids, groups, summaries, the `grok-tui sweep` command and the Ray backend."""

import json

import pytest
import torch
from helpers import reap
from typer.testing import CliRunner

from grok_tui.cli.main import app
from grok_tui.errors import ConfigError
from grok_tui.host import usable_cpus
from grok_tui.optim import registry as optim
from grok_tui.spec.optimizers import OPTIMIZERS, OptimizerSpec
from grok_tui.spec.resolve import resolve
from grok_tui.store import runs, sweeps
from grok_tui.sweep import grid as sweep_grid
from grok_tui.sweep import plan as sweep
from grok_tui.sweep import run as sweep_run
from grok_tui.sweep import summary as sweep_summary

TINY = ["--preset", "smoke", "--steps", "20", "--eval-every", "10", "--checkpoint-every", "0", "--device", "cpu"]


@pytest.fixture
def base():
    return resolve("smoke", overrides={"steps": 20, "eval_every": 10, "checkpoint_every": 0, "device": "cpu"})


# --- grid values ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,text,expect", [
    ("seed", "0..7", list(range(8))),
    ("seed", "0..20:5", [0, 5, 10, 15, 20]),
    ("seed", "3", [3]),
    ("seed", "1,2, 5", [1, 2, 5]),
    ("train_frac", "0.3..0.8:0.1", [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]),
    ("train-frac", "0.3,0.4,0.5", [0.3, 0.4, 0.5]),
    ("weight_decay", "0.1,1", [0.1, 1.0]),
    ("optimizer", "adam,adamw", ["adam", "adamw"]),
    ("nesterov", "true,false", [True, False]),
])
def test_parse_values(name, text, expect):
    assert sweep_grid.parse_values(name, text) == expect


@pytest.mark.parametrize("name,text,msg", [
    ("seed", "0..x", "not an integer"),
    ("seed", "7..0", "ends before it starts"),
    ("seed", "0..4:0", "positive step"),
    ("train_frac", "0.3..0.8", "needs a step"),
    ("lr", "1e-3,", "empty value"),
    ("nesterov", "maybe", "not true or false"),
    ("colour", "1", "unknown setting"),
    ("lr", "nan..1:0.1", "finite numbers"),
    ("lr", "0..inf:1", "finite numbers"),
    ("lr", "0..1:1e-300", "more than 4096 values"),
])
def test_parse_values_errors(name, text, msg):
    with pytest.raises(ConfigError, match=msg):
        sweep_grid.parse_values(name, text)


def test_grid_file(tmp_path):
    f = tmp_path / "g.toml"
    f.write_text('preset = "smoke"\nsteps = 50\n[optim]\nlr = 0.003\n[grid]\nseed = "0..2"\n'
                 'weight_decay = [0.1, 1]\n')
    base, grid = sweep_grid.load_grid_file(f)
    assert base.train.steps == 50 and base.optim.lr == 0.003 and base.model.d_model == 64  # smoke
    assert grid == {"seed": [0, 1, 2], "weight_decay": [0.1, 1.0]}
    f.write_text("[grid]\nseed = []\n")
    with pytest.raises(ConfigError, match="non-empty list"):
        sweep_grid.load_grid_file(f)
    f.write_text("[grid]\nbogus = [1]\n")
    with pytest.raises(ConfigError, match="unknown setting 'bogus'"):
        sweep_grid.load_grid_file(f)
    with pytest.raises(ConfigError, match="does not exist"):
        sweep_grid.load_grid_file(tmp_path / "missing.toml")


# --- plans and groups -------------------------------------------------------------------------

def test_plan_groups_what_must_be_shared(base, tmp_path):
    p = sweep.plan(base, {"seed": [0, 1], "optimizer": ["adamw", "adam", "sgd"], "d_model": [64, 32]}, tmp_path,
                   name="g")
    assert len(p.members) == 12 and p.members[0].run_id == "g-000"
    sizes = sorted(len(g) for g in p.groups)
    # adam + adamw share an ensemble (4 members per width), sgd has its own (2 per width)
    assert sizes == [2, 2, 4, 4]
    for g in p.groups:
        assert len({(m.cfg.model.d_model, sweep.vecoptim.family(m.cfg)) for m in g}) == 1
    chunked = sweep.plan(base, {"seed": list(range(5))}, tmp_path, name="h", chunk=2)
    assert [len(g) for g in chunked.groups] == [2, 2, 1]


def test_plan_errors(base, tmp_path):
    with pytest.raises(ConfigError, match=r"grid point train_frac=1.5: train_frac \(the train ratio\) must be in \(0, 1\)"):
        sweep.plan(base, {"train_frac": [0.5, 1.5]}, tmp_path)
    (tmp_path / "x-001").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        sweep.plan(base, {"seed": [0, 1]}, tmp_path, name="x")
    with pytest.raises(ConfigError, match="at most"):
        sweep.plan(base, {"seed": list(range(100)), "lr": [i / 1000 + 1e-4 for i in range(50)]}, tmp_path)


def test_a_sweep_name_is_checked_with_its_members_suffix(base, tmp_path):
    """A name that fits the rule alone but not with '-000' is refused before anything is made."""
    with pytest.raises(ConfigError, match="may be at most 116 bytes long"):
        sweep.plan(base, {"seed": [0, 1]}, tmp_path, name="s" * 118)
    with pytest.raises(ConfigError, match="may be at most 115 bytes long"):
        sweep.plan(base, {"seed": list(range(1001))}, tmp_path, name="s" * 116)
    assert sweep.plan(base, {"seed": [0, 1]}, tmp_path, name="s" * 116).members[-1].run_id == "s" * 116 + "-001"
    assert list(tmp_path.iterdir()) == []


def test_summary_statistics(base, tmp_path):
    p = sweep.plan(base, {"seed": [0, 1, 2], "weight_decay": [0.1, 1.0]}, tmp_path, name="s")
    results = {}
    for m in p.members:
        wd, seed = m.values["weight_decay"], m.values["seed"]
        grok = None if (wd == 0.1 and seed == 2) else 100 * (seed + 1) * (2 if wd == 0.1 else 1)
        results[m.run_id] = {"status": "finished", "memorized_step": 10 * (seed + 1), "grokked_step": grok,
                             "best_val_acc": 0.5}
    s = sweep_summary.summarize(p, results)
    pts = {pt["point"]["weight_decay"]: pt for pt in s["points"]}
    assert s["point_keys"] == ["weight_decay"]
    assert pts[1.0]["grokked"] == {"n": 3, "mean": 200.0, "std": pytest.approx(100.0)}
    assert pts[0.1]["grokked"] == {"n": 2, "mean": 300.0, "std": pytest.approx(141.42, rel=1e-4)}
    assert pts[0.1]["memorized"]["mean"] == 20.0
    path = sweep_summary.save_summary(tmp_path, s)
    assert sweeps.list_sweeps(tmp_path) == [path]
    assert sweeps.load_summary(path)["points"] == json.loads(json.dumps(s["points"]))
    csv_lines = (tmp_path / "sweeps" / "s.csv").read_text().splitlines()
    assert csv_lines[0].startswith("weight_decay,runs,finished,memorized_n") and len(csv_lines) == 3
    rows = sweep_summary.table_rows(s)
    assert rows[1]["grokked"] == "200 ± 100 (3)"
    assert rows[0]["memorized"] == "20 ± 10 (3)"
    one = sweep_summary.summarize(p, {p.members[0].run_id: results[p.members[0].run_id]})
    assert sweep_summary.table_rows(one)[0]["grokked"] == "200 (1)"  # one seed: no spread to show
    with pytest.raises(ConfigError, match="not a sweep summary"):
        sweeps.load_summary(tmp_path / "s-000" / "nothing.json")


def test_fallback_runs_members_one_by_one(base, tmp_path, monkeypatch):
    spec = OptimizerSpec("rmsprop-test", (), "a test optimizer without a vectorised step")
    monkeypatch.setitem(OPTIMIZERS, spec.name, spec)
    monkeypatch.setitem(optim.BUILDERS, spec.name, lambda groups, o, dev: torch.optim.RMSprop(groups, lr=o.lr))
    p = sweep.plan(base, {"seed": [0, 1], "optimizer": ["adamw", "rmsprop-test"]}, tmp_path, name="f")
    assert sorted((len(g), sweep.vectorised(g[0].cfg)) for g in p.groups) == [(2, False), (2, True)]
    s = sweep_run.run_sweep(p, tmp_path)
    assert [m["status"] for m in s["members"]] == ["finished"] * 4
    for m in p.members:
        info = runs.open_run(tmp_path, m.run_id)
        assert info.summary["sweep"] == "f"
        assert [r["step"] for r in info.metrics()] == [10, 20]
        assert info.config.optim.optimizer == m.values["optimizer"]


# --- the command ------------------------------------------------------------------------------

def test_cli_sweep_end_to_end(tmp_path):
    res = CliRunner().invoke(app, ["sweep", *TINY, "--runs-dir", str(tmp_path), "--name", "cli", "--seed", "0..1",
                                   "--weight-decay", "0.1,1", "--lr", "0.003", "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert lines[0]["type"] == "start" and lines[0]["members"] == 4 and len(lines[0]["groups"]) == 1
    end = lines[-1]
    assert end["type"] == "end" and end["complete"] and end["point_keys"] == ["weight_decay"]
    assert {e["run_id"] for e in lines if e["type"] == "eval"} == {f"cli-00{i}" for i in range(4)}
    listed = {r.id: r for r in runs.list_runs(tmp_path)}
    assert set(listed) == {"cli-000", "cli-001", "cli-002", "cli-003"}
    assert all(r.config.optim.lr == 0.003 for r in listed.values())
    assert listed["cli-003"].config.optim.weight_decay == 1.0 and listed["cli-003"].config.train.seed == 1
    assert (tmp_path / "sweeps" / "cli.json").is_file() and (tmp_path / "sweeps" / "cli.csv").is_file()
    # the rich display prints the table
    res = CliRunner().invoke(app, ["sweep", *TINY, "--runs-dir", str(tmp_path), "--name", "cli2", "--seed", "0,1"])
    assert res.exit_code == 0, res.output
    assert "2/2 runs finished" in res.output and "sweeps/cli2.json" in res.output.replace("\n", "")


@pytest.mark.parametrize("args,msg", [
    (["--seed", "0..x"], "not an integer"),
    (["--train-frac", "0.5,1.5"], "train_frac (the train ratio) must be in (0, 1)"),
    (["--backend", "spark"], "--backend must be local or ray"),
    (["--grid", "missing.toml"], "does not exist"),
    (["--optimizer", "adamw,nosuch"], "unknown optimizer 'nosuch'"),
    (["--chunk-size", "-1"], "greater than or equal to 0"),
    (["--workers", "-1"], "greater than or equal to 0"),
])
def test_cli_sweep_errors(tmp_path, args, msg):
    res = CliRunner().invoke(app, ["sweep", *TINY, "--runs-dir", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert msg in res.output.replace("\n", " ")
    assert "Traceback" not in res.output
    assert not any(tmp_path.glob("*-000"))


def test_cli_sweep_dry_run_and_name_clash(tmp_path):
    res = CliRunner().invoke(app, ["sweep", *TINY, "--runs-dir", str(tmp_path), "--name", "d", "--seed", "0..2",
                                   "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["member_values"]["d-002"] == {"seed": 2} and not (tmp_path / "d-000").exists()
    (tmp_path / "d-000").mkdir(parents=True)
    res = CliRunner().invoke(app, ["sweep", *TINY, "--runs-dir", str(tmp_path), "--name", "d", "--seed", "0..2"])
    assert res.exit_code == 2 and "already exists" in res.output


# --- worker processes ---------------------------------------------------------------------------

def test_plan_spreads_groups_over_workers(base, tmp_path):
    seeds = {"seed": list(range(8))}
    assert [len(g) for g in sweep.plan(base, seeds, tmp_path, name="w1").groups] == [8]
    p = sweep.plan(base, seeds, tmp_path, name="w2", workers=2)
    assert [len(g) for g in p.groups] == [4, 4] and p.workers == 2 and p.describe()["workers"] == 2
    assert [len(g) for g in sweep.plan(base, seeds, tmp_path, name="w3", workers=3).groups] == [3, 3, 2]
    assert [len(g) for g in sweep.plan(base, seeds, tmp_path, name="wc", workers=2, chunk=3).groups] == [3, 3, 2]
    assert sweep.plan(base, {"seed": [0, 1]}, tmp_path, name="w8", workers=8).workers == 2
    auto = sweep.plan(base, seeds, tmp_path, name="w0", workers=0)
    assert auto.workers == sweep.default_workers("cpu", 8) == min(usable_cpus(), 8)
    assert sweep.default_workers("cuda:0", 8) == 1
    with pytest.raises(ConfigError, match="number of workers"):
        sweep.plan(base, seeds, tmp_path, name="wn", workers=-1)


class _Record:
    def __init__(self):
        self.calls = []

    def __getattr__(self, hook):
        return lambda *args: self.calls.append((hook, args))


def test_worker_processes_train_the_same_runs(base, tmp_path):
    """Two worker processes: every member's run directory as in one process, hooks relayed."""
    rec = _Record()
    s = sweep_run.run_sweep(sweep.plan(base, {"seed": [0, 1, 2]}, tmp_path, name="w", workers=2), tmp_path,
                            reporters=[rec])
    one = sweep_run.run_sweep(sweep.plan(base, {"seed": [0, 1, 2]}, tmp_path, name="o"), tmp_path)
    assert s["complete"] and [m["status"] for m in s["members"]] == ["finished"] * 3 and one["complete"]
    hooks = [h for h, _ in rec.calls]
    assert hooks[0] == "on_start" and hooks[-1] == "on_end" and hooks.count("on_group_start") == 2
    assert sorted(a[0] for h, a in rec.calls if h == "on_member_end") == ["w-000", "w-001", "w-002"]
    assert {a[0] for h, a in rec.calls if h == "on_eval"} == {"w-000", "w-001", "w-002"}
    for i in range(3):
        info, ref = runs.open_run(tmp_path, f"w-{i:03d}"), runs.open_run(tmp_path, f"o-{i:03d}")
        assert info.status == "finished" and info.summary["sweep"] == "w"
        assert [st for st, _ in info.checkpoints()] == [20]
        assert [r["val_loss"] for r in info.metrics()] == pytest.approx([r["val_loss"] for r in ref.metrics()],
                                                                        rel=1e-4)


def test_cli_sweep_with_workers_stops_cleanly_on_sigint(tmp_path):
    """Ctrl-C reaches the parent; the workers stop at their next step with a final checkpoint."""
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "grok_tui", "sweep", "--preset", "smoke", "--steps", "100000", "--eval-every", "10",
           "--device", "cpu", "--seed", "0..1", "--workers", "2", "--threads", "1", "--json", "--runs-dir", str(tmp_path),
           "--name", "int"]
    # a session of its own: its worker processes are killed with it if the test fails
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = set()
    try:
        for line in proc.stdout:
            obj = json.loads(line)
            if obj["type"] == "eval":
                seen.add(obj["run_id"])
            if len(seen) == 2:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=1800)  # only a guard against a hang: no assertion is timed
    finally:
        reap(proc, group=True)
    assert proc.returncode == 130, err
    for i in range(2):
        info = runs.open_run(tmp_path, f"int-{i:03d}")
        assert info.status == "stopped" and info.config.train.threads == 1
        step, last = info.checkpoints()[-1]
        assert step == info.summary["steps_run"] > 0
        assert "final" in json.loads(last.with_suffix(".json").read_text())["tags"]


# --- Ray ---------------------------------------------------------------------------------------

def test_ray_backend_collects_run_directories(base, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        p = sweep.plan(base, {"seed": [0, 1, 2]}, tmp_path, name="r", chunk=2)
        assert [len(g) for g in p.groups] == [2, 1]
        s = sweep_run.run_sweep(p, tmp_path, backend="ray")
    finally:
        ray.shutdown()
    assert s["backend"] == "ray" and [m["status"] for m in s["members"]] == ["finished"] * 3
    local = sweep_run.run_sweep(sweep.plan(base, {"seed": [0, 1, 2]}, tmp_path, name="l"), tmp_path)
    for i in range(3):
        info = runs.open_run(tmp_path, f"r-{i:03d}")
        assert info.status == "finished" and [st for st, _ in info.checkpoints()] == [20]
        ref = runs.open_run(tmp_path, f"l-{i:03d}").metrics()
        assert [r["val_loss"] for r in info.metrics()] == pytest.approx([r["val_loss"] for r in ref], rel=1e-4)
    assert local["complete"]


def test_a_diverging_member_fails_alone(tmp_path):
    res = CliRunner().invoke(app, ["sweep", *TINY, "--runs-dir", str(tmp_path), "--name", "nan", "--optimizer", "sgd",
                                   "--lr", "0.1,1e12", "--json", "--workers", "1"])
    assert res.exit_code == 1, res.output
    assert "1 of 2 runs failed" in res.output.replace("\n", " ")
    ok, bad = runs.open_run(tmp_path, "nan-000"), runs.open_run(tmp_path, "nan-001")
    assert ok.status == "finished" and [r["step"] for r in ok.metrics()] == [10, 20]
    assert bad.status == "failed" and "diverged" in bad.summary["error"]
    assert [e["event"] for e in bad.events()][-1] == "failed"


# --- within the open-file limit -------------------------------------------------------------------

_LOW_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
if sys.argv[1] == "unbounded":  # one ensemble of every member, whatever the limit
    from grok_tui.sweep import group
    group.member_budget = lambda: 10**9
from grok_tui.cli.main import main
sys.argv = ["grok-tui", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("mode", ["bounded", "unbounded"])
def test_a_sweep_of_more_members_than_open_files_finishes(tmp_path, mode):
    """150 members under a 128-file limit (a writer held three files per member: such a sweep failed at
    member 41 with exit 2 and 42 half-made run directories). Each writer now keeps only its lock open
    and a group trains as ensembles that fit the limit; without that split, running out of descriptors
    while setting up is exit 1 with one sentence, and leaves no half-made run directory."""
    import subprocess
    import sys

    args = ["sweep", "--preset", "smoke", "--p", "7", "--steps", "4", "--eval-every", "2", "--checkpoint-every", "0",
            "--device", "cpu", "--seed", "0..149", "--workers", "1", "--threads", "1", "--runs-dir", str(tmp_path),
            "--name", "fd"]
    proc = subprocess.Popen([sys.executable, "-c", _LOW_LIMIT, mode, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=1800)  # only a guard against a hang: no assertion is timed
    finally:
        proc.kill()
    members = sorted(d.name for d in tmp_path.iterdir() if d.name.startswith("fd-"))
    if mode == "bounded":
        assert proc.returncode == 0, err
        assert len(members) == 150 and all(runs.open_run(tmp_path, m).status == "finished" for m in members)
    else:
        assert proc.returncode == 1 and "Traceback" not in err, err
        assert "Too many open files" in err and len(err.strip().splitlines()) == 1, err
        assert members == []


def test_a_workers_exception_stops_the_sweep_at_once(base, tmp_path):
    """A group that fails in its worker (here its members disagree on steps, which an ensemble refuses)
    stops the sweep with its reason at once: the other worker's long group stops at its next step rather
    than training to its end."""
    import dataclasses

    from grok_tui.spec.config import apply_overrides
    from grok_tui.sweep.workers import run_workers

    long = apply_overrides(base, {"steps": 1000, "eval_every": 10})
    p = sweep.plan(long, {"seed": [0, 1, 2, 3]}, tmp_path, name="x", chunk=2, workers=2)
    bad = p.groups[1][1]
    p.groups[1][1] = dataclasses.replace(bad, cfg=apply_overrides(bad.cfg, {"steps": 10}))
    with pytest.raises(ConfigError, match="must share steps"):
        run_workers(p, tmp_path)
    for m in p.groups[0]:
        if (tmp_path / m.run_id).exists():
            info = runs.open_run(tmp_path, m.run_id)
            assert info.status == "stopped" and info.summary["steps_run"] < 1000
