"""Fitting a curve's bends (seed 001, Garipov et al. 2018): minimise
E_{t~U[0,1]} [CE(phi(t); minibatch) + wd/2 ||phi(t)||^2] over the bends, drawing fresh t and a fresh
minibatch each step; SGD or Adam."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from grok_tui.connect import curves
from grok_tui.connect.evaluate import Progress, vmapped
from grok_tui.connect.problem import Problem, check_cancel
from grok_tui.errors import ConfigError
from grok_tui.spec.checks import seed_error

MAX_FIT_STEPS = 10_000_000
MAX_FIT_BATCH = 2 ** 20
MAX_FIT_T = 256  # t drawn per fit step: that many weight copies in one forward pass


@dataclass
class FitSettings:
    steps: int = 500  # optimizer steps on the bends
    lr: float = 3e-3  # learning rate
    optimizer: str = "adam"  # adam or sgd
    momentum: float = 0.9  # SGD momentum
    batch_size: int = 256  # training examples per step
    t_per_step: int = 2  # t drawn per step (their losses averaged)
    wd: float | None = None  # L2 coefficient in the objective (default: see fit_wd)
    seed: int = 0  # seed of the t draws and minibatches

    def check(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.t_per_step < 1:
            raise ConfigError("fit steps must be >= 0, batch size and t per step >= 1.")
        if self.steps > MAX_FIT_STEPS or self.batch_size > MAX_FIT_BATCH or self.t_per_step > MAX_FIT_T:
            raise ConfigError(f"fit steps must be at most {MAX_FIT_STEPS:,}, fit batch at most {MAX_FIT_BATCH} "
                              f"(2^20) and fit t at most {MAX_FIT_T}, got {self.steps}, {self.batch_size} and "
                              f"{self.t_per_step}.")
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"fit lr must be a positive number, got {self.lr}.")
        if self.wd is not None and not 0 <= self.wd < math.inf:
            raise ConfigError(f"fit wd must be a number >= 0, got {self.wd}.")
        bad = seed_error("seed", self.seed)
        if bad:
            raise ConfigError(bad)
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"fit optimizer must be adam or sgd, got '{self.optimizer}'.")


MAX_BENDS = 64  # a curve is fitted as K + 2 weight copies; more bends than this is a typo
L2_OPTIMIZERS = ("sgd", "adam")  # their weight decay is an L2 term of the objective


def fit_wd(problem: Problem, s: FitSettings) -> float:
    """The L2 coefficient of the fit objective: `s.wd` if given; else the problem's wd when the run's
    optimizer applies weight decay as an L2 term (SGD, Adam: seed 001), and 0 for decoupled decay
    (AdamW and the like), whose runs never minimise CE + wd/2 ||w||^2."""
    if s.wd is not None:
        return s.wd
    return problem.wd if problem.cfg.optim.optimizer in L2_OPTIMIZERS else 0.0


def fit(problem: Problem, curve: curves.Curve, s: FitSettings, cancel: threading.Event | None = None,
        progress: Progress | None = None) -> list[dict[str, float]]:
    """Fit the curve's bends; returns a short history of the objective (about 100 rows)."""
    s.check()
    params = list(curve.parameters())
    if not params or s.steps == 0:
        return []
    wd = fit_wd(problem, s)
    opt = (torch.optim.Adam(params, lr=s.lr) if s.optimizer == "adam"
           else torch.optim.SGD(params, lr=s.lr, momentum=s.momentum))
    gen = torch.Generator(device=problem.device).manual_seed(s.seed)
    fwd, sp = vmapped(problem.model), problem.split
    history, every = [], max(1, s.steps // 100)
    acc, count = torch.zeros((), device=problem.device), 0
    with sdpa_kernel(SDPBackend.MATH):
        for step in range(1, s.steps + 1):
            check_cancel(cancel)
            t = torch.rand(s.t_per_step, generator=gen, device=problem.device)
            idx = torch.randint(sp.n_train, (min(s.batch_size, sp.n_train),), generator=gen, device=problem.device)
            w = curve.weights_batch(t)
            logits = fwd(w, sp.train_x[idx]).float()
            ce = F.cross_entropy(logits.transpose(1, 2), sp.train_y[idx].expand(s.t_per_step, -1))
            l2 = sum(v.pow(2).sum() for v in w.values()) / s.t_per_step
            loss = ce + wd / 2 * l2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc += loss.detach()
            count += 1
            if step % every == 0 or step == s.steps:
                history.append({"step": step, "objective": (acc / count).item()})
                acc.zero_()
                count = 0
            if progress is not None and (step % min(every, 20) == 0 or step == s.steps):
                progress("fit", step, s.steps)
    return history
