"""The data order of a run: per-epoch permutations of its train set, cut into batches.

One order serves a single run (``trainer.Trainer``) and every member of an ensemble
(``ensemble.Ensemble``), so a one-member ensemble draws exactly the single run's batches. The
permutations are drawn on the device from the run's own generator, a whole epoch at a time, and
handed out as index rows for many steps at once, so a step never waits on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class _Epoch:
    perm: torch.Tensor  # (n,) positions in the train set
    rng_state: torch.Tensor  # generator state right after drawing perm


class DataOrder:
    """A stream of per-epoch permutations of one run's train set, cut into equal batches.

    Every step takes exactly ``batch`` rows (the train set's size when that is smaller): the last
    batch of an epoch wraps into the next epoch's permutation instead of being a partial batch, so
    every step has the same shape (what torch.compile and CUDA graphs need) and every example is
    still seen once per epoch. Permutations are drawn on the device from the run's own generator, a
    whole epoch at a time, and handed out as index rows for many steps at once.
    """

    def __init__(self, n: int, batch: int, seed: int, device: torch.device):
        self.n, self.batch = n, min(batch, n)
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.device = device
        self.epochs: dict[int, _Epoch] = {}
        self.drawn = 0

    def epoch_of(self, steps: int) -> float:
        """Epochs of data seen after `steps` steps."""
        return steps * self.batch / self.n

    def _epoch(self, e: int) -> _Epoch:
        while self.drawn <= e:
            perm = torch.randperm(self.n, generator=self.gen, device=self.device)
            self.epochs[self.drawn] = _Epoch(perm, self.gen.get_state())
            self.drawn += 1
        return self.epochs[e]

    def rows(self, s0: int, count: int) -> torch.Tensor:
        """(count, batch) train positions for steps s0..s0+count-1."""
        p0, p1 = s0 * self.batch, (s0 + count) * self.batch  # positions in the stream of permutations
        e0, e1 = p0 // self.n, (p1 - 1) // self.n
        stream = torch.cat([self._epoch(e).perm for e in range(e0, e1 + 1)])
        for e in [e for e in self.epochs if e < e0]:
            del self.epochs[e]
        return stream[p0 - e0 * self.n:p1 - e0 * self.n].view(count, self.batch)

    def _position(self, steps: int) -> tuple[int, int]:
        """(position in the current permutation, permutations drawn) after `steps` steps."""
        p = steps * self.batch
        return p % self.n, p // self.n + 1

    def state_after(self, steps: int) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """The resumable state after `steps` steps: the permutation the next step starts in, the generator
        right after drawing it, the position in it and the permutations drawn."""
        pos, epoch = self._position(steps)
        ep = self._epoch(epoch - 1)
        return ({"rng.data": ep.rng_state, "data.perm": ep.perm},
                {"pos": pos, "epoch": epoch, "order": "wrap", "order_device": self.device.type})

    def restore(self, steps: int, tensors: dict[str, torch.Tensor], extra: dict) -> None:
        """Continue after `steps` steps from what state_after(steps) saved; ValueError if it does not fit."""
        perm, epoch, pos = tensors["data.perm"].to(self.device), int(extra["epoch"]), int(extra["pos"])
        if extra.get("order") != "wrap":
            raise ValueError("it was saved by an older version whose epochs ended in a partial batch")
        if perm.shape != (self.n,) or (pos, epoch) != self._position(steps):
            raise ValueError("the saved data order does not fit this run's split and step")
        state = tensors["rng.data"]
        # a generator's state is the device's own kind (CPU: 5,056 bytes of Mersenne Twister; CUDA: 16 of
        # Philox) and does not carry over; states saved before the device was recorded tell by their size
        saved_on = extra.get("order_device") or (
            self.device.type if state.numel() == self.gen.get_state().numel() else
            ("cpu" if self.device.type != "cpu" else "cuda"))
        if saved_on != self.device.type:
            raise ValueError(f"its data order was drawn on {saved_on}, and a random generator's state does not "
                             f"carry over to {self.device.type}: resume it with --device {saved_on}")
        self.gen.set_state(state)
        self.epochs = {epoch - 1: _Epoch(perm, self.gen.get_state())}
        self.drawn = epoch
