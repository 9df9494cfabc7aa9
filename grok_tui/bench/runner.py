"""Speed of the engine against a faithful notebook-style reference loop, side by side in one process.

The reference is the seed-004 notebook's loop on a model that computes every position (as the
notebook's Grokformer does): the data as one (a, b, c) tensor on the device, a
per-epoch shuffle, ``torch.split`` batches, ``loss.item()`` and ``acc.item()`` per batch, a full
validation pass every epoch, ``LambdaLR`` warm-up. Both sides train the same model from the same
initialisation on the same split and device for the same number of optimizer steps, at the config's
precision: with ``bf16`` the notebook's forward and loss run under the same autocast as the engine's,
with ``tf32`` both use TensorFloat-32 matmuls, so the ratio measures the loop and the model's pass,
not the number format.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn.functional import cross_entropy

from grok_tui.errors import ConfigError, GrokError
from grok_tui.report import Reporter
from grok_tui.spec.config import Config
from grok_tui.store.runs import RunWriter
from grok_tui.sweep import plan as sweep
from grok_tui.sweep import run as sweep_run
from grok_tui.train import data, model
from grok_tui.train.device import apply_precision, autocast
from grok_tui.train.trainer import Control, resolve_device, run_training

REFERENCE_OPTIMIZERS = ("adamw", "adam", "sgd")  # what the notebook's loop trains with


def reference_error(cfg: Config) -> str | None:
    """Why the notebook loop cannot train what `cfg` trains (so a ratio would compare unlike things), or None."""
    o, t = cfg.optim, cfg.train
    differs = []
    if o.optimizer not in REFERENCE_OPTIMIZERS:
        differs.append(f"the optimizer {o.optimizer} (it has {', '.join(REFERENCE_OPTIMIZERS)})")
    if t.loss != "ce":
        differs.append(f"the loss {t.loss} (it has cross-entropy)")
    if o.cooldown != "none":
        differs.append(f"a {o.cooldown} cool-down (it has warm-up only)")
    if o.nesterov:
        differs.append("Nesterov momentum")
    if o.grokfast_lambda > 0:
        differs.append("the Grokfast gradient filter")
    if o.orthograd:
        differs.append("orthogonal gradients")
    if not differs:
        return None
    return (f"bench times the engine against the notebook loop, which cannot train {' or '.join(differs)}; "
            "time such a run with grok-tui run, whose bar shows its steps/s.")


def check_reference(cfg: Config) -> None:
    bad = reference_error(cfg)
    if bad:
        raise ConfigError(bad)


def reference_loop(cfg: Config, steps: int, device: torch.device, until_grokked: bool = False) -> dict[str, Any]:
    """The notebook's training loop, cut after `steps` optimizer steps (or at grokking, when asked:
    the first epoch whose validation accuracy reaches the grokked threshold)."""
    check_reference(cfg)
    split = data.build_from_config(cfg, device)
    net = model.build(model.arch_from_config(cfg), seed=cfg.train.seed, device=device)
    precision = cfg.train.precision
    apply_precision(precision, device)
    o = cfg.optim
    if o.optimizer == "sgd":
        optimizer = torch.optim.SGD(net.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    elif o.optimizer == "adam":
        optimizer = torch.optim.Adam(net.parameters(), lr=o.lr, weight_decay=o.weight_decay, betas=(o.beta1, o.beta2))
    else:
        optimizer = torch.optim.AdamW(net.parameters(), lr=o.lr, weight_decay=o.weight_decay, betas=(o.beta1, o.beta2))
    warm = max(o.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: min((epoch + 1) / warm, 1.0))
    training_set = torch.cat([split.train_x, split.train_y[:, None]], dim=1)
    validation_set = torch.cat([split.val_x, split.val_y[:, None]], dim=1)
    batch_size, done, grokked = cfg.train.batch_size, 0, None
    shuffle = torch.Generator(device=device)  # the notebook's global-RNG shuffle, seeded: the same
    shuffle.manual_seed(cfg.train.seed)  # order at every invocation, so its grokked step is repeatable
    history: dict[str, list[float]] = {"train_acc": [], "val_acc": [], "train_loss": [], "val_loss": []}
    while done < steps and grokked is None:
        training_set = training_set[torch.randperm(training_set.shape[0], device=device, generator=shuffle), :]
        for dset, is_train in [(training_set, True), (validation_set, False)]:
            total_loss = total_acc = 0.0
            net.train(is_train)
            for batch in torch.split(dset, batch_size, dim=0):
                with torch.set_grad_enabled(is_train), autocast(precision, device):
                    logits = net.forward_all_positions(batch[:, :-1])
                    loss = cross_entropy(logits, batch[:, -1].flatten().to(torch.long))
                    total_loss += loss.item() * batch.shape[0]
                if is_train:
                    net.zero_grad()
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    done += 1
                acc = (logits.argmax(-1) == batch[:, -1]).float().mean()
                total_acc += acc.item() * batch.shape[0]
                if done >= steps:
                    break
            key = "train" if is_train else "val"
            history[f"{key}_acc"].append(total_acc / dset.shape[0])
            history[f"{key}_loss"].append(total_loss / dset.shape[0])
            if not is_train and history["val_acc"][-1] >= cfg.train.grokked_threshold and until_grokked:
                grokked = done
            if done >= steps:
                break
    return {"steps": done, "grokked_step": grokked, **history}


class _StopAtGrok(Reporter):
    def __init__(self, control: Control):
        self.control = control

    def on_event(self, run_id: str, event: dict) -> None:
        if event["event"] == "grokked":
            self.control.stop.set()


def engine_loop(cfg: Config, steps: int, device: torch.device, until_grokked: bool = False) -> dict[str, Any]:
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps, checkpoint_every=0,
                                                              device=str(device)))
    control = Control()
    s = run_training(cfg, None, [_StopAtGrok(control)] if until_grokked else [], control)
    return {"steps": s["steps_run"], "grokked_step": s["grokked_step"]}


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t


def eta(times: dict[str, list[float]], total: int) -> str:
    """' (3/6, about 42 s left)': the runs timed so far and the time the rest will take at their mean."""
    done = [t for v in times.values() for t in v]
    left = (total - len(done)) * (sum(done) / len(done)) if done else 0.0
    return f" ({len(done)}/{total}, about {left:,.0f} s left)" if len(done) < total else f" ({total}/{total})"


def bench(cfg: Config, steps: int = 300, repeat: int = 3, warmup: int = 20,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Steps/s of engine and reference (median of `repeat` alternating runs) and their ratio."""
    check_reference(cfg)
    device = resolve_device(cfg.train.device)
    sides = {"engine": lambda n: engine_loop(cfg, n, device), "reference": lambda n: reference_loop(cfg, n, device)}
    if progress:
        progress(f"warming up both loops ({warmup} steps each), then {2 * repeat} timed runs of {steps} steps ...")
    for fn in sides.values():  # one-time costs (allocator, kernels, caches) out of the timing
        fn(warmup)
    times: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(repeat):
        for name in (("reference", "engine") if i % 2 else ("engine", "reference")):
            times[name].append(_timed(lambda fn=sides[name]: fn(steps), device))
            if progress:
                progress(f"{name} {i + 1}/{repeat}: {steps / times[name][-1]:,.1f} steps/s{eta(times, 2 * repeat)}")
    rate = {k: steps / statistics.median(v) for k, v in times.items()}
    return {"device": str(device), "steps": steps, "repeat": repeat, "threads": torch.get_num_threads(),
            "engine_steps_per_s": rate["engine"], "reference_steps_per_s": rate["reference"],
            "ratio": rate["engine"] / rate["reference"], "torch": torch.__version__,
            "optimizer": cfg.optim.optimizer, "loss": cfg.train.loss, "precision": cfg.train.precision,
            "config": cfg.to_dict()}


def time_to_grok(cfg: Config, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Wall seconds from the first step to the grokked milestone, engine vs reference, each trained
    from the same initialisation for at most cfg.train.steps steps."""
    check_reference(cfg)
    device = resolve_device(cfg.train.device)
    out: dict[str, Any] = {}
    for name, fn in (("engine", engine_loop), ("reference", reference_loop)):
        fn(cfg, 5, device)  # warm-up
        if progress:
            progress(f"{name}: training until it groks (at most {cfg.train.steps} steps) ...")
        result: dict[str, Any] = {}
        seconds = _timed(lambda fn=fn, result=result: result.update(fn(cfg, cfg.train.steps, device, until_grokked=True)),
                         device)
        out[f"{name}_grok_s"] = seconds if result["grokked_step"] is not None else None
        out[f"{name}_grok_step"] = result["grokked_step"]
        if progress:
            progress(f"{name}: grokked at step {result['grokked_step']} after {seconds:,.1f} s")
    e, r = out["engine_grok_s"], out["reference_grok_s"]
    out["grok_ratio"] = r / e if e and r else None
    return out


def _grok_tui(args: list[str]) -> None:
    """Run `python -m grok_tui ARGS` as a shell would (its output discarded); a failure raises with the
    command's own last line."""
    done = subprocess.run([sys.executable, "-m", "grok_tui", *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise GrokError(f"grok-tui {args[0]} exited with {done.returncode}: {last}")


def sweep_bench(cfg: Config, members: int, steps: int, repeat: int = 3, workers: int = 0,
                progress: Callable[[str], None] | None = None, processes: bool = False) -> dict[str, Any]:
    """Wall seconds of `members` runs (seeds 0..members-1 of cfg, `steps` steps each) one after another
    with train.run_training, against the same runs as one sweep (sweep_run.run_sweep: ensembles, worker
    processes as `workers` says); both write their run directories into a scratch directory.
    Alternating, median of `repeat`. In one process, so neither side pays a process start-up; with
    `processes`, each side as a researcher runs it from a shell instead: `members` `grok-tui run`
    processes one after another against one `grok-tui sweep` process (start-ups included)."""
    base = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps))
    seeds = list(range(members))
    with tempfile.TemporaryDirectory(prefix="grok-bench-") as tmp:
        root = Path(tmp)
        cfg_file = root / "config.toml"
        cfg_file.write_text(base.to_toml())
        common = ["--config", str(cfg_file), "--runs-dir", str(root), "--json"]

        def one_by_one(i: int) -> None:
            if processes:
                for s in seeds:
                    _grok_tui(["run", *common, "--seed", str(s), "--name", f"seq{i}-{s:03d}"])
                return
            for s in seeds:
                c = dataclasses.replace(base, train=dataclasses.replace(base.train, seed=s))
                w = RunWriter(root / f"seq{i}-{s:03d}", c)
                try:
                    run_training(c, w)
                finally:
                    w.close()

        def as_sweep(i: int) -> None:
            if processes:
                _grok_tui(["sweep", *common, "--seed", f"0..{members - 1}", "--name", f"sweep{i}",
                           "--workers", str(workers)])
                return
            sweep_run.run_sweep(sweep.plan(base, {"seed": seeds}, root, name=f"sweep{i}", workers=workers), root)

        engine_loop(base, 5, resolve_device(cfg.train.device))  # one-time costs (imports, kernels)
        if progress:
            progress(f"timing {members} runs one after another against one sweep, {repeat} times each ...")
        used = sweep.plan(base, {"seed": seeds}, root, name="plan", workers=workers).workers
        times: dict[str, list[float]] = {"one_by_one": [], "sweep": []}
        for i in range(repeat):
            for name in (("sweep", "one_by_one") if i % 2 else ("one_by_one", "sweep")):
                fn = as_sweep if name == "sweep" else one_by_one
                times[name].append(_timed(lambda fn=fn, i=i: fn(i), resolve_device(cfg.train.device)))
                if progress:
                    progress(f"{name} {i + 1}/{repeat}: {times[name][-1]:,.1f} s{eta(times, 2 * repeat)}")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"members": members, "steps": steps, "workers": used, "one_by_one_s": med["one_by_one"],
            "sweep_s": med["sweep"], "sweep_ratio": med["one_by_one"] / med["sweep"],
            "sweep_mode": "processes" if processes else "in-process"}
