"""Optimizers that act as one: a composite over disjoint parameter sets, and gradient filters.

Both keep the interface the trainer and the checkpoints use: ``param_groups`` (the same dicts as
the parts', so the lr schedule reaches them), ``zero_grad``, ``step``, ``state_dict`` and
``load_state_dict`` in torch's layout (``{"state": {index: {...}}, "param_groups": [...]}``), so
``checkpoint.save_state`` flattens them like any torch optimizer and ``--resume`` restores them.
"""

from __future__ import annotations

from typing import Any

import torch


def fast(device: torch.device) -> dict:
    """Keyword arguments for torch's own optimizers: one fused kernel for all parameters."""
    # On CUDA, and on the CPU too (an AdamW step of the canonical model took 0.21 ms fused against
    # 0.69 ms with foreach on the 2-core dev machine).
    return {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}


class Composite:
    """Several optimizers over disjoint parameters, stepped together (Muon + AdamW, AGD + AdamW)."""

    def __init__(self, parts: list[torch.optim.Optimizer]):
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        return [g for part in self.parts for g in part.param_groups]

    @property
    def state(self) -> dict:
        return {p: s for part in self.parts for p, s in part.state.items()}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for part in self.parts:
            part.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        state: dict[int, dict] = {}
        groups: list[dict] = []
        offset = 0
        for part in self.parts:
            sd = part.state_dict()
            state.update({int(i) + offset: s for i, s in sd["state"].items()})
            groups.extend({**g, "params": [i + offset for i in g["params"]]} for g in sd["param_groups"])
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        groups = list(sd["param_groups"])
        offset = 0
        for part in self.parts:
            mine, groups = groups[:len(part.param_groups)], groups[len(part.param_groups):]
            n = sum(len(g["params"]) for g in mine)
            part.load_state_dict({
                "state": {int(i) - offset: s for i, s in sd["state"].items() if offset <= int(i) < offset + n},
                "param_groups": [{**g, "params": [i - offset for i in g["params"]]} for g in mine]})
            offset += n


class GradFilter:
    """Rewrites the gradients, then steps the wrapped optimizer.

    Subclasses implement ``filter(params)``; per-parameter state they keep is listed by
    ``filter_state`` (name -> {param: tensor}) and travels inside ``state_dict`` under those names.
    Anything else (``train()``/``eval()`` of schedule-free optimizers) is passed to the inner one.
    """

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def param_groups(self) -> list[dict]:
        return self.inner.param_groups

    def params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def filter(self, params: list[torch.Tensor]) -> None:
        raise NotImplementedError

    def filter_state(self) -> dict[str, dict[torch.Tensor, torch.Tensor]]:
        return {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.filter([p for p in self.params() if p.grad is not None])
        self.inner.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        sd = self.inner.state_dict()
        state = {i: dict(s) for i, s in sd["state"].items()}
        for key, per_param in self.filter_state().items():
            for i, p in enumerate(self.params()):
                if p in per_param:
                    state.setdefault(i, {})[key] = per_param[p]
        return {"state": state, "param_groups": sd["param_groups"]}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        params = self.params()
        own = self.filter_state()
        inner_state = {}
        for i, s in sd["state"].items():
            s = dict(s)
            for key, per_param in own.items():
                if key in s:
                    p = params[int(i)]
                    per_param[p] = s.pop(key).to(device=p.device, dtype=p.dtype)
            if s:
                inner_state[i] = s
        self.inner.load_state_dict({"state": inner_state, "param_groups": sd["param_groups"]})


def is_hidden_matrix(name: str, p: torch.Tensor) -> bool:
    """A 2-D weight inside a block (attention, MLP): what Muon orthogonalises."""
    return p.ndim == 2 and name.startswith("blocks.")
