"""The two (or more) checkpoints a connectivity job connects, loaded with the data split they are
evaluated on: one sentence for every way they cannot be (missing, corrupt, another model or task)."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grok_tui.errors import CheckpointError, ConfigError
from grok_tui.spec.checks import threads_error
from grok_tui.spec.config import Config
from grok_tui.store import runs
from grok_tui.store.files import read_sidecar
from grok_tui.train import checkpoint, data
from grok_tui.train.device import resolve_device
from grok_tui.train.model import Arch, Transformer, arch_from_config, build

Weights = dict[str, torch.Tensor]


def use_threads(threads: int) -> None:
    """torch's CPU threads for this process (0: torch's default); ConfigError outside
    [0, the CPUs this process may use]."""
    bad = threads_error(threads)
    if bad:
        raise ConfigError(bad)
    if threads:
        torch.set_num_threads(threads)


class Cancelled(Exception):
    """The cancel event was set; the work stopped between two steps or t-chunks."""


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()


@dataclass
class Endpoint:
    ref: str
    path: Path
    weights: Weights
    step: int | None
    run: str | None
    run_path: Path | None


@dataclass
class Problem:
    """Everything the curve work needs: the model skeleton, the data split, wd, the endpoints."""

    model: Transformer
    arch: Arch
    cfg: Config
    split: data.Split
    wd: float
    device: torch.device
    ends: list[Endpoint]
    notes: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path | None:
        """The run directory results are saved in: the first endpoint's run, else the second's."""
        return next((e.run_path for e in self.ends if e.run_path is not None), None)


def _step_of(path: Path) -> int | None:
    side = read_sidecar(path)
    if isinstance(side.get("step"), int):
        return side["step"]
    m = re.fullmatch(r"step-(\d+)", path.stem)
    return int(m.group(1)) if m else None


def _task(cfg: Config) -> str:
    """'x+y mod 31 (tokens ab)': what a run learns, as two runs must share it to be connected."""
    return f"{cfg.data.op} mod {cfg.data.p} (tokens {cfg.data.tokens})"


def load_problem(refs: list[str], root: Path, wd: float | None = None, cfg: Config | None = None,
                 device: str = "auto") -> Problem:
    """Resolve and load checkpoints (same architecture, same task) and the split they are evaluated on.

    The split and wd come from the first endpoint's run (else the next one's, else `cfg`); `wd`
    overrides the run's weight decay. Raises ConfigError/CheckpointError with one sentence.
    """
    if wd is not None and not 0 <= wd < math.inf:
        raise ConfigError(f"wd must be a number >= 0, got {wd}.")
    dev = resolve_device(device)
    paths = [refs.resolve_checkpoint(r, root) for r in refs]
    infos = [refs.run_of_checkpoint(p) for p in paths]
    cfgs = [i.config for i in infos if i is not None and i.config is not None]
    base = cfgs[0] if cfgs else cfg
    if base is None:
        raise ConfigError("none of the checkpoints lives in a run directory; give a config or preset "
                          "to say which data split to evaluate on.")
    notes = []
    for i in infos:
        c = i.config if i is not None else None
        if c is None or c is base:
            continue
        if (c.data.op, c.data.p, c.data.tokens) != (base.data.op, base.data.p, base.data.tokens):
            raise ConfigError(f"run '{i.id}' learns {_task(c)}, but the first checkpoint's run learns "
                              f"{_task(base)}: they are different tasks.")
        if (c.data.train_frac, c.split_seed) != (base.data.train_frac, base.split_seed):
            notes.append(f"run '{i.id}' has another train/val split; every point is evaluated on the split "
                         "of the first run.")
    arch = arch_from_config(base)
    ends = []
    for ref, path, info in zip(refs, paths, infos, strict=True):
        w, _ = checkpoint.load_weights(path, arch)
        ends.append(Endpoint(ref, path, {k: v.to(dev, torch.float32) for k, v in w.items()}, _step_of(path),
                             info.id if info else None, info.path if info else None))
    model = build(arch, 0, dev)
    params = dict(model.named_parameters())
    for end in ends:
        missing = set(params) ^ set(end.weights)
        if missing:
            raise CheckpointError(f"checkpoint {end.path} does not hold this model's parameters "
                                  f"({sorted(missing)[0]}).")
        wrong = [n for n, p in params.items() if end.weights[n].shape != p.shape]
        if wrong:
            raise CheckpointError(f"checkpoint {end.path} does not fit this model: {wrong[0]} is "
                                  f"{tuple(end.weights[wrong[0]].shape)}, the model's is {tuple(params[wrong[0]].shape)}.")
    split = data.build_from_config(base, dev)
    return Problem(model, arch, base, split, base.optim.weight_decay if wd is None else wd, dev, ends, notes)


def chain_points(problem: Problem) -> tuple[list[Weights], list[int]]:
    """The checkpoints of the first endpoint's run strictly between the two endpoints' steps, in order."""
    a, b = problem.ends[0], problem.ends[-1]
    if a.run is None or a.run_path != b.run_path or a.step is None or b.step is None:
        raise ConfigError("a chain runs through one run's checkpoints: both ends must be checkpoints of the same run.")
    lo, hi = sorted((a.step, b.step))
    info = runs.open_run(a.run_path.parent, a.run)
    inner = [(s, p) for s, p in info.checkpoints() if lo < s < hi]
    if a.step > b.step:
        inner.reverse()
    pts = []
    for _, p in inner:
        w, _ = checkpoint.load_weights(p, problem.arch)
        pts.append({k: v.to(problem.device, torch.float32) for k, v in w.items()})
    return pts, [a.step, *(s for s, _ in inner), b.step]
