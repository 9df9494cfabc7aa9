"""The data order of a run: per-epoch permutations of its train set, cut into batches.

One order serves a single run (``trainer.Trainer``) and every member of an ensemble
(``ensemble.Ensemble``), so a one-member ensemble draws exactly the single run's batches. The
permutations are drawn on the device from the run's own generator, a whole epoch at a time, and
handed out as index rows for many steps at once, so a step never waits on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class _Epoch:
    perm: torch.Tensor  # (n,) positions in the train set
    rng_state: torch.Tensor  # generator state right after drawing perm


class DataOrder:
    """The per-epoch permutations of one run, drawn ahead in whole epochs from its generator."""

    def __init__(self, n: int, batch: int, seed: int, device: torch.device):
        self.n, self.batch = n, batch
        self.spe = -(-n // batch)  # steps per epoch; the last batch may be partial
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.device = device
        self.epochs: dict[int, _Epoch] = {}
        self.drawn = 0

    def size(self, step: int) -> int:
        """Batch size at 0-based step `step` (host arithmetic)."""
        return min(self.batch, self.n - (step % self.spe) * self.batch)

    def _epoch(self, e: int) -> _Epoch:
        while self.drawn <= e:
            perm = torch.randperm(self.n, generator=self.gen, device=self.device)
            self.epochs[self.drawn] = _Epoch(perm, self.gen.get_state())
            self.drawn += 1
        return self.epochs[e]

    def rows(self, s0: int, count: int) -> torch.Tensor:
        """(count, batch) train positions for steps s0..s0+count-1, padded with 0 past a partial batch."""
        e0, e1 = s0 // self.spe, (s0 + count - 1) // self.spe
        pad = self.spe * self.batch - self.n
        parts = [F.pad(self._epoch(e).perm, (0, pad)).view(self.spe, self.batch) for e in range(e0, e1 + 1)]
        for e in [e for e in self.epochs if e < e0]:
            del self.epochs[e]
        start = s0 - e0 * self.spe
        return torch.cat(parts)[start:start + count]

    def state_after(self, steps: int) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """The resumable state after `steps` steps: generator, current perm, position, epochs drawn."""
        if steps < 1:
            raise ValueError("the data order has no state before the first step.")
        pos, epoch = self._position(steps)
        ep = self._epoch(epoch - 1)
        return {"rng.data": ep.rng_state, "data.perm": ep.perm}, {"pos": pos, "epoch": epoch}

    def _position(self, steps: int) -> tuple[int, int]:
        """(position in the current permutation, permutations drawn) after `steps` steps."""
        return ((steps - 1) % self.spe + 1) * self.batch, (steps - 1) // self.spe + 1

    def restore(self, steps: int, tensors: dict[str, torch.Tensor], extra: dict) -> None:
        """Continue after `steps` steps from what state_after(steps) saved; ValueError if it does not fit."""
        perm, epoch, pos = tensors["data.perm"].to(self.device), int(extra["epoch"]), int(extra["pos"])
        if perm.shape != (self.n,) or (pos, epoch) != self._position(steps):
            raise ValueError("the saved data order does not fit this run's split and step")
        self.gen.set_state(tensors["rng.data"])
        self.epochs = {epoch - 1: _Epoch(perm, self.gen.get_state())}
        self.drawn = epoch
