"""Issue 13: every bad input is one sentence with exit 2, every failure one sentence with exit 1, and
neither loses or changes what was written. Each test names the input it tries; docs/bad-inputs.md
lists them with what each gets."""

import errno
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from grok_tui.cli.main import app
from grok_tui.host import usable_cpus
from grok_tui.store import files, runs

runner = CliRunner()
TINY = ["--preset", "smoke", "--steps", "40", "--eval-every", "10", "--checkpoint-every", "20", "--device", "cpu"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_sentence(result, code, needle):
    """Exit `code`, the needle in the output, no traceback, and the error is a single line."""
    assert result.exit_code == code, result.output
    assert needle in result.output, result.output
    assert "Traceback" not in result.output and "╭" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) <= 1, result.output


def snapshot(path):
    """Every file under path with its bytes (to check that a refused command changed nothing)."""
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 40-step smoke run 'done' (checkpoints at 20, 40; resumable state at 40)."""
    root = tmp_path_factory.mktemp("finished") / "runs"
    r = runner.invoke(app, ["run", *TINY, "--name", "done", "--runs-dir", str(root), "--threads", "1"])
    assert r.exit_code == 0, r.output
    return root


@pytest.fixture
def done(finished, runs_dir):
    """A copy of the finished run 'done' in this test's runs directory."""
    shutil.copytree(finished, runs_dir)
    return runs_dir / "done"


# --- threads -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", [["run", *TINY], ["bench", *TINY], ["sweep", *TINY, "--dry-run"]])
def test_threads_beyond_the_cpus_is_refused(runs_dir, cmd):
    one_sentence(invoke(*cmd, "--threads", "100000"), 2, f"threads must be at most {usable_cpus()}")
    one_sentence(invoke(*cmd, "--threads", str(usable_cpus() + 1)), 2, "the CPUs this process may use")
    assert not runs_dir.exists()


@pytest.mark.parametrize("cmd", [["connect", "done@20", "done@40"], ["landscape", "done@40"]])
def test_connect_and_landscape_take_threads(done, cmd):
    one_sentence(invoke(*cmd, "--threads", "100000"), 2, "threads must be at most")
    one_sentence(invoke(*cmd, "--threads", "-1"), 2, "threads must be >= 0")
    r = invoke(*cmd, "--threads", "1", "--points", "3", "--no-grad-norm" if cmd[0] == "connect" else "--dims",
               *([] if cmd[0] == "connect" else ["1"]), "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output


# --- a disk that fills during a run --------------------------------------------------------------

def test_disk_full_during_a_metrics_append_fails_cleanly(runs_dir, monkeypatch):
    """Rows fail from the third on, and so does every new file (atomic writes): exit 1, one sentence,
    the summary says failed (written over the old one's bytes), the earlier rows stay."""
    real_metrics, real_atomic = runs.RunWriter.metrics, files.atomic_write
    full = {"on": False}

    def metrics(self, row):
        if row["step"] >= 30:
            full["on"] = True
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "metrics.jsonl"))
        real_metrics(self, row)

    def atomic_write(path, write, *args, **kw):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_atomic(path, write, *args, **kw)

    monkeypatch.setattr(runs.RunWriter, "metrics", metrics)
    monkeypatch.setattr(files, "atomic_write", atomic_write)
    r = invoke("run", *TINY, "--name", "full")
    one_sentence(r, 1, "the disk is full")
    assert "KeyError" not in r.output
    info = runs.open_run(runs_dir, "full")
    assert info.summary["status"] == "failed" and info.status == "failed"
    assert [row["step"] for row in info.metrics()] == [10, 20]


def test_disk_full_when_the_run_directory_is_made_leaves_no_directory(runs_dir, monkeypatch):
    real = files.atomic_write

    def atomic_write(path, write, *args, **kw):
        if path.name == "config.toml":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, write, *args, **kw)

    monkeypatch.setattr(files, "atomic_write", atomic_write)
    one_sentence(invoke("run", *TINY, "--name", "x"), 1, "No space left on device")
    assert not (runs_dir / "x").exists()
    monkeypatch.setattr(files, "atomic_write", real)
    (runs_dir / "x").mkdir()  # an empty directory, as a start killed at the wrong moment leaves it
    r = invoke("run", *TINY, "--name", "x")
    assert r.exit_code == 0, r.output
    assert runs.open_run(runs_dir, "x").status == "finished"


# --- config files ----------------------------------------------------------------------------------

def test_config_files_that_are_not_config_files(tmp_path, runs_dir):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    r = invoke("run", "--config", deep)
    one_sentence(r, 2, "nests tables or arrays too deeply")
    assert len(r.output) < 500
    one_sentence(invoke("sweep", "--grid", deep, "--dry-run"), 2, "nests tables or arrays too deeply")
    one_sentence(invoke("run", "--config", "/dev/zero"), 2, "is not a regular file")
    one_sentence(invoke("sweep", "--grid", "/dev/null", "--dry-run"), 2, "is not a regular file")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    one_sentence(invoke("run", "--config", big), 2, "larger than 1 MiB")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00p = 7")
    one_sentence(invoke("run", "--config", binary), 2, "is not UTF-8 text")
    long_value = tmp_path / "long.toml"
    long_value.write_text('[train]\nsteps = "' + "9" * 5000 + '"\n')
    r = invoke("run", "--config", long_value)
    one_sentence(r, 2, "steps in")
    assert len(r.output) < 500
    assert not runs_dir.exists()


# --- resume states and checkpoints that are not what they should be ------------------------------

def _state(run):
    return next((run / "checkpoints").glob("step-*.state.json"))


@pytest.mark.parametrize("text", ["[]", '{"step": 40, "optimizer": []}',
                                  '{"step": 40, "optimizer": {"scalars": [], "param_groups": []}}', "null", "7"])
def test_resume_of_a_mangled_state_is_one_sentence_and_changes_nothing(done, runs_dir, text):
    _state(done).write_text(text)
    before = snapshot(done)
    one_sentence(invoke("run", "--resume", "done", "--steps", "60"), 2, "cannot be resumed")
    assert snapshot(done) == before


def test_a_truncated_state_tensor_file_is_named(done):
    tensors = type(done)(str(_state(done)).removesuffix(".json") + ".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:500])
    before = snapshot(done)
    result = invoke("run", "--resume", "done", "--steps", "60")
    one_sentence(result, 2, "is corrupt or does not fit this run")
    assert f"{tensors.name} is corrupt" in result.output.replace("\n", "")
    assert snapshot(done) == before


def test_resume_state_with_list_scalars(done):
    state = _state(done)
    info = json.loads(state.read_text())
    info["optimizer"]["scalars"] = []
    state.write_text(json.dumps(info))
    before = snapshot(done)
    one_sentence(invoke("run", "--resume", "done", "--steps", "60"), 2, "is corrupt or does not fit this run")
    assert snapshot(done) == before


@pytest.mark.parametrize("how", ["recorded", "older state: told by the generator's size"])
def test_resume_on_another_kind_of_device_says_which_device(done, how):
    """A run whose data order was drawn on CUDA cannot continue on the CPU (the generators differ)."""
    state = _state(done)
    info = json.loads(state.read_text())
    assert info["order_device"] == "cpu"
    if how == "recorded":
        info["order_device"] = "cuda"
        state.write_text(json.dumps(info))
    else:
        del info["order_device"]
        state.write_text(json.dumps(info))
        import torch
        from safetensors.torch import load_file, save_file

        tensors_file = state.with_name(state.name.removesuffix(".json") + ".safetensors")
        tensors = load_file(tensors_file)
        tensors["rng.data"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA (Philox) state's size
        save_file(tensors, tensors_file)
    before = snapshot(done)
    one_sentence(invoke("run", "--resume", "done", "--steps", "60"), 2, "drawn on cuda")
    r = invoke("run", "--resume", "done", "--steps", "60")
    assert "resume it with --device cuda" in r.output
    assert snapshot(done) == before


def test_stray_files_in_checkpoints_are_ignored(done):
    (done / "checkpoints" / "step-abc.state.json").write_text("{}")
    (done / "checkpoints" / "step-²³.state.json").write_text("{}")
    (done / "checkpoints" / "step-xyz.safetensors").write_text("junk")
    r = invoke("run", "--resume", "done", "--steps", "60")
    assert r.exit_code == 0, r.output
    assert "(20 steps in this resume)" in r.output and "None" not in r.output
    assert [row["step"] for row in runs.open_run(done.parent, "done").metrics()] == [10, 20, 30, 40, 50, 60]


def test_connect_with_a_sidecar_that_is_a_list(done):
    (done / "checkpoints" / "step-00000020.json").write_text("[]")
    r = invoke("connect", "done@20", "done@40", "--points", "3", "--no-grad-norm", "--device", "cpu",
               "--threads", "1", "--json")
    assert r.exit_code == 0, r.output
    assert "AttributeError" not in r.output


def test_resume_of_a_finished_run_changes_nothing(done):
    before = snapshot(done)
    one_sentence(invoke("run", "--resume", "done"), 2, "has finished its 40 steps already; nothing was changed")
    one_sentence(invoke("run", "--resume", "done", "--steps", "40"), 2, "nothing was changed")
    one_sentence(invoke("run", "--resume", "done", "--steps", "30"), 2, "would end it before it starts")
    assert snapshot(done) == before


def test_temp_files_of_interrupted_writes_are_cleaned_on_resume(done):
    tmps = [done / "checkpoints" / ".step-00000040.safetensors.abc123.tmp", done / ".summary.json.x1y2.tmp",
            done / "checkpoints" / "step-00000040.safetensors.tmp7f3a"]
    for t in tmps:
        t.write_bytes(b"partial")
    assert invoke("run", "--resume", "done", "--steps", "60").exit_code == 0
    assert not any(t.exists() for t in tmps)
    assert files.is_temp_file(".step-00000001.json.q.tmp") and not files.is_temp_file("step-00000001.json")


def test_a_killed_runs_headline_comes_from_its_metrics_when_its_summary_lags(done, runs_dir):
    """The summary of a running run is rewritten at most once a second; after a SIGKILL the runs table
    and queries read steps and best val from the metric rows written after it."""
    from grok_tui.store import query

    rows = runs.read_jsonl(done / "metrics.jsonl")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    summary = json.loads((done / "summary.json").read_text())
    summary.update(status="running", pid=dead.pid, steps_run=rows[0]["step"], best_val_acc=-1.0)
    (done / "summary.json").write_text(json.dumps(summary))
    info = runs.open_run(runs_dir, "done")
    assert info.status == "interrupted"
    best = max(r["val_acc"] for r in rows)
    assert info.row()["steps"].startswith(f"{rows[-1]['step']}/") and info.row()["best_val"] == best
    f = query.run_fields(info)
    assert f["steps_run"] == rows[-1]["step"] and f["best_val_acc"] == best
    shown = json.loads(invoke("runs", "show", "done", "--json").output)  # `runs show` says the same
    assert shown["steps_run"] == rows[-1]["step"] and shown["best_val_acc"] == best
    summary.update(status="finished", steps_run=rows[0]["step"])  # an ended run: its summary is the truth
    (done / "summary.json").write_text(json.dumps(summary))
    assert runs.open_run(runs_dir, "done").row()["steps"].startswith(f"{rows[0]['step']}/")


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_again(done, runs_dir):
    """A run with rows but no checkpoint (SIGKILLed early): --resume starts it from step 0 with its own
    config, says so, and clears the old rows (no step twice); a finished process's pid is surely dead."""
    shutil.rmtree(done / "checkpoints")
    (done / "checkpoints").mkdir()
    events = [e for e in runs.read_jsonl(done / "events.jsonl") if e["event"] not in ("checkpoint", "finished")]
    (done / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))  # none was written
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    summary = json.loads((done / "summary.json").read_text())
    summary.update(status="running", pid=dead.pid)
    (done / "summary.json").write_text(json.dumps(summary))
    assert runs.open_run(runs_dir, "done").status == "interrupted"
    r = invoke("run", "--resume", "done", "--steps", "40")
    assert r.exit_code == 0, r.output
    assert "starts again from step 0 with its own config" in r.output
    info = runs.open_run(runs_dir, "done")
    assert [row["step"] for row in runs.read_jsonl(done / "metrics.jsonl")] == [10, 20, 30, 40]
    assert info.status == "finished" and [s for s, _ in info.checkpoints()] == [20, 40]
    assert [e["event"] for e in info.events()].count("started") == 1


@pytest.mark.parametrize("status", ["finished", "running"])
def test_resume_never_rewrites_the_history_of_a_run_whose_checkpoints_were_deleted(done, runs_dir, status):
    """A finished run (or an interrupted one that wrote checkpoints) whose checkpoints were deleted to free
    disk is refused with what is missing; its rows, events and summary stay as they were."""
    shutil.rmtree(done / "checkpoints")
    (done / "checkpoints").mkdir()
    if status == "running":  # killed after its checkpoints: a dead pid
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        summary = json.loads((done / "summary.json").read_text())
        summary.update(status="running", pid=dead.pid)
        (done / "summary.json").write_text(json.dumps(summary))
    before = snapshot(done)
    r = invoke("run", "--resume", "done", "--steps", "80")
    one_sentence(r, 2, "holds none now, so there is nothing to resume from")
    assert re.search(r"wrote [1-9]\d* checkpoints? but", r.output), r.output
    assert snapshot(done) == before


def test_resume_of_a_run_with_checkpoints_but_no_state_says_how_to_rerun(done):
    for p in (done / "checkpoints").glob("*.state.*"):
        p.unlink()
    before = snapshot(done)
    one_sentence(invoke("run", "--resume", "done"), 2, "none is resumable")
    assert snapshot(done) == before


# --- sizes, out of memory ----------------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--layers", "100000000"], "layers must be at most 64"),
    (["--d-model", "100000"], "d_model must be at most 8192"),
    (["--mlp-ratio", "1000"], "mlp_ratio must be at most 64"),
    (["--heads", "512", "--d-model", "512"], "heads must be at most 256"),
    (["--batch-size", "2000000"], "batch size must be at most 1048576"),
    (["--p", "100000"], "p must be at most 1000"),
    (["--steps", "10000000000"], "steps must be at most"),
    (["--eps", "inf"], "eps must be a positive number"),
    (["--eps", "nan"], "eps must be a positive number"),
    (["--optimizer", "prodigy", "--prodigy-d-coef", "inf"], "prodigy d coef must be a positive number"),
    (["--optimizer", "muon", "--muon-ns-steps", "100000"], "muon ns steps must be in [1, 100]"),
])
def test_sizes_have_upper_bounds(runs_dir, args, needle):
    one_sentence(invoke("run", *TINY, *args), 2, needle)
    assert not runs_dir.exists()


def test_steps_below_one_is_said_before_the_cooldown(runs_dir):
    r = invoke("run", *TINY, "--steps", "-5")
    one_sentence(r, 2, "steps must be at least 1, got -5")
    assert "cooldown" not in r.output


@pytest.mark.parametrize("args,needle", [
    (["--dims", "2", "--points", "100000"], "points must be in [2, 500] per axis in 2-D"),
    (["--points", "100000"], "points must be in [2, 10000] in 1-D"),
    (["--points", "0"], "points must be in [2, 10000]"),
    (["--points", "1"], "points must be in [2, 10000]"),
    (["--span", "inf"], "span must be a positive number"),
    (["--through", "done@20", "--through", "done@40", "--points", "1000"], "points must be in [2, 500]"),
    (["--through", "done@20", "--through", "done@40", "--margin", "nan"], "margin must be a number >= 0"),
])
def test_landscape_points_are_bounded(done, args, needle):
    before = snapshot(done)
    one_sentence(invoke("landscape", "done@40", "--device", "cpu", *args), 2, needle)
    assert snapshot(done) == before


@pytest.mark.parametrize("args,needle", [
    (["--points", "100000"], "points must be in [2, 10000]"),
    (["--points", "0"], "points must be in [2, 10000]"),
    (["--curve", "polyline", "--fit-t", "100000"], "fit t at most 256"),
    (["--curve", "polyline", "--fit-batch", "100000000"], "fit batch at most 1048576"),
    (["--grad-batches", "0"], "grad batches must be at least 1"),
])
def test_connect_sizes_are_bounded(done, args, needle):
    before = snapshot(done)
    one_sentence(invoke("connect", "done@20", "done@40", "--device", "cpu", *args), 2, needle)
    assert snapshot(done) == before


def test_out_of_memory_is_one_sentence_everywhere(done, runs_dir, monkeypatch):
    from grok_tui.connect import job, landscape
    from grok_tui.train import trainer

    def no_memory(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(trainer.Trainer, "__init__", no_memory)
    one_sentence(invoke("run", *TINY, "--name", "oom"), 1, "out of memory")
    one_sentence(invoke("bench", *TINY, "--bench-steps", "1", "--repeat", "1"), 1, "out of memory")
    assert not (runs_dir / "oom").exists()
    monkeypatch.setattr(job, "load_problem", no_memory)
    monkeypatch.setattr(landscape, "load_problem", no_memory)
    before = snapshot(done)
    one_sentence(invoke("connect", "done@20", "done@40", "--device", "cpu"), 1, "out of memory")
    one_sentence(invoke("landscape", "done@40", "--device", "cpu"), 1, "out of memory")
    assert snapshot(done) == before


def test_out_of_memory_in_the_loop_is_a_failed_run(runs_dir, monkeypatch):
    from grok_tui.train import trainer

    real = trainer.Trainer.train_step

    def step(self, want_grads=False):
        if self.step == 15:
            raise MemoryError()
        return real(self, want_grads)

    monkeypatch.setattr(trainer.Trainer, "train_step", step)
    one_sentence(invoke("run", *TINY, "--name", "oom"), 1, "out of memory at step 15")
    assert runs.open_run(runs_dir, "oom").status == "failed"


# --- sweeps ------------------------------------------------------------------------------------------

SWEEP = [*TINY, "--seed", "0,1", "--workers", "1", "--threads", "1"]


def test_sweep_into_a_runs_dir_that_is_a_file_or_read_only(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    one_sentence(invoke("sweep", *SWEEP, "--runs-dir", f), 2, "is not a directory")
    one_sentence(invoke("run", *TINY, "--runs-dir", f), 2, "cannot create the run directory")
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories (see the test below)")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        one_sentence(invoke("sweep", *SWEEP, "--runs-dir", ro), 2, "is not writable")
        one_sentence(invoke("run", *TINY, "--runs-dir", ro), 2, "Permission denied")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_sweep_and_run_into_a_runs_dir_they_may_not_write(tmp_path, monkeypatch):
    """The read-only case as root sees it too: no write permission and a mkdir that is refused."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access, real_mkdir = os.access, type(ro).mkdir
    monkeypatch.setattr(os, "access",
                        lambda p, mode, **k: not (str(p) == str(ro) and mode & os.W_OK) and real_access(p, mode, **k))

    def mkdir(self, *a, **k):
        if self.parent == ro:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(type(ro), "mkdir", mkdir)
    one_sentence(invoke("sweep", *SWEEP, "--runs-dir", ro), 2, "is not writable")
    one_sentence(invoke("run", *TINY, "--runs-dir", ro), 2, "Permission denied")
    assert list(ro.iterdir()) == []


def test_sweep_member_made_by_someone_else_is_skipped(runs_dir, monkeypatch):
    from grok_tui.sweep import plan as plan_mod

    real = plan_mod.plan

    def plan(*a, **k):
        p = real(*a, **k)
        foreign = runs_dir / p.members[0].run_id
        foreign.mkdir(parents=True)
        (foreign / "theirs.txt").write_text("keep me")
        return p

    monkeypatch.setattr(plan_mod, "plan", plan)
    r = invoke("sweep", *SWEEP, "--name", "sw")
    one_sentence(r, 1, "1 of 2 runs were skipped")
    assert "sw-000 skipped" in r.output
    assert (runs_dir / "sw-000" / "theirs.txt").read_text() == "keep me"
    assert sorted(os.listdir(runs_dir / "sw-000")) == ["theirs.txt"]
    assert runs.open_run(runs_dir, "sw-001").status == "finished"
    summary = json.loads((runs_dir / "sweeps" / "sw.json").read_text())
    assert [m["status"] for m in summary["members"]] == ["skipped", "finished"]


# --- names -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,needle", [
    ("", "cannot be empty or blank"), (" ", "cannot be empty or blank"), ("a\nb", "control characters"),
    ("sweeps", "is reserved"), ("../x", "may not contain '/'"), (".hidden", "start with '.'"),
    ("a@b", "may not contain"), (" x", "white space"), ("x" * 200, "at most 120 bytes"),
])
def test_one_name_rule_for_runs_sweeps_and_results(done, runs_dir, name, needle):
    before = snapshot(runs_dir)
    one_sentence(invoke("run", *TINY, "--name", name), 2, needle)
    one_sentence(invoke("sweep", *SWEEP, "--name", name, "--dry-run"), 2, needle)
    one_sentence(invoke("connect", "done@20", "done@40", "--name", name, "--device", "cpu"), 2, needle)
    one_sentence(invoke("landscape", "done@40", "--name", name, "--device", "cpu"), 2, needle)
    assert snapshot(runs_dir) == before


@pytest.mark.parametrize("ref", ["../x", "../runs/done", "", "sweeps", "/etc"])
def test_run_references_stay_inside_the_runs_directory(done, runs_dir, ref):
    (runs_dir.parent / "x").mkdir()
    (runs_dir.parent / "x" / "config.toml").write_text("")
    one_sentence(invoke("run", "--resume", ref), 2, f"no run '{ref}'")
    one_sentence(invoke("runs", "show", ref), 2, f"no run '{ref}'")
    one_sentence(invoke("plot", ref, "--csv", runs_dir.parent / "o.csv"), 2, f"no run '{ref}'")
    one_sentence(invoke("connect", f"{ref}@20", "done@40", "--device", "cpu"), 2, f"no run '{ref}'")
    assert not (runs_dir.parent / "o.csv").exists()


# --- the command line itself -----------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["run", "--bogus-flag", "1"], "No such option: --bogus-flag"),
    (["run", "--p", "abc"], "Invalid value for '--p'"),
    (["run", "--steps"], "requires an argument"),
    (["runs", "show"], "Missing argument"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["sweep", "--chunk-size", "-1"], "--chunk-size"),
    (["landscape", "x@1", "--dims", "two"], "Invalid value for '--dims'"),
])
def test_typer_parse_errors_are_one_line(args, needle):
    r = invoke(*args)
    one_sentence(r, 2, needle)
    assert len(r.output.strip().splitlines()) == 1 and r.output.startswith("error: ")


def test_parse_error_in_a_child_process_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "grok_tui", "run", "--bogus-flag", "1"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().startswith("error: No such option: --bogus-flag")
    assert len(r.stderr.strip().splitlines()) == 1


def test_help_still_exits_0():
    r = invoke("run", "--help")
    assert r.exit_code == 0 and "--threads" in r.output
    r = invoke("landscape", "--help")
    assert r.exit_code == 0 and "--threads" in r.output


# --- more inputs of our own (docs/bad-inputs.md) ---------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--preset", ""], "unknown preset ''"),
    (["--warmup-steps", "99999999999999999999999"], "warmup steps must be in [0, 1,000,000,000]"),
    (["--optimizer", "muon", "--muon-lr", "inf"], "muon lr must be a positive number"),
    (["--optimizer", "agd", "--agd-gain", "nan"], "agd gain must be a positive number"),
    (["--op", "x" * 10_000], "unknown operation"),
])
def test_more_bad_run_inputs(runs_dir, args, needle):
    one_sentence(invoke("run", *TINY, *args), 2, needle)
    assert not runs_dir.exists()


def test_resume_with_an_empty_name_is_refused(done):
    before = snapshot(done)
    one_sentence(invoke("run", "--resume", "done", "--name", ""), 2, "--name do not apply")
    assert snapshot(done) == before


@pytest.mark.parametrize("cmd", [["connect", "done@20", "done@40", "--no-grad-norm"], ["landscape", "done@40"]])
def test_result_out_that_cannot_be_a_directory_is_refused_first(done, tmp_path, cmd):
    f = tmp_path / "file"
    f.write_text("x")
    before = snapshot(done)
    one_sentence(invoke(*cmd, "--device", "cpu", "--out", f), 2, "is a file, not a directory")
    one_sentence(invoke(*cmd, "--device", "cpu", "--out", f / "sub"), 2, "cannot be made a directory")
    assert snapshot(done) == before and f.read_text() == "x"


@pytest.mark.parametrize("args,needle", [
    (["run", *TINY, "--lr", "nan"], "lr must be a positive number"),
    (["run", *TINY, "--weight-decay", "nan"], "weight decay must be >= 0"),
    (["run", *TINY, "--train-frac", "nan"], "train_frac (the train ratio) must be in (0, 1)"),
    (["run", *TINY, "--memorized-threshold", "nan"], "memorized threshold must be in (0, 1]"),
    (["run", *TINY, "--eval-every", "-1"], "eval every must be at least 1"),
    (["run", *TINY, "--p", "99999999999999999999999999"], "p must be at most 1000"),
    (["run", *TINY, "--device", ""], "device must be auto, cpu, cuda or cuda:N"),
    (["run", *TINY, "--tokens", "abc"], "tokens must be 'ab' or 'aob='"),
    (["run", *TINY, "--loss", "mse"], "loss must be ce or stablemax"),
    (["run", *TINY, "--grokfast-lambda", "inf"], "grokfast lambda must be >= 0"),
    (["run", *TINY, "--optimizer", "lion", "--lion-beta1", "nan"], "lion_beta1 must be in [0, 1)"),
    (["run", "--resume", "nope"], "no run 'nope'"),
    (["runs", "show", "nope"], "no run 'nope'"),
    (["plot", "done", "--out", "o.txt"], "the figure must be .png, .svg or .pdf"),
    (["plot"], "name runs (RUN...), or choose them with --where"),
    (["plot", "done", "--where", "colour=red"], "unknown field 'colour'"),
    (["plot", "done", "--smooth", "2x"], "the smoothing must be a weight in [0, 1) or a window >= 1"),
    (["plot", "done", "--group-by", "colour"], "cannot group by 'colour'"),
    (["plot", "--phase", "nope"], "no sweep 'nope'"),
    (["runs", "--where", "train_frac>=abc"], "compares with 'abc', which is not a number"),
    (["runs", "--sort", "colour"], "cannot sort by 'colour'"),
    (["connect", "done@5", "done@20"], "has no checkpoint at step 5"),
    (["connect", "done@abc", "done@20"], "must name a step"),
    (["connect", "done@20", "done@40", "--curve", "spiral"], "unknown curve 'spiral'"),
    (["connect", "done@20", "done@40", "--curve", "polyline", "--bends", "0"], "takes 1 to 64 bends"),
    (["connect", "done@20", "done@40", "--fit-lr", "nan"], "fit lr must be a positive number"),
    (["connect", "done@20", "done@40", "--wd", "-1"], "wd must be a number >= 0"),
    (["connect", "missing.safetensors", "done@20"], "does not exist"),
    (["connect", "done@20", "done@40", "--fit-optimizer", "lbfgs"], "fit optimizer must be adam or sgd"),
    (["landscape", "done@40", "--dims", "3"], "dims must be 1 or 2"),
    (["landscape", "done@40", "--through", "done@20"], "--through takes two checkpoints"),
    (["landscape", "done@40", "--seed", "-5"], "seed must be in [0, 2^63)"),
    (["landscape", "done@memorized"], "has not memorized"),
    (["sweep", *TINY, "--seed", "0..100000"], "has more than 4096 values"),
    (["sweep", *TINY, "--seed", "5..1"], "ends before it starts"),
    (["sweep", *TINY, "--lr", "0.1..1"], "needs a step"),
    (["sweep", *TINY, "--lr", "a,b"], "is not a number"),
    (["sweep", *TINY, "--backend", "slurm"], "--backend must be local or ray"),
    (["bench", *TINY, "--bench-steps", "0"], "--bench-steps"),
    (["bench", *TINY, "--out", "/nonexistent/x.json"], "its directory does not exist"),
    (["presets", "extra"], "unexpected extra argument"),
])
def test_inputs_tried_on_top_of_the_issue(done, runs_dir, args, needle):
    before = snapshot(runs_dir)
    one_sentence(invoke(*args), 2, needle)
    assert snapshot(runs_dir) == before


# --- honest outputs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--optimizer", "lion", "--lr", "1e-4"], "cannot train the optimizer lion"),
    (["--loss", "stablemax"], "cannot train the loss stablemax"),
    (["--grokfast-lambda", "2"], "the Grokfast gradient filter"),
])
def test_bench_refuses_what_its_reference_loop_cannot_train(runs_dir, args, needle):
    one_sentence(invoke("bench", *TINY, "--bench-steps", "1", "--repeat", "1", *args), 2, needle)


def test_bench_json_names_the_optimizer_and_loss_both_loops_trained(runs_dir):
    r = invoke("bench", *TINY, "--bench-steps", "2", "--repeat", "1", "--optimizer", "sgd", "--lr", "0.1", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert (res["optimizer"], res["loss"], res["precision"]) == ("sgd", "ce", "fp32")


@pytest.mark.parametrize("name", ["summary.json", "metrics.jsonl", "events.jsonl"])
def test_readers_never_hang_on_a_fifo_nor_follow_a_link(done, runs_dir, name):
    """A FIFO under a run's file name would block a reader forever, a link to /dev/zero would read until
    out of memory: readers take regular files only (`runs`, `runs show` finish, in a child with a limit)."""
    if name != "summary.json":  # an interrupted run's headline reads its metric rows
        summary = json.loads((done / "summary.json").read_text())
        (done / "summary.json").write_text(json.dumps({**summary, "status": "running", "pid": 2**31 - 1}))
    (done / name).unlink()
    os.mkfifo(done / name)
    env = {**os.environ, "GROK_TUI_RUNS_DIR": str(runs_dir)}
    for args in (["runs"], ["runs", "show", "done"]):
        r = subprocess.run([sys.executable, "-m", "grok_tui", *args], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0 and "done" in r.stdout and "Traceback" not in r.stderr, r.stderr
    (done / name).unlink()
    os.symlink("/dev/zero", done / name)
    assert runs.read_jsonl(done / name) == [] and files.read_json(done / name) == {}
