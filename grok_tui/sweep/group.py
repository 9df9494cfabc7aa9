"""One group of a sweep plan trained into its members' run directories.

A group of members that share an architecture and a vectorised optimizer trains as one
``train.ensemble.Ensemble``; any other group trains member by member as single runs. Both go
through the one loop (``train.loop.run_loop``), so every member writes an ordinary run directory
with the contract of ``grok-tui run`` (config.toml, metrics rows with the same keys, events,
checkpoints loadable and resumable as a single run's, summary.json, which also names the sweep).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from grok_tui.errors import ConfigError, GrokError
from grok_tui.report import Reporter
from grok_tui.store.runs import RunWriter
from grok_tui.sweep.plan import Member, vectorised
from grok_tui.train.ensemble import Ensemble
from grok_tui.train.loop import Control, Fanout, Recorder, run_loop
from grok_tui.train.trainer import build_trainer, resolve_device


def _writer(runs_dir: Path, m: Member, sweep_id: str, ensemble: int, control: Control) -> RunWriter:
    """A member's writer: it holds the member's lock, so a `grok-tui run --name` or `--resume` of a
    member while the sweep trains it is refused. Its summary names the process its signals go to."""
    w = RunWriter(Path(runs_dir) / m.run_id, m.cfg)
    w.summary.update({"sweep": sweep_id, "sweep_member": m.index, "ensemble": ensemble, **control.signals_to})
    return w


def _taken(runs_dir: Path, m: Member) -> bool:
    """A member's run directory made by someone else since the plan was made (an empty one is free)."""
    path = Path(runs_dir) / m.run_id
    return path.exists() and not (path.is_dir() and not any(path.iterdir()))


def _skip(members: list[Member], runs_dir: Path, fan: Fanout, out: dict[str, dict]) -> list[Member]:
    """The members whose run directory is still free; each other one is skipped with a sentence."""
    keep = []
    for m in members:
        if not _taken(runs_dir, m):
            keep.append(m)
            continue
        error = (f"run directory {Path(runs_dir) / m.run_id} was made by someone else after the sweep was "
                 "planned; this member is skipped and that directory left as it is.")
        summary = {"status": "skipped", "error": error, "steps_run": 0}
        fan.call("on_event", m.run_id, {"event": "skipped", "step": 0, "error": error})
        fan.call("on_member_end", m.run_id, summary)
        out[m.run_id] = summary
    return keep


def member_budget() -> int:
    """How many members one ensemble may train at once within this process's open-file limit: each
    member holds its run's lock (one descriptor; its rows and events are opened per write) while it
    trains, and the rest is left to the process (libraries, pipes, checkpoint and summary writes). The
    soft limit is raised to the hard one first."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 1 << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = 64
    free = soft - used
    return max(1, free - max(32, free // 4))


def run_ensemble(members: list[Member], runs_dir: Path, sweep_id: str, reporters: list[Reporter] | tuple = (),
                 control: Control | None = None, index: int = 0) -> dict[str, dict]:
    """Train members as one ensemble, each writing its run directory; returns summaries by run id.
    More members than the open-file limit allows at once (member_budget) train as several ensembles
    one after another."""
    control = control or Control()
    out: dict[str, dict] = {}
    members = _skip(members, runs_dir, Fanout(reporters), out)
    budget = member_budget()
    chunks = -(-len(members) // budget) if members else 0
    size = -(-len(members) // chunks) if chunks else 0
    for c in range(chunks):
        if control.stop.is_set():
            break
        out.update(_train_ensemble(members[c * size:(c + 1) * size], runs_dir, sweep_id, reporters, control, index))
    return out


def _train_ensemble(members: list[Member], runs_dir: Path, sweep_id: str, reporters, control: Control,
                    index: int) -> dict[str, dict]:
    ens = Ensemble([m.cfg for m in members], resolve_device(members[0].cfg.train.device))
    recorders: list[Recorder] = []
    try:
        for k, m in enumerate(members):
            info = {"n_train": ens.n_train[k], "n_val": ens.n_val[k], "params": ens.n_params,
                    "sweep_member": m.index, "ensemble": ens.K}
            recorders.append(Recorder(_writer(runs_dir, m, sweep_id, len(members), control), m.cfg, info))
    except BaseException as e:
        # A member's directory could not be made (no file descriptor, a full disk, a Ctrl-C): none of
        # this ensemble's is left half-made. The failing member's own is removed too when the machine
        # failed (its writer's clean-up may itself have lacked a descriptor), not when another process
        # claimed it.
        made = [r.writer.path for r in recorders]
        for r in recorders:
            r.writer.close()
        if isinstance(e, GrokError) and not isinstance(e, ConfigError):
            made.append(Path(runs_dir) / members[len(recorders)].run_id)
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        raise
    try:
        return run_loop(ens, recorders, members[0].cfg.train, control, reporters, group=index)
    finally:
        for r in recorders:
            r.writer.close()


def run_sequential(members: list[Member], runs_dir: Path, sweep_id: str, reporters: list[Reporter] | tuple = (),
                   control: Control | None = None, index: int = 0) -> dict[str, dict]:
    """Members without a vectorised step (another optimizer, a gradient filter): one single run each."""
    control = control or Control()
    out: dict[str, dict] = {}
    for m in members:
        if control.stop.is_set():
            break
        if not _skip([m], runs_dir, Fanout(reporters), out):
            continue
        trainer = build_trainer(m.cfg)
        w = _writer(runs_dir, m, sweep_id, 1, control)
        info = {"n_train": trainer.split.n_train, "n_val": trainer.split.n_val,
                "params": sum(p.numel() for p in trainer.model.parameters()), "sweep_member": m.index, "ensemble": 1}
        try:
            out.update(run_loop(trainer, [Recorder(w, m.cfg, info)], m.cfg.train, control, reporters, group=index))
        finally:
            w.close()
    return out


def run_group(members: list[Member], runs_dir: Path, sweep_id: str, reporters: list[Reporter] | tuple = (),
              control: Control | None = None, index: int = 0) -> dict[str, dict]:
    """A group as one ensemble (or several within the open-file limit), or member by member."""
    fn = run_ensemble if vectorised(members[0].cfg) else run_sequential
    return fn(members, runs_dir, sweep_id, reporters, control, index)
