import json
import math
import re
import statistics

import pytest
from typer.testing import CliRunner

from grok_tui.cli.main import app
from grok_tui.store import runs

runner = CliRunner()
TINY = ["--preset", "smoke", "--steps", "40", "--eval-every", "10", "--checkpoint-every", "20", "--device", "cpu"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_sentence_exit_2(result, needle):
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args,needle", [
    (["--op", "x/y", "--p", "12"], "p must be prime for x/y"),
    (["--train-frac", "1.5"], "train_frac (the train ratio) must be in (0, 1)"),
    (["--train-frac", "0"], "train_frac (the train ratio) must be in (0, 1)"),
    (["--op", "x%y"], "unknown operation 'x%y'"),
    (["--heads", "5"], "heads (5) must divide d_model (64)"),
    (["--norm", "batch"], "norm must be 'layernorm' or 'none'"),
    (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
    (["--lr", "-1"], "lr must be a positive number"),
    (["--beta2", "1.0"], "beta2 must be in [0, 1)"),
    (["--momentum", "0", "--nesterov", "--optimizer", "sgd"], "nesterov needs momentum > 0"),
    (["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
    (["--steps", "0"], "steps must be at least 1"),
    (["--warmup-steps", "-3"], "warmup steps must be in [0, 1,000,000,000]"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--seed", "99999999999999999999"], "seed must be in [0, 2^63)"),
    (["--data-seed", "-1"], "data seed must be in [0, 2^63)"),
    (["--p", "2", "--train-frac", "0.01"], "leaves no train examples in the 4-row table of p=2"),
    (["--p", "abc"], "Invalid value"),
    (["--bogus-flag", "1"], "No such option"),
])
def test_run_bad_input_is_one_sentence_and_exit_2(runs_dir, args, needle):
    one_sentence_exit_2(invoke("run", *TINY, *args), needle)
    assert not runs.list_runs(runs_dir)


def test_bad_config_files(tmp_path, runs_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\np = \n")
    one_sentence_exit_2(invoke("run", "--config", bad), "is not valid TOML")
    bad.write_text("[data]\nmodulus = 7\n")
    one_sentence_exit_2(invoke("run", "--config", bad), "unknown key 'modulus' in [data]")
    bad.write_text("[train]\nsteps = 'many'\n")
    one_sentence_exit_2(invoke("run", "--config", bad), "steps in")
    one_sentence_exit_2(invoke("run", "--config", tmp_path / "missing.toml"), "does not exist")


def test_cuda_asked_without_cuda(runs_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_sentence_exit_2(invoke("run", *TINY, "--device", "cuda"), "CUDA is not available")


def test_run_config_file_flags_override(tmp_path, runs_dir):
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "smoke"\n[train]\nsteps = 20\neval_every = 10\n[data]\np = 13\n')
    r = invoke("run", "--config", cfg, "--p", "11", "--name", "f", "--device", "cpu")
    assert r.exit_code == 0, r.output
    info = runs.open_run(runs_dir, "f")
    assert info.config.data.p == 11 and info.config.train.steps == 20 and info.config.data.op == "x+y"


def test_run_json_lines_and_runs_listing(runs_dir):
    r = invoke("run", *TINY, "--name", "j", "--json")
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.strip().splitlines()]
    assert lines[0]["type"] == "start" and lines[0]["run_id"] == "j"
    assert [x["step"] for x in lines if x["type"] == "eval"] == [10, 20, 30, 40]
    assert lines[-1]["type"] == "end" and lines[-1]["status"] == "finished"
    one_sentence_exit_2(invoke("run", *TINY, "--name", "j"), "already exists")
    listing = invoke("runs", "--json")
    row = json.loads(listing.output.strip().splitlines()[0])
    assert row["run"] == "j" and row["op"] == "x+y" and row["status"] == "finished" and row["steps"] == "40/40" and row["opt"] == "adamw"
    table = invoke("runs")
    assert "x+y" in table.output and "finished" in table.output
    show = invoke("runs", "show", "j")
    assert show.exit_code == 0 and "checkpoints at steps: 20, 40" in show.output
    one_sentence_exit_2(invoke("runs", "show", "nope"), "no run 'nope'")


def test_resume_extends_a_run_and_rejects_changes(runs_dir):
    assert invoke("run", *TINY, "--name", "r").exit_code == 0
    one_sentence_exit_2(invoke("run", "--resume", "r", "--lr", "1"), "--resume can only change")
    one_sentence_exit_2(invoke("run", "--resume", "missing"), "no run 'missing'")
    summary = runs_dir / "r" / "summary.json"
    saved = summary.read_text()
    held = runs.RunWriter(runs_dir / "r", runs.open_run(runs_dir, "r").config, resume=True)  # a live writer
    summary.write_text(saved.replace('"status": "finished"', '"status": "running"'))
    one_sentence_exit_2(invoke("run", "--resume", "r"), "is still running")
    held.close()
    summary.write_text(saved)
    r = invoke("run", "--resume", "r", "--steps", "60")
    assert r.exit_code == 0, r.output
    info = runs.open_run(runs_dir, "r")
    assert [m["step"] for m in info.metrics()] == [10, 20, 30, 40, 50, 60]
    assert info.summary["steps_run"] == 60 and info.config.train.steps == 60


def test_reference_lists():
    assert "x^2+xy+y^2" in invoke("ops").output
    assert "adamw" in invoke("optimizers").output
    assert "smoke" in invoke("presets").output


def test_bench_reports_both_sides_and_ratio(tmp_path):
    """Each side's steps/s is the median of the timed repeats that the bench reports one by one as it goes,
    and the ratio is engine over reference: checked against those lines, not against the result's own fields."""
    out = tmp_path / "b.json"
    r = invoke("bench", "--preset", "smoke", "--bench-steps", "20", "--repeat", "3", "--device", "cpu", "--out", out)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    seen = {side: [float(v.replace(",", "")) for v in re.findall(rf"^\s*{side} [1-3]/3: ([0-9,.]+) steps/s \(\d/6",
                                                                  r.output, re.M)]
            for side in ("engine", "reference")}
    assert "warming up both loops" in r.output and re.search(r"\(1/6, about [0-9,]+ s left\)", r.output), r.output
    assert all(len(rates) == 3 and min(rates) > 0 for rates in seen.values()), r.output
    engine, reference = statistics.median(seen["engine"]), statistics.median(seen["reference"])
    half = 0.05 + 1e-9  # the lines give one decimal
    assert abs(res["engine_steps_per_s"] - engine) <= half and abs(res["reference_steps_per_s"] - reference) <= half
    assert (engine - half) / (reference + half) <= res["ratio"] <= (engine + half) / (reference - half)
    assert res["steps"] == 20 and res["repeat"] == 3
    assert re.search(rf"^\s*ratio\s+{res['ratio']:.2f}x$", r.output, re.M), r.output
    n = res["threads"]
    assert f"device cpu ({n} thread{'' if n == 1 else 's'})," in r.output  # '1 thread', not '1 threads'


HALF = 0.05 + 1e-9  # the progress lines give seconds with one decimal


def _ratio_bounds(num: float, den: float) -> tuple[float, float]:
    """The range of num/den for the true values behind two numbers printed with one decimal."""
    return (max(num - HALF, 0.0) / (den + HALF), (num + HALF) / (den - HALF) if den > HALF else math.inf)


def test_bench_time_to_grok_for_both_sides(tmp_path):
    """Each side's seconds to grok is what its progress line said as it went; the ratio is reference over
    engine (the engine's speed-up), checked against those lines, not against the result's own fields."""
    out = tmp_path / "b.json"
    r = invoke("bench", "--preset", "smoke", "--bench-steps", "10", "--repeat", "1", "--device", "cpu", "--out", out,
               "--time-to-grok", "--steps", "60", "--eval-every", "10", "--grokked-threshold", "0.01")
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    said = {side: re.findall(rf"^\s*{side}: grokked at step (\d+) after ([0-9,.]+) s$", r.output, re.M)
            for side in ("engine", "reference")}
    assert all(len(v) == 1 for v in said.values()), r.output
    step = {side: int(v[0][0]) for side, v in said.items()}
    secs = {side: float(v[0][1].replace(",", "")) for side, v in said.items()}
    assert 0 < step["engine"] <= 60 and 0 < step["reference"] <= 60
    assert res["engine_grok_step"] == step["engine"] and res["reference_grok_step"] == step["reference"]
    for side in ("engine", "reference"):
        assert res[f"{side}_grok_s"] > 0 and abs(res[f"{side}_grok_s"] - secs[side]) <= HALF, side
    lo, hi = _ratio_bounds(secs["reference"], secs["engine"])
    assert lo <= res["grok_ratio"] <= hi, (secs, res["grok_ratio"])
    assert re.search(rf"^\s*time-to-grok ratio {res['grok_ratio']:.2f}x$", r.output, re.M), r.output


def test_config_file_preset_must_be_a_name(tmp_path, runs_dir):
    bad = tmp_path / "p.toml"
    bad.write_text("preset = 5\n")
    one_sentence_exit_2(invoke("run", "--config", bad), "preset in")
    assert not runs.list_runs(runs_dir)


def test_runs_dir_that_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    one_sentence_exit_2(invoke("run", *TINY, "--runs-dir", f), "cannot create the run directory")


def test_a_bad_resume_state_changes_nothing(runs_dir):
    """A resume that cannot start leaves the run's files as they were."""
    import shutil

    assert invoke("run", *TINY, "--name", "r").exit_code == 0
    ck = runs_dir / "r" / "checkpoints"
    state = next(ck.glob("*.state.json"))
    keep = {p: p.read_bytes() for p in (runs_dir / "r").glob("*") if p.is_file()}
    good = state.read_text()
    for broken in (good.replace('"pos"', '"posX"'), good.replace('"step"', '"stepX"', 1)):
        state.write_text(broken)
        one_sentence_exit_2(invoke("run", "--resume", "r", "--steps", "60"), "cannot be resumed")
        assert {p: p.read_bytes() for p in keep} == keep
    state.write_text(good)
    tensors = next(ck.glob("*.state.safetensors"))
    shutil.copy(tensors, tensors.with_suffix(".bak"))
    tensors.write_bytes(tensors.read_bytes()[:100])
    one_sentence_exit_2(invoke("run", "--resume", "r", "--steps", "60"), "corrupt")
    assert {p: p.read_bytes() for p in keep} == keep and runs.open_run(runs_dir, "r").status == "finished"
    shutil.copy(tensors.with_suffix(".bak"), tensors)
    one_sentence_exit_2(invoke("run", "--resume", "r", "--steps", "20"), "has run 40 steps already")
    assert invoke("run", "--resume", "r", "--steps", "60").exit_code == 0


def test_runs_listing_survives_hand_edited_files(runs_dir):
    assert invoke("run", *TINY, "--name", "r").exit_code == 0
    summary = runs_dir / "r" / "summary.json"
    s = json.loads(summary.read_text())
    summary.write_text(json.dumps({**s, "status": "running", "pid": 10**20}))
    with open(runs_dir / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": "abc", "val_acc": 0.5}\n{"step": [1]}\n{"step": true}\n{"step": 50, "val_acc": 1e999}\n')
    listing = invoke("runs")
    assert listing.exit_code == 0 and "interrupted" in listing.output
    show = invoke("runs", "show", "r", "--json")
    assert show.exit_code == 0, show.output
    assert [r["step"] for r in runs.open_run(runs_dir, "r").metrics()] == [10, 20, 30, 40, 50]
    res = invoke("plot", "r", "--metric", "val_acc", "--csv", runs_dir / "v.csv")
    assert res.exit_code == 0, res.output


def test_plot_checks_the_figure_name_before_writing(runs_dir):
    assert invoke("run", *TINY, "--name", "r").exit_code == 0
    res = invoke("plot", "r", "--metric", "val_acc", "--out", runs_dir / "f.jpg", "--csv", runs_dir / "d.csv")
    one_sentence_exit_2(res, "must be .png, .svg or .pdf")
    assert not (runs_dir / "d.csv").exists()


def test_bench_out_in_a_missing_directory_is_refused_first(tmp_path):
    res = invoke("bench", "--preset", "smoke", "--bench-steps", "1", "--out", tmp_path / "nodir" / "b.json")
    one_sentence_exit_2(res, "its directory does not exist")


def test_threads_setting_applies_and_is_saved(runs_dir):
    import torch

    before = torch.get_num_threads()
    try:
        assert invoke("run", *TINY, "--name", "t1", "--threads", "1").exit_code == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert runs.open_run(runs_dir, "t1").config.train.threads == 1
    one_sentence_exit_2(invoke("run", *TINY, "--threads", "-2"), "threads must be >= 0")


@pytest.fixture
def keep_torch_threads():
    """Put torch's thread count back after a command that sets it (--threads applies to the process)."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("mode", ["--in-process", "--processes"])
def test_bench_sweep_times_both_sides(mode, keep_torch_threads, tmp_path):
    """Each side's seconds is what its progress line said as it went (one timed run each); the ratio is the
    sweep's speed-up, one-by-one over sweep, checked against those lines, not the result's own fields."""
    # --threads 1 goes into the config the bench writes, so the grok-tui children of --processes use one thread
    out = tmp_path / "b.json"
    r = invoke("bench", "--preset", "smoke", "--bench-steps", "5", "--repeat", "1", "--device", "cpu", "--out", out,
               "--eval-every", "5", "--sweep", "2", "--workers", "1", "--threads", "1", mode)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["members"] == 2 and res["sweep_mode"] == mode.removeprefix("--") and res["workers"] == 1
    said = {side: re.findall(rf"^\s*{side} 1/1: ([0-9,.]+) s", r.output, re.M) for side in ("one_by_one", "sweep")}
    assert all(len(v) == 1 for v in said.values()), r.output
    secs = {side: float(v[0].replace(",", "")) for side, v in said.items()}
    for side in ("one_by_one", "sweep"):
        assert res[f"{side}_s"] > 0 and abs(res[f"{side}_s"] - secs[side]) <= HALF, side
    lo, hi = _ratio_bounds(secs["one_by_one"], secs["sweep"])
    assert lo <= res["sweep_ratio"] <= hi, (secs, res["sweep_ratio"])
    assert re.search(rf"^\s*sweep ratio {res['sweep_ratio']:.2f}x$", r.output, re.M), r.output


def test_bench_child_process_failure_is_one_sentence(tmp_path):
    from grok_tui.bench import runner as bench
    from grok_tui.errors import GrokError

    with pytest.raises(GrokError, match=r"grok-tui run exited with 2: .*prime"):
        bench._grok_tui(["run", "--op", "x/y", "--p", "12", "--threads", "1", "--runs-dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_run_that_diverges_exits_1_with_one_sentence_and_keeps_its_rows(runs_dir):
    r = invoke("run", *TINY, "--optimizer", "sgd", "--lr", "1e30", "--weight-decay", "0", "--warmup-steps", "0",
               "--name", "boom")
    assert r.exit_code == 1, r.output
    assert "training diverged" in r.output and "Traceback" not in r.output
    info = runs.open_run(runs_dir, "boom")
    assert info.status == "failed" and runs.read_jsonl(runs_dir / "boom" / "events.jsonl")[-1]["event"] == "failed"


def test_signals_reach_the_control_and_the_old_handlers_come_back():
    import os
    import signal
    import threading
    from types import SimpleNamespace

    from grok_tui.cli.common import stop_on_signals

    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    before = {s: signal.getsignal(s) for s in sigs}
    control = SimpleNamespace(stop=threading.Event(), pause=threading.Event(), stop_reason="")
    with stop_on_signals(control):
        os.kill(os.getpid(), signal.SIGUSR1)
        assert control.pause.is_set()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert not control.pause.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert control.stop.is_set() and control.stop_reason == "stopped"
    assert {s: signal.getsignal(s) for s in sigs} == before


def test_bench_suite_one_table_and_json(tmp_path):
    """The suite on a tiny config: every row there, numbers positive, the sweep's extrapolation said."""
    args = ["bench", "--suite", "--preset", "smoke", "--steps", "40", "--eval-every", "20", "--device", "cpu",
            "--threads", "1", "--bench-steps", "10", "--repeat", "1", "--suite-members", "3", "--suite-sample", "1",
            "--out", str(tmp_path / "suite.json")]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "steps/s fp32" in r.output and "time to grok" in r.output and "41-point segment" in r.output
    assert "1 timed, extrapolated to 3" in r.output and "where an eager step goes" in r.output
    res = json.loads((tmp_path / "suite.json").read_text())
    assert res["profile"]["precision"] == "fp32" and res["profile"]["kinds"][0]["share"] > 0
    assert res["bench"][0]["precision"] == "fp32" and all(b["ratio"] > 0 for b in res["bench"])
    assert res["sweep_members"] == 3 and res["sweep_s"] > 0 and res["connect_points"] == 41 and res["connect_s"] > 0
    assert res["sweep_ratio"] == pytest.approx(res["one_by_one_s"] / res["sweep_s"])


def test_the_console_says_when_a_run_is_paused_and_resumed_and_warns():
    from grok_tui.cli.common import console
    from grok_tui.cli.run import RichProgress

    p = RichProgress()
    with console.capture() as cap:
        p.on_member_start("r1", {"device": "cpu", "run_id": "r1", "params": 10, "n_train": 5, "n_val": 5,
                                 "steps": 100, "start_step": 0})
        p.on_event("r1", {"event": "paused", "step": 40})
        assert p.progress.tasks[0].fields["rate"] == "paused"
        p.on_event("r1", {"event": "resumed", "step": 40})
        p.on_event("r1", {"event": "warning", "step": 41, "message": "torch.compile failed (InductorError); "
                                                                      "training goes on without it."})
        p.on_member_end("r1", {"status": "finished", "steps_run": 100, "last": {}})
    out = cap.get()
    assert "paused at step 40 (grok-tui continue r1 resumes it)" in out and "resumed at step 40" in out
    assert "warning at step 41: torch.compile failed (InductorError); training goes on" in out


def test_the_console_says_the_first_step_waits_for_the_compiler(tiny_cfg, monkeypatch):
    import functools

    import torch

    from grok_tui.cli.common import console
    from grok_tui.cli.run import RichProgress
    from grok_tui.report import Reporter
    from grok_tui.spec import config
    from grok_tui.train.trainer import run_training

    class Start(Reporter):
        def on_member_start(self, run_id: str, info: dict) -> None:
            self.info = info

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))  # no inductor
    for compile_ in (False, True):
        cb = Start()
        run_training(config.apply_overrides(tiny_cfg, {"steps": 2, "compile": compile_}), None, [cb])
        p = RichProgress()
        with console.capture() as cap:
            p.on_member_start("", cb.info)
            p.on_member_end("", {"status": "finished", "steps_run": 2, "last": {}})
        assert cb.info["compile"] is compile_
        assert ("compiling the training step" in cap.get()) is compile_
