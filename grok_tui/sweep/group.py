"""One group of a sweep plan trained into its members' run directories.

A group of members that share an architecture and a vectorised optimizer trains as one
``train.ensemble.Ensemble``; any other group trains member by member as single runs. Both go
through the one loop (``train.loop.run_loop``), so every member writes an ordinary run directory
with the contract of ``grok-tui run`` (config.toml, metrics rows with the same keys, events,
checkpoints loadable and resumable as a single run's, summary.json, which also names the sweep).
"""

from __future__ import annotations

from pathlib import Path

from grok_tui.store.runs import RunWriter
from grok_tui.sweep.plan import Member, vectorised
from grok_tui.train.ensemble import Ensemble
from grok_tui.train.loop import Control, Hooks, Recorder, run_loop
from grok_tui.train.trainer import build_trainer, resolve_device


class SweepCallback:
    """Engine hooks of a sweep; every method is optional."""

    def on_start(self, plan: dict) -> None: ...
    def on_group_start(self, index: int, group: dict) -> None: ...
    def on_progress(self, index: int, step: int) -> None: ...
    def on_eval(self, run_id: str, row: dict) -> None: ...
    def on_event(self, run_id: str, event: dict) -> None: ...
    def on_member_end(self, run_id: str, summary: dict) -> None: ...
    def on_end(self, summary: dict) -> None: ...


class _GroupHooks(Hooks):
    """loop.Hooks -> the sweep callbacks, with the group's index on progress."""

    def __init__(self, callbacks, index: int):
        self.callbacks, self.index = list(callbacks), index

    def on_eval(self, run_id: str, row: dict) -> None:
        for cb in self.callbacks:
            cb.on_eval(run_id, row)

    def on_event(self, run_id: str, event: dict) -> None:
        for cb in self.callbacks:
            cb.on_event(run_id, event)

    def on_member_end(self, run_id: str, summary: dict) -> None:
        for cb in self.callbacks:
            cb.on_member_end(run_id, summary)

    def on_progress(self, step: int) -> None:
        for cb in self.callbacks:
            cb.on_progress(self.index, step)


# Where pause/resume/stop of a member go when the process training it is not the one that handles the
# sweep's signals (a local worker process: its parent does, and forwards them to every worker).
CONTROLLER: dict = {}


def _writer(runs_dir: Path, m: Member, sweep_id: str, ensemble: int) -> RunWriter:
    """A member's writer: it holds the member's lock, so a `grok-tui run --name` or `--resume` of a
    member while the sweep trains it is refused."""
    w = RunWriter(Path(runs_dir) / m.run_id, m.cfg)
    w.summary.update({"sweep": sweep_id, "sweep_member": m.index, "ensemble": ensemble, **CONTROLLER})
    return w


def _taken(runs_dir: Path, m: Member) -> bool:
    """A member's run directory made by someone else since the plan was made (an empty one is free)."""
    path = Path(runs_dir) / m.run_id
    return path.exists() and not (path.is_dir() and not any(path.iterdir()))


def _skip(members: list[Member], runs_dir: Path, hooks: _GroupHooks, out: dict[str, dict]) -> list[Member]:
    """The members whose run directory is still free; each other one is skipped with a sentence."""
    keep = []
    for m in members:
        if not _taken(runs_dir, m):
            keep.append(m)
            continue
        error = (f"run directory {Path(runs_dir) / m.run_id} was made by someone else after the sweep was "
                 "planned; this member is skipped and that directory left as it is.")
        summary = {"status": "skipped", "error": error, "steps_run": 0}
        hooks.on_event(m.run_id, {"event": "skipped", "step": 0, "error": error})
        hooks.on_member_end(m.run_id, summary)
        out[m.run_id] = summary
    return keep


def run_ensemble(members: list[Member], runs_dir: Path, sweep_id: str, callbacks=(), control: Control | None = None,
                 index: int = 0) -> dict[str, dict]:
    """Train members as one ensemble, each writing its run directory; returns summaries by run id."""
    hooks = _GroupHooks(callbacks, index)
    out: dict[str, dict] = {}
    members = _skip(members, runs_dir, hooks, out)
    if not members:
        return out
    ens = Ensemble([m.cfg for m in members], resolve_device(members[0].cfg.train.device))
    recorders: list[Recorder] = []
    try:
        for k, m in enumerate(members):
            info = {"n_train": ens.n_train[k], "n_val": ens.n_val[k], "params": ens.n_params,
                    "sweep_member": m.index, "ensemble": ens.K}
            recorders.append(Recorder(_writer(runs_dir, m, sweep_id, len(members)), m.cfg, [hooks], info))
        out.update(run_loop(ens, recorders, members[0].cfg.train, control, [hooks]))
        return out
    finally:
        for r in recorders:
            r.writer.close()


def run_sequential(members: list[Member], runs_dir: Path, sweep_id: str, callbacks=(), control: Control | None = None,
                   index: int = 0) -> dict[str, dict]:
    """Members without a vectorised step (another optimizer, a gradient filter): one single run each."""
    control = control or Control()
    hooks = _GroupHooks(callbacks, index)
    out: dict[str, dict] = {}
    for m in members:
        if control.stop.is_set():
            break
        if not _skip([m], runs_dir, hooks, out):
            continue
        trainer = build_trainer(m.cfg)
        w = _writer(runs_dir, m, sweep_id, 1)
        info = {"n_train": trainer.split.n_train, "n_val": trainer.split.n_val,
                "params": sum(p.numel() for p in trainer.model.parameters()), "sweep_member": m.index, "ensemble": 1}
        try:
            out.update(run_loop(trainer, [Recorder(w, m.cfg, [hooks], info)], m.cfg.train, control, [hooks]))
        finally:
            w.close()
    return out


def run_group(members: list[Member], runs_dir: Path, sweep_id: str, callbacks=(), control: Control | None = None,
              index: int = 0) -> dict[str, dict]:
    fn = run_ensemble if vectorised(members[0].cfg) else run_sequential
    return fn(members, runs_dir, sweep_id, callbacks, control, index)
