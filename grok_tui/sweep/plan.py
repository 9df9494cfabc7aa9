"""Sweeps: a grid of configs, grouped into ensembles, each member an ordinary run directory.

The grid comes from grid.py; the summary is summary.py. Members that can share one ensemble (same
architecture, steps, batch size, eval/checkpoint cadence, device, table and optimizer family) are
trained together by ``ensemble.Ensemble`` (see ``group.py``); members with an optimizer that has
no vectorised step run one after another with ``train.run_training``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grok_tui.errors import ConfigError
from grok_tui.host import usable_cpus
from grok_tui.spec.checks import validate
from grok_tui.spec.config import Config, apply_overrides, from_dict
from grok_tui.spec.ops import canonical_op, get_op
from grok_tui.spec.presets import preset
from grok_tui.spec.tomlfile import load_toml
from grok_tui.store.ids import new_id
from grok_tui.store.names import MAX_LEN, name_error
from grok_tui.store.sweeps import SWEEPS_DIR
from grok_tui.sweep.grid import MAX_MEMBERS, dedupe, load_grid_file, parse_values
from grok_tui.train import model, vecoptim
from grok_tui.train.device import resolve_device as device_of


@dataclass
class Member:
    index: int
    run_id: str
    cfg: Config
    values: dict[str, Any]  # the swept values of this member

    def payload(self) -> dict[str, Any]:
        """Plain data for another process (a worker, a Ray task)."""
        return {"index": self.index, "run_id": self.run_id, "config": self.cfg.to_dict(), "values": self.values}

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Member:
        return cls(d["index"], d["run_id"], from_dict(d["config"]), d["values"])


def group_info(g: list[Member]) -> dict[str, Any]:
    """What a progress display shows of a group: its members, whether they train as one, their steps."""
    return {"members": [m.run_id for m in g], "vectorised": vectorised(g[0].cfg), "steps": g[0].cfg.train.steps}


@dataclass
class Plan:
    sweep_id: str
    base: Config
    grid: dict[str, list[Any]]
    members: list[Member]
    groups: list[list[Member]] = field(default_factory=list)
    workers: int = 1  # worker processes training groups side by side (1: in this process)

    def describe(self) -> dict:
        return {"sweep_id": self.sweep_id, "members": len(self.members), "grid": self.grid, "workers": self.workers,
                "groups": [group_info(g) for g in self.groups]}


def vectorised(cfg: Config) -> bool:
    return vecoptim.family(cfg) is not None


def group_key(cfg: Config, device: str) -> tuple:
    """What members of one ensemble must share."""
    t = cfg.train
    return (model.arch_from_config(cfg), get_op(cfg.data.op).b_nonzero, vecoptim.family(cfg), t.steps,
            t.batch_size, t.eval_every, t.checkpoint_every, t.loss, t.precision, t.sgn_every, device)


def resolve_device(cfg: Config) -> str:
    return str(device_of(cfg.train.device))


def new_sweep_id(runs_dir: Path, base: Config, name: str | None = None) -> str:
    """`name`, or <date>-<time>-sweep-<op>-p<p> with neither a summary nor a first member yet."""
    root = Path(runs_dir)
    return new_id("sweep", f"sweep-{get_op(base.data.op).name}-p{base.data.p}", name,
                  lambda i: (root / SWEEPS_DIR / f"{i}.json").exists() or (root / f"{i}-000").exists())


def default_workers(device: str, members: int) -> int:
    """On the CPU one worker process per core (up to one per member): a single process cannot keep
    two cores busy with the small operations of these models (an OpenMP fork/join per operation),
    several single-threaded ones can. On a GPU one process, whose ensemble fills the device."""
    return 1 if device.startswith("cuda") else max(1, min(usable_cpus(), members))


def plan(base: Config, grid: dict[str, list[Any]], runs_dir: str | Path, name: str | None = None,
         chunk: int = 0, workers: int = 1) -> Plan:
    """Expand the grid over base, validate every member, group them; raises ConfigError.

    workers > 1 cuts groups into chunks of at most ceil(members / workers), so that every worker
    gets a share (0: default_workers for the device)."""
    grid = {k.replace("-", "_"): dedupe(v) for k, v in grid.items() if v}
    if "op" in grid:  # mul,x*y is one operation: one value in the grid, the summary and a phase diagram
        grid["op"] = dedupe([canonical_op(v) if isinstance(v, str) else v for v in grid["op"]])
    total = math.prod(len(v) for v in grid.values()) if grid else 1
    if total > MAX_MEMBERS:
        raise ConfigError(f"the grid has {total} members (at most {MAX_MEMBERS}).")
    if chunk < 0:
        raise ConfigError(f"the chunk size must be >= 0 (0: whole groups), got {chunk}.")
    if workers < 0:
        raise ConfigError(f"the number of workers must be >= 0 (0: one per CPU core, 1 on a GPU), got {workers}.")
    sweep_id = new_sweep_id(Path(runs_dir), base, name)
    last = f"{sweep_id}-{total - 1:03d}"  # the longest member name: its suffix must fit the name rule too
    if name_error("run", last) is not None:
        room = MAX_LEN - (len(last.encode()) - len(sweep_id.encode()))
        raise ConfigError(f"a sweep name of {total} members may be at most {room} bytes long (its members are "
                          f"named {sweep_id[:12]}...-{total - 1:03d}, at most {MAX_LEN} bytes), got "
                          f"{len(sweep_id.encode())}.")
    members = []
    for i, combo in enumerate(itertools.product(*grid.values())):
        values = dict(zip(grid, combo, strict=True))
        cfg = apply_overrides(base, values, where="in the sweep grid ")
        errs = validate(cfg)
        if errs:
            at = ", ".join(f"{k}={v}" for k, v in values.items()) or "the base config"
            raise ConfigError(f"grid point {at}: {' '.join(errs)}")
        members.append(Member(i, f"{sweep_id}-{i:03d}", cfg, values))
    taken = [m.run_id for m in members if (Path(runs_dir) / m.run_id).exists()]
    if taken:
        raise ConfigError(f"run directory {Path(runs_dir) / taken[0]} already exists (choose another --name).")
    by_key: dict[tuple, list[Member]] = {}
    for m in members:
        by_key.setdefault(group_key(m.cfg, resolve_device(m.cfg)), []).append(m)
    if workers == 0:
        workers = default_workers(resolve_device(base), len(members))
    share = -(-len(members) // workers)
    groups: list[list[Member]] = []
    for g in by_key.values():
        size = min(chunk or len(g), share)
        groups.extend(g[i:i + size] for i in range(0, len(g), size))
    return Plan(sweep_id, base, grid, members, groups, min(workers, len(groups)))




def build_plan(runs_dir: str | Path, *, preset_name: str | None = None, config_file: str | Path | None = None,
               grid_file: str | Path | None = None, flags: dict[str, list[str]] | None = None,
               name: str | None = None, chunk: int = 0, workers: int = 1) -> Plan:
    """A sweep from its sources, preset < config file < grid file < flags; a flag with one value sets
    that setting, a flag with several sweeps it. Raises ConfigError (one sentence)."""
    base = preset(preset_name) if preset_name is not None else None
    if config_file is not None:
        base = load_toml(config_file, base)
    grid: dict[str, list[Any]] = {}
    if grid_file is not None:
        base, grid = load_grid_file(grid_file, base)
    singles: dict[str, Any] = {}
    for key, texts in (flags or {}).items():
        values = [v for t in texts for v in parse_values(key, t)]
        if len(values) == 1:
            singles[key] = values[0]
            grid.pop(key, None)
        else:
            grid[key] = values
    base = apply_overrides(base or Config(), singles, where="on the command line ")
    return plan(base, grid, runs_dir, name=name, chunk=chunk, workers=workers)
