"""Running a sweep plan: ensembles locally, a member-by-member fallback, or Ray tasks.

Each member writes an ordinary run directory with the same contract as ``train.run_training``:
config.toml, metrics.jsonl rows with the same keys, events (started, memorized, grokked,
checkpoint, finished/stopped/failed), checkpoints (weights loadable into ``model.Transformer``, plus
the optimizer, RNG and data-order state ``grok-tui run --resume`` reads) and summary.json, which
also names the sweep. The hot loop has one host sync per evaluation for all members together.
"""

from __future__ import annotations

import errno
import io
import math
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grok_tui.errors import ConfigError, TrainingError
from grok_tui.store.runs import RunWriter
from grok_tui.sweep import plan as sweep
from grok_tui.sweep.plan import Member, Plan
from grok_tui.train import checkpoint, metrics
from grok_tui.train.ensemble import Ensemble
from grok_tui.train.trainer import Callback, Control, _milestone_tags, _wait_paused, run_training


class SweepCallback:
    """Engine hooks of a sweep; every method is optional."""

    def on_start(self, plan: dict) -> None: ...
    def on_group_start(self, index: int, group: dict) -> None: ...
    def on_progress(self, index: int, step: int) -> None: ...
    def on_eval(self, run_id: str, row: dict) -> None: ...
    def on_event(self, run_id: str, event: dict) -> None: ...
    def on_member_end(self, run_id: str, summary: dict) -> None: ...
    def on_end(self, summary: dict) -> None: ...


@dataclass
class _MemberRun:
    """Bookkeeping of one member (the attributes train._milestone_tags reads: cfg, milestones, step)."""

    member: Member
    writer: RunWriter
    milestones: dict[str, int] = field(default_factory=dict)
    best_val_acc: float = 0.0
    step: int = 0
    status: str = "running"
    error: str | None = None
    last: dict = field(default_factory=dict)

    @property
    def cfg(self):
        return self.member.cfg

    @property
    def active(self) -> bool:
        return self.status == "running"


def _emit(mr: _MemberRun, event: dict, callbacks) -> None:
    event = {"event": event.pop("event"), "step": mr.step, **event, "time": time.time()}
    mr.writer.event(event)
    for cb in callbacks:
        cb.on_event(mr.member.run_id, event)


def _summary(mr: _MemberRun, ens: Ensemble, force: bool = True, **extra: Any) -> dict:
    s = {"status": mr.status, "steps_run": mr.step, "total_steps": mr.cfg.train.steps,
         "memorized_step": mr.milestones.get("memorized"), "grokked_step": mr.milestones.get("grokked"),
         "best_val_acc": mr.best_val_acc, "device": str(ens.device), **extra}
    mr.writer.write_summary(force=force, **s)
    return s


def _eval_rows(ens: Ensemble, grads: dict[str, torch.Tensor], wall: float) -> list[dict]:
    """The rows train.Trainer.eval_row writes, for every member, with one host sync."""
    lrs = [ens.lr_now(k) for k in range(ens.K)]
    vals = ens.evaluate()
    weights = {k: v for k, v in vals.items() if k.startswith("weight_norm")}
    vals.update(grads)
    vals.update(metrics.effective(weights, grads, torch.tensor(lrs, device=ens.device)))
    tc = ens.cfgs[0].train
    if grads and getattr(tc, "sgn_every", 0) and (ens.step // tc.eval_every) % tc.sgn_every == 0:
        vals.update(ens.mean_grad_norms())
    keys = list(vals)
    host = torch.stack([vals[k].detach().float() for k in keys]).tolist()  # the one sync of this eval
    rows = []
    for k in range(ens.K):
        row: dict[str, Any] = {"step": ens.step, "epoch": round(ens.step / ens.steps_per_epoch[k], 3),
                               "wall_s": round(wall, 3), "lr": lrs[k]}
        row.update({key: host[i][k] for i, key in enumerate(keys)})
        rows.append(row)
    return rows


def _save_checkpoint(ens: Ensemble, k: int, mr: _MemberRun, row: dict, tags: list[str], callbacks) -> None:
    m = ens.member_model(k)
    path = checkpoint.save(mr.writer.ckpt_dir, ens.step, m, ens.arch, row, tags)
    opt = ens.member_optimizer(k, m)
    tensors, extra = ens.orders[k].state_after(ens.step)
    extra.update({"milestones": mr.milestones, "best_val_acc": mr.best_val_acc, "wall_s": row.get("wall_s", 0.0)})
    checkpoint.save_state(mr.writer.ckpt_dir, ens.step, opt, tensors, extra)
    _emit(mr, {"event": "checkpoint", "path": str(path), "tags": tags}, callbacks)


def run_ensemble(members: list[Member], runs_dir: Path, sweep_id: str, callbacks=(), control: Control | None = None,
                 index: int = 0) -> dict[str, dict]:
    """Train members as one ensemble, each writing its run directory; returns summaries by run id."""
    from grok_tui.train.trainer import resolve_device

    control = control or Control()
    ens = Ensemble([m.cfg for m in members], resolve_device(members[0].cfg.train.device))
    tc = members[0].cfg.train
    mrs: list[_MemberRun] = []
    try:
        for m in members:
            w = RunWriter(Path(runs_dir) / m.run_id, m.cfg)
            w.summary.update({"sweep": sweep_id, "sweep_member": m.index, "ensemble": len(members)})
            mrs.append(_MemberRun(m, w))
        return _loop(ens, mrs, tc, callbacks, control, index)
    finally:
        for mr in mrs:
            mr.writer.close()


def _loop(ens: Ensemble, mrs: list[_MemberRun], tc, callbacks, control: Control, index: int) -> dict[str, dict]:
    for k, mr in enumerate(mrs):
        info = {"run_id": mr.member.run_id, "path": str(mr.writer.path), "device": str(ens.device),
                "steps": tc.steps, "start_step": 0, "n_train": ens.n_train[k], "n_val": ens.n_val[k],
                "params": ens.n_params, "sweep_member": mr.member.index, "ensemble": ens.K}
        _summary(mr, ens, started_at=time.time())
        _emit(mr, {"event": "started", **info}, callbacks)

    def active() -> list[tuple[int, _MemberRun]]:
        return [(k, mr) for k, mr in enumerate(mrs) if mr.active]

    def emit_all(event: dict) -> None:
        for _, mr in active():
            _emit(mr, dict(event), callbacks)

    t0 = time.perf_counter()
    last_step = -1
    out: dict[str, dict] = {}
    status, error = "finished", None
    try:
        while ens.step < tc.steps and active():
            if control.pause.is_set():
                _wait_paused(control, emit_all)
            if control.stop.is_set():
                status = control.stop_reason
                break
            is_eval = (ens.step + 1) % tc.eval_every == 0 or ens.step + 1 == tc.steps
            grads = ens.train_step(want_grads=is_eval)
            for _, mr in active():
                mr.step = ens.step
            if not is_eval:
                if tc.checkpoint_every and ens.step % tc.checkpoint_every == 0:
                    rows = _eval_rows(ens, {}, time.perf_counter() - t0)
                    for k, mr in active():
                        if math.isfinite(rows[k]["train_loss"]):
                            _save_checkpoint(ens, k, mr, rows[k], [], callbacks)
                continue
            rows = _eval_rows(ens, grads, time.perf_counter() - t0)
            last_step = ens.step
            for k, mr in active():
                row = rows[k]
                if not math.isfinite(row["train_loss"]):  # this member stops; the others go on
                    mr.status = "failed"
                    mr.error = (f"training diverged: the train loss became {row['train_loss']} by step {ens.step} "
                                "(try a lower lr); checkpoints up to then are kept.")
                    out[mr.member.run_id] = _finish(mr, ens, callbacks)
                    continue
                mr.best_val_acc = max(mr.best_val_acc, row["val_acc"])
                mr.last = row
                mr.writer.metrics(row)
                for cb in callbacks:
                    cb.on_eval(mr.member.run_id, row)
                tags = _milestone_tags(mr, row)
                for name in tags:
                    _emit(mr, {"event": name, "train_acc": row["train_acc"], "val_acc": row["val_acc"]}, callbacks)
                if tags or (tc.checkpoint_every and ens.step % tc.checkpoint_every == 0):
                    _save_checkpoint(ens, k, mr, row, tags, callbacks)
                _summary(mr, ens, force=bool(tags), last=row)
            for cb in callbacks:
                cb.on_progress(index, ens.step)
        if ens.step > 0 and active():
            rows = _eval_rows(ens, {}, time.perf_counter() - t0) if last_step != ens.step else None
            for k, mr in active():
                final = rows[k] if rows is not None else mr.last
                if final and math.isfinite(final["train_loss"]):
                    _save_checkpoint(ens, k, mr, final, ["final"], callbacks)
                    mr.last = final
    except torch.OutOfMemoryError:
        status, error = "failed", (f"out of memory at step {ens.step} on {ens.device} with {ens.K} members "
                                   "(try --chunk-size or a smaller --batch-size).")
    except OSError as e:
        status, error = "failed", (f"the disk is full ({e.filename or 'run directory'})." if e.errno == errno.ENOSPC
                                   else f"cannot write the run directory: {e}.")
    except KeyboardInterrupt:
        status = "stopped"
    for mr in mrs:
        if mr.active:
            mr.status, mr.error = status, error
            out[mr.member.run_id] = _finish(mr, ens, callbacks)
    return out


def _finish(mr: _MemberRun, ens: Ensemble, callbacks) -> dict:
    """The last event and the final summary of a member."""
    try:
        _emit(mr, {"event": mr.status, **({"error": mr.error} if mr.error else {})}, callbacks)
        s = _summary(mr, ens, error=mr.error, last=mr.last, finished_at=time.time())
    except OSError:
        s = {"status": mr.status, "error": mr.error}
    for cb in callbacks:
        cb.on_member_end(mr.member.run_id, s)
    return s


class _Relay(Callback):
    """train.Callback -> SweepCallback for a member run alone."""

    def __init__(self, run_id: str, index: int, callbacks):
        self.run_id, self.index, self.callbacks = run_id, index, callbacks

    def on_eval(self, row: dict) -> None:
        for cb in self.callbacks:
            cb.on_eval(self.run_id, row)
            cb.on_progress(self.index, row["step"])

    def on_event(self, event: dict) -> None:
        for cb in self.callbacks:
            cb.on_event(self.run_id, event)


def run_sequential(members: list[Member], runs_dir: Path, sweep_id: str, callbacks=(), control: Control | None = None,
                   index: int = 0) -> dict[str, dict]:
    """The fallback for optimizers without a vectorised step: one train.run_training per member."""
    control = control or Control()
    out: dict[str, dict] = {}
    for m in members:
        if control.stop.is_set():
            break
        w = RunWriter(Path(runs_dir) / m.run_id, m.cfg)
        w.summary.update({"sweep": sweep_id, "sweep_member": m.index, "ensemble": 1})
        try:
            s = run_training(m.cfg, w, [_Relay(m.run_id, index, callbacks)], control)
        except TrainingError as e:
            s = {**w.summary, "status": "failed", "error": str(e)}
        finally:
            w.close()
        out[m.run_id] = s
        for cb in callbacks:
            cb.on_member_end(m.run_id, s)
    return out


def run_group(members: list[Member], runs_dir: Path, sweep_id: str, callbacks=(), control: Control | None = None,
              index: int = 0) -> dict[str, dict]:
    fn = run_ensemble if sweep.vectorised(members[0].cfg) else run_sequential
    return fn(members, runs_dir, sweep_id, callbacks, control, index)


# --- the whole sweep -------------------------------------------------------------------------

def run_sweep(p: Plan, runs_dir: str | Path, backend: str = "local", callbacks=(), control: Control | None = None,
              ray_address: str | None = None) -> dict:
    """Run every group of the plan; save and return the sweep summary."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be local or ray, got '{backend}'.")
    runs_dir = Path(runs_dir)
    control = control or Control()
    for cb in callbacks:
        cb.on_start(p.describe())
    t0 = time.perf_counter()
    results: dict[str, dict] = {}

    def save(final: bool) -> dict:
        extra = {"backend": backend, "workers": p.workers if backend == "local" else None,
                 "wall_s": round(time.perf_counter() - t0, 3), "complete": final}
        s = sweep.summarize(p, results, extra)
        s["path"] = str(sweep.save_summary(runs_dir, s))
        return s

    save(False)
    if backend == "local" and p.workers > 1:
        from grok_tui.sweep.workers import run_workers

        results.update(run_workers(p, runs_dir, callbacks, control, on_result=lambda r: (results.update(r),
                                                                                      save(False))))
    elif backend == "local":
        for i, g in enumerate(p.groups):
            if control.stop.is_set():
                break
            for cb in callbacks:
                cb.on_group_start(i, {"members": [m.run_id for m in g], "steps": g[0].cfg.train.steps,
                                      "vectorised": sweep.vectorised(g[0].cfg)})
            results.update(run_group(g, runs_dir, p.sweep_id, callbacks, control, i))
            save(False)
    else:
        results.update(run_ray(p, runs_dir, callbacks, ray_address))
    summary = save(True)
    for cb in callbacks:
        cb.on_end(summary)
    return summary


# --- Ray: one task per ensemble chunk -----------------------------------------------------------

def _ray_task(sweep_id: str, payload: list[dict]) -> dict:
    """Runs in a Ray worker: train one group into a scratch directory, return it as a tar.gz."""
    from grok_tui.spec import config as config_mod

    members = [Member(d["index"], d["run_id"], config_mod.from_dict(d["config"]), d["values"]) for d in payload]
    with tempfile.TemporaryDirectory(prefix="grok-sweep-") as tmp:
        results = run_group(members, Path(tmp), sweep_id)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for m in members:
                tar.add(Path(tmp) / m.run_id, arcname=m.run_id)
    return {"results": results, "tar": buf.getvalue()}


def run_ray(p: Plan, runs_dir: Path, callbacks=(), address: str | None = None) -> dict[str, dict]:
    """Send each group (ensemble chunk) to a Ray task, one GPU each where the cluster has GPUs."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'grok-tui[ray]'.") from None
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(_ray_task).options(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=0)
        refs = {}
        for i, g in enumerate(p.groups):
            payload = [{"index": m.index, "run_id": m.run_id, "config": m.cfg.to_dict(), "values": m.values} for m in g]
            refs[task.remote(p.sweep_id, payload)] = i
            for cb in callbacks:
                cb.on_group_start(i, {"members": [m.run_id for m in g], "steps": g[0].cfg.train.steps,
                                      "vectorised": sweep.vectorised(g[0].cfg)})
        results: dict[str, dict] = {}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                out = ray.get(done[0])
                with tarfile.open(fileobj=io.BytesIO(out["tar"]), mode="r:gz") as tar:
                    # the "data" filter refuses absolute paths and links out of runs_dir (Python >= 3.11.4)
                    kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                    tar.extractall(runs_dir, **kw)
                results.update(out["results"])
                for cb in callbacks:
                    cb.on_progress(refs[done[0]], p.groups[refs[done[0]]][0].cfg.train.steps)
                    for run_id, s in out["results"].items():
                        cb.on_member_end(run_id, s)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)
            raise
        return results
    finally:
        if started:
            ray.shutdown()
