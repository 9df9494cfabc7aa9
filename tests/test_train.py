import json
import math
import os
import signal
import subprocess
import sys
import threading

import pytest
import torch
from helpers import reap, train_run

from grok_tui.errors import CheckpointError, TrainingError
from grok_tui.report import Reporter
from grok_tui.spec import config
from grok_tui.spec.resolve import resolve
from grok_tui.spec.tomlfile import load_toml
from grok_tui.store import files, refs, runs
from grok_tui.train import checkpoint, model
from grok_tui.train import trainer as train
from grok_tui.train.prepare import resume_paths


class Rows(Reporter):
    def __init__(self):
        self.rows, self.events = [], []

    def on_eval(self, run_id, row):
        self.rows.append(row)

    def on_event(self, run_id, event):
        self.events.append(event)


def test_run_directory_contract(tiny_cfg, runs_dir):
    cb = Rows()
    s = train_run(tiny_cfg, runs_dir / "r1", reporters=[cb])
    d = runs_dir / "r1"
    assert s["status"] == "finished" and s["steps_run"] == 60
    assert load_toml(d / "config.toml") == tiny_cfg
    rows = runs.read_jsonl(d / "metrics.jsonl")
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    keys = {"step", "epoch", "wall_s", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "weight_norm",
            "grad_norm", "weight_norm.attn", "grad_norm.head"}
    assert keys <= set(rows[0])
    events = [e["event"] for e in runs.read_jsonl(d / "events.jsonl")]
    assert events[0] == "started" and events[-1] == "finished"
    info = runs.open_run(runs_dir, "r1")
    assert info.status == "finished"
    assert [st for st, _ in info.checkpoints()] == [20, 40, 60]
    assert refs.resolve_checkpoint("r1@last", runs_dir).name == "step-00000060.safetensors"
    assert refs.resolve_checkpoint("r1@40", runs_dir).name == "step-00000040.safetensors"
    assert files.read_sidecar(d / "checkpoints" / "step-00000060.safetensors")["tags"] == ["final"]
    # the weight norm in the row is that of the model's parameters
    w, _ = checkpoint.load_weights(d / "checkpoints" / "step-00000060.safetensors")
    norm = math.sqrt(sum(float((t.double() ** 2).sum()) for t in w.values()))
    assert rows[-1]["weight_norm"] == pytest.approx(norm, rel=1e-4)


def test_milestones_are_first_crossings_with_tagged_checkpoints(tiny_cfg, runs_dir):
    cfg = config.apply_overrides(tiny_cfg, {"steps": 400, "eval_every": 20, "checkpoint_every": 0,
                                            "memorized_threshold": 0.9, "grokked_threshold": 0.01})
    cb = Rows()
    s = train_run(cfg, runs_dir / "m", reporters=[cb])
    mem = next(r["step"] for r in cb.rows if r["train_acc"] >= 0.9)
    grok = next(r["step"] for r in cb.rows if r["val_acc"] >= 0.01)
    assert s["memorized_step"] == mem and s["grokked_step"] == grok
    info = runs.open_run(runs_dir, "m")
    assert info.milestone_step("memorized") == mem
    assert refs.resolve_checkpoint("m@memorized", runs_dir).name == f"step-{mem:08d}.safetensors"
    tags = files.read_sidecar(refs.resolve_checkpoint("m@memorized", runs_dir))["tags"]
    assert "memorized" in tags
    assert [e["event"] for e in cb.events].count("memorized") == 1


def test_checkpoint_round_trip_and_clear_errors(tiny_cfg, runs_dir, tmp_path):
    train_run(tiny_cfg, runs_dir / "c")
    path = refs.resolve_checkpoint("c@last", runs_dir)
    arch = model.arch_from_config(tiny_cfg)
    m = model.build(arch, seed=99)
    checkpoint.load_into(m, path, arch)
    w, _ = checkpoint.load_weights(path)
    for k, v in m.state_dict().items():
        assert torch.equal(v, w[k])
    other = model.Arch(**{**arch.__dict__, "d_model": 32})
    with pytest.raises(CheckpointError, match="does not fit this model: d_model 64 vs 32"):
        checkpoint.load_into(model.build(other), path, other)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load_weights(bad)
    with pytest.raises(CheckpointError, match="no checkpoint at step 7"):
        refs.resolve_checkpoint("c@7", runs_dir)
    with pytest.raises(CheckpointError, match="has not grokked"):
        refs.resolve_checkpoint("c@grokked", runs_dir)


@pytest.mark.parametrize("opt", ["adamw", "sgd"])
def test_resume_equals_straight_run(tiny_cfg, runs_dir, opt):
    """N steps, stop, resume, M more steps == N+M steps straight (mid-epoch stop included)."""
    cfg = config.apply_overrides(tiny_cfg, {"optimizer": opt, "momentum": 0.9, "lr": 0.05 if opt == "sgd" else 2e-3,
                                            "steps": 50, "checkpoint_every": 0, "eval_every": 10})
    straight = Rows()
    train_run(cfg, runs_dir / "straight", reporters=[straight])

    control = train.Control()

    class StopAt(Rows):
        def on_eval(self, run_id, row):
            super().on_eval(run_id, row)
            if row["step"] == 30:
                control.stop.set()

    first = StopAt()
    s = train_run(cfg, runs_dir / "split", reporters=[first], control=control)
    assert s["status"] == "stopped" and s["steps_run"] == 30
    second = Rows()
    s = train_run(cfg, runs_dir / "split", reporters=[second], resume=True,
               resume_from=resume_paths(runs_dir / "split"))
    assert s["status"] == "finished" and s["steps_run"] == 50
    got = first.rows + second.rows
    assert [r["step"] for r in got] == [r["step"] for r in straight.rows]
    for a, b in zip(got, straight.rows, strict=True):
        for key in ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm", "grad_norm"):
            assert a[key] == b[key], (a["step"], key)
    merged = runs.open_run(runs_dir, "split").metrics()
    assert [r["step"] for r in merged] == [10, 20, 30, 40, 50]


def test_same_config_same_curve_on_cpu(tiny_cfg):
    a, b = Rows(), Rows()
    train.run_training(tiny_cfg, None, [a])
    train.run_training(tiny_cfg, None, [b])
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in a.rows]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in b.rows]


def test_nan_loss_fails_with_one_sentence_and_keeps_what_was_written(tiny_cfg, runs_dir):
    cfg = config.apply_overrides(tiny_cfg, {"optimizer": "sgd", "lr": 1e30, "weight_decay": 0.0, "warmup_steps": 0})
    with pytest.raises(TrainingError, match="training diverged: the train loss became nan"):
        train_run(cfg, runs_dir / "nan")
    info = runs.open_run(runs_dir, "nan")
    assert info.status == "failed" and "diverged" in info.summary["error"]
    assert runs.read_jsonl(runs_dir / "nan" / "events.jsonl")[-1]["event"] == "failed"


def test_torn_last_line_is_ignored_and_tail_keeps_it(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "val')
    assert [r["step"] for r in runs.read_jsonl(p)] == [1, 2]
    tail = files.JsonlTail(p)
    assert [r["step"] for r in tail.read()] == [1, 2]
    with open(p, "a") as f:
        f.write('_acc": 0.5}\n{"step": 4}\n')
    assert [r["step"] for r in tail.read()] == [3, 4]
    assert tail.read() == []


def test_sigkill_leaves_every_line_readable_and_the_run_interrupted(runs_dir):
    cmd = [sys.executable, "-m", "grok_tui", "run", "--preset", "smoke", "--steps", "100000", "--eval-every", "5",
           "--checkpoint-every", "50", "--name", "killed", "--runs-dir", str(runs_dir), "--json", "--device", "cpu",
           "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hung = threading.Timer(1800, proc.kill)  # only a guard against a child that hangs: no assertion is timed
    hung.start()
    try:
        seen = 0
        while seen < 30:  # 30 eval lines, however long they take
            line = proc.stdout.readline()
            if not line:
                break
            seen += json.loads(line)["type"] == "eval"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        hung.cancel()
        reap(proc)
    assert seen >= 30
    info = runs.open_run(runs_dir, "killed")
    rows = info.metrics()
    assert len(rows) >= 30 and [r["step"] for r in rows] == list(range(5, 5 * len(rows) + 1, 5))
    assert info.status == "interrupted" and info.config.train.threads == 1
    assert refs.resolve_checkpoint("killed@last", runs_dir).is_file()


def test_sigterm_stops_cleanly_with_a_final_checkpoint(runs_dir):
    cmd = [sys.executable, "-m", "grok_tui", "run", "--preset", "smoke", "--steps", "100000", "--eval-every", "10",
           "--checkpoint-every", "0", "--name", "term", "--runs-dir", str(runs_dir), "--json", "--device", "cpu",
           "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hung = threading.Timer(1800, proc.kill)  # only a guard against a child that hangs: no assertion is timed
    hung.start()
    try:
        for line in proc.stdout:
            if json.loads(line)["type"] == "eval":
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 130
    finally:
        hung.cancel()
        reap(proc)
    info = runs.open_run(runs_dir, "term")
    assert info.status == "stopped" and info.config.train.threads == 1
    step, path = info.checkpoints()[-1]
    assert step == info.summary["steps_run"] and "final" in files.read_sidecar(path)["tags"]
    assert resume_paths(info.path)[0] == path


class _FailingBackward(torch.autograd.Function):
    """Identity forward whose backward raises, as a compiled graph's lazily built backward can."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("backward compiler failed")


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_compile_failure_falls_back_to_eager_with_a_warning(tiny_cfg, monkeypatch, where):
    def broken_compile(model, **kw):
        def fn(x):
            if where == "forward":
                raise RuntimeError("no compiler here")
            return _FailingBackward.apply(model(x))
        return fn

    monkeypatch.setattr(torch, "compile", broken_compile)
    eager = Rows()
    train.run_training(tiny_cfg, None, [eager])
    fallback = Rows()
    s = train.run_training(config.apply_overrides(tiny_cfg, {"compile": True}), None, [fallback])
    assert s["status"] == "finished"
    warnings = [e for e in fallback.events if e["event"] == "warning"]
    assert len(warnings) == 1 and "torch.compile failed (RuntimeError)" in warnings[0]["message"]
    assert [r["train_loss"] for r in fallback.rows] == [r["train_loss"] for r in eager.rows]


def test_out_of_memory_in_a_compiled_step_is_not_a_compile_failure(tiny_cfg, monkeypatch):
    def oom_compile(model, **kw):
        def fn(x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return fn

    monkeypatch.setattr(torch, "compile", oom_compile)
    rows = Rows()
    with pytest.raises(TrainingError, match="out of memory at step 0"):
        train.run_training(config.apply_overrides(tiny_cfg, {"compile": True}), None, [rows])
    assert not [e for e in rows.events if e["event"] == "warning"]


def test_full_disk_fails_with_one_sentence_and_keeps_earlier_rows(tiny_cfg, runs_dir, monkeypatch):
    import errno

    writer = runs.RunWriter(runs_dir / "full", tiny_cfg)
    real = writer.metrics
    calls = []

    def metrics(row):
        calls.append(row["step"])
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(writer.path / "metrics.jsonl"))
        real(row)

    monkeypatch.setattr(writer, "metrics", metrics)
    with pytest.raises(TrainingError, match="the disk is full"):
        train.run_training(tiny_cfg, writer)
    writer.close()
    assert [r["step"] for r in runs.read_jsonl(runs_dir / "full" / "metrics.jsonl")] == [10, 20]
    assert runs.open_run(runs_dir, "full").status == "failed"


def test_full_disk_while_writing_a_checkpoint_fails_cleanly(tiny_cfg, runs_dir, monkeypatch):
    """safetensors reports a full disk as its own error type: still one sentence and status failed."""
    from safetensors import SafetensorError

    from grok_tui.train import checkpoint

    real, calls = checkpoint.save_file, []

    def save_file(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 3:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    cfg = config.apply_overrides(tiny_cfg, {"checkpoint_every": 10})
    writer = runs.RunWriter(runs_dir / "fullck", cfg)
    with pytest.raises(TrainingError, match="the disk is full"):
        train.run_training(cfg, writer)
    writer.close()
    info = runs.open_run(runs_dir, "fullck")
    assert info.status == "failed" and "disk is full" in info.summary["error"]
    assert [e["event"] for e in info.events()][-1] == "failed"
    assert [s for s, _ in info.checkpoints()] == [10]  # the first checkpoint (weights + state) stays
    assert not list((runs_dir / "fullck" / "checkpoints").glob(".*.tmp"))


def test_compile_captures_one_graph_over_three_epochs(monkeypatch):
    """Every step has the same batch shape (epochs wrap), so --compile compiles once and never again."""
    import functools

    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))  # dynamo's guards only
    cfg = resolve("smoke", overrides={"steps": 12, "compile": True, "device": "cpu", "batch_size": 200})
    tr = train.Trainer(cfg)
    while tr.order.epoch_of(tr.step) < 3:
        tr.train_step()
    assert tr.forward is not tr.model and not tr.warnings
    assert counters["stats"]["unique_graphs"] == 1


def test_gpu_status_beside_the_loss(monkeypatch):
    """On CUDA the start info names the GPU and every row carries memory in use, peak and utilisation
    (faked here: no GPU on the CI machine); on the CPU there is nothing of the kind."""
    from grok_tui.cli.run import gpu_text
    from grok_tui.train import device

    assert device.gpu_status(torch.device("cpu")) is None
    fake = {"is_available": lambda: True, "current_device": lambda: 0, "get_device_name": lambda i: "NVIDIA H200",
            "memory_allocated": lambda i: 300 * 2**20, "max_memory_allocated": lambda i: 512 * 2**20,
            "utilization": lambda i: 87}
    for name, fn in fake.items():
        monkeypatch.setattr(torch.cuda, name, fn)
    status = device.gpu_status(torch.device("cuda"))
    assert status == {"gpu": "NVIDIA H200", "gpu_mem_mib": 300.0, "gpu_peak_mib": 512.0, "gpu_util": 87}
    assert gpu_text(status) == "mem 300/512 MiB util 87%" and gpu_text({"train_acc": 1.0}) == ""
    assert device.compile_mode(torch.device("cuda")) == "reduce-overhead"
    assert device.compile_mode(torch.device("cpu")) == "default"


@pytest.mark.slow
def test_smoke_groks_in_bf16(runs_dir):
    """bf16 autocast around the training forward (evaluations stay fp32): smoke still groks (at train
    fraction 0.8 and weight decay 3, where it groks within a few hundred steps: 340 at seed 0, as in fp32)."""
    cfg = resolve("smoke", overrides={"precision": "bf16", "device": "cpu", "threads": 1,
                                             "checkpoint_every": 0, "train_frac": 0.8, "weight_decay": 3.0,
                                             "steps": 1000})
    s = train.run_training(cfg)
    assert s["grokked_step"] is not None and s["best_val_acc"] >= 0.99
