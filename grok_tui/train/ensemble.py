"""K runs that share an architecture, trained as one: stacked parameters, a vmapped forward.

Every member keeps what a single run has: its own initialisation (``model.build(arch, seed)``), its
own train/val split, its own data order (``order.DataOrder``, the one ``trainer.Trainer`` draws from),
its own hyperparameters (lr, weight decay, betas, eps, momentum as (K, 1) tensors) and its own lr
schedule. The parameters of all members live in one (K, P) tensor; the forward pass is a
hand-batched copy of ``model.Transformer.forward`` (bmm over the member axis), checked against the
plain model at start-up, or else ``vmap(functional_call(model, params_k, x_k))``; one backward gives
every member its own gradient (members are independent, so the gradient of the summed losses is each
member's gradient); the optimizer step is torch's fused AdamW/Adam kernel per group of equal
hyperparameters, or element-wise ops on (K, P) tensors (vecoptim.py). Nothing in a step syncs
the host.

Every step of every member has the same batch size (epochs wrap into the next permutation; see
order.py), so all members take equal slices and the plain mean, as a single run does. Only a member
whose whole train set is smaller than the batch takes fewer rows: padded, with a mask in the mean.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from grok_tui.errors import ConfigError
from grok_tui.optim import registry as optim
from grok_tui.spec.config import Config
from grok_tui.spec.ops import Op
from grok_tui.train import data, losses, metrics, model, progress
from grok_tui.train.device import apply_precision, autocast
from grok_tui.train.loop import save_member
from grok_tui.train.order import DataOrder
from grok_tui.train.vecoptim import VecOptimizer

EVAL_ROWS = 16384  # rows (members x examples) per no-grad eval chunk
# The Arch fields the hand-batched forward knows; another field means a model it may not match.
_ARCH_FIELDS = {"vocab", "seq_len", "n_classes", "layers", "d_model", "heads", "mlp_ratio", "norm",
                "scale_invariant"}


# --- the ensemble -----------------------------------------------------------------------------

class StackedWeights:
    """K members' parameters, (K, *shape) each, as ``model.forward_pass`` reads them: every linear
    layer is one baddbmm over (K, rows, D), norms take per-member gains, gathers are per member."""

    def __init__(self, P: dict[str, torch.Tensor], K: int, prefixes: torch.Tensor):
        self.P, self.K, self.prefixes = P, K, prefixes
        self.members = torch.arange(K, device=prefixes.device).view(K, 1)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.P[name]

    def embed(self, tokens: torch.Tensor, pos: slice) -> torch.Tensor:
        """(K, R, T') tokens of each member, or (R, T') shared by all -> (K, R, T', D) (broadcast over
        T' where tokens has one column)."""
        tok = self.P["tok_emb.weight"]
        h = tok[self.members.unsqueeze(-1), tokens] if tokens.dim() == 3 else tok[:, tokens]
        return h + self.P["pos_emb.weight"][:, pos].unsqueeze(1)

    def lin(self, t: torch.Tensor, name: str, rows: slice = slice(None)) -> torch.Tensor:
        w, b = self.P[name + ".weight"], self.P[name + ".bias"]
        if rows != slice(None):  # a full slice would still cost a zero-filled gradient in backward
            w, b = w[:, rows], b[:, rows]
        flat = torch.baddbmm(b.unsqueeze(1), t.reshape(self.K, -1, t.shape[-1]), w.transpose(1, 2))
        return flat.view(*t.shape[:-1], w.shape[1])

    def norm(self, t: torch.Tensor, name: str) -> torch.Tensor:
        shape = (self.K,) + (1,) * (t.dim() - 2) + t.shape[-1:]
        w, b = self.P[name + ".weight"].view(shape), self.P[name + ".bias"].view(shape)
        return torch.addcmul(b, F.layer_norm(t, t.shape[-1:]), w)

    def take(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Rows idx (K, ...) of each member's t (K, P, ...) -> (K, *idx.shape[1:], ...), as an embedding
        lookup in the (K*P, ...) table (its backward is the faster one)."""
        offset = (self.members * t.shape[1]).view((self.K,) + (1,) * (idx.dim() - 1))
        return F.embedding(idx + offset, t.flatten(2).flatten(0, 1)).view(idx.shape + t.shape[2:])

    def cosine_head(self, h: torch.Tensor) -> torch.Tensor:
        return torch.bmm(h, F.normalize(self.P["head.weight"], dim=-1).transpose(1, 2))


class Ensemble:
    """Members (configs) that share architecture, steps, batch size and table; see the module doc."""

    def __init__(self, cfgs: list[Config], device: torch.device):
        if not cfgs:
            raise ConfigError("an ensemble needs at least one member.")
        self.cfgs, self.K, self.device = cfgs, len(cfgs), device
        self.arch = model.arch_from_config(cfgs[0])
        t0 = cfgs[0].train
        for c in cfgs[1:]:
            if model.arch_from_config(c) != self.arch:
                raise ConfigError("ensemble members must share the architecture (p, tokens and the model).")
            if (c.train.steps, c.train.batch_size, c.train.loss, c.train.precision) != \
                    (t0.steps, t0.batch_size, t0.loss, t0.precision):
                raise ConfigError("ensemble members must share steps, batch size, loss and precision.")
        ops = [data.get_op(c.data.op) for c in cfgs]
        if len({op.b_nonzero for op in ops}) != 1:
            raise ConfigError("ensemble members must share the table shape (x/y excludes b = 0).")
        self.batch = t0.batch_size
        self.loss_fn = losses.get(t0.loss)
        apply_precision(t0.precision, device)  # tf32 on CUDA (process-wide), before the self-check below
        self._build_data(cfgs, ops)
        self._build_params(cfgs)
        self.opt = VecOptimizer(cfgs, self.flat)
        self.batched = False
        self.batched = self._batched_matches_model()
        lrs = optim.lr_table([c.optim for c in cfgs], t0.steps)  # (steps, K) float64, built on the host
        self.lr_table = lrs.to(device)
        self.lr_host = lrs.numpy()  # the same on the host: the fused optimizer takes Python floats (no sync)
        self.step = 0
        self.warnings: list[str] = []
        self._chunk: tuple[int, torch.Tensor] | None = None

    # -- set-up --------------------------------------------------------------------------------
    def _build_data(self, cfgs: list[Config], ops: list[Op]) -> None:
        p, tokens = cfgs[0].data.p, cfgs[0].data.tokens
        a, b, _ = data.table(ops[0], p)
        self.table_x = torch.from_numpy(data.encode(a, b, p, tokens)).to(self.device)  # (N, seq)
        ys, train_idx, self.is_train, self.n_train, self.n_val = [], [], [], [], []
        N = len(a)
        for c, op in zip(cfgs, ops, strict=True):
            ys.append(torch.from_numpy(data.table(op, p)[2]))
            tr, va = data.split_indices(N, c.data.train_frac, c.split_seed)
            if len(tr) == 0 or len(va) == 0:
                raise ConfigError(f"train ratio {c.data.train_frac} leaves {'no train' if len(tr) == 0 else 'no val'} "
                                  f"examples in the {N}-row table of p={p}.")
            mask = torch.zeros(N, dtype=torch.bool)
            mask[tr] = True
            train_idx.append(tr)
            self.is_train.append(mask)
            self.n_train.append(len(tr))
            self.n_val.append(len(va))
        self.table_y = torch.stack(ys).to(self.device)  # (K, N)
        n_max = max(self.n_train)
        self.train_idx = torch.stack([F.pad(t, (0, n_max - len(t))) for t in train_idx]).to(self.device)
        self.is_train = torch.stack(self.is_train).to(self.device)  # (K, N)
        self.counts = torch.tensor([self.n_train, self.n_val], dtype=torch.float32, device=self.device)
        self.orders = [DataOrder(n, self.batch, c.train.seed, self.device)
                       for n, c in zip(self.n_train, cfgs, strict=True)]
        # Every step of a member has the same batch (min(batch, its train set)); members whose train set
        # is smaller than the batch take fewer rows: padded, and weighted by a mask.
        sizes = torch.tensor([o.batch for o in self.orders], device=self.device).view(-1, 1)
        self.width = max(o.batch for o in self.orders)
        self.row_weights = None if all(o.batch == self.width for o in self.orders) else \
            (torch.arange(self.width, device=self.device).view(1, -1) < sizes).float() / sizes

    def _build_params(self, cfgs: list[Config]) -> None:
        models = [model.build(self.arch, seed=c.train.seed, device=self.device) for c in cfgs]
        self.base = models[0]  # holds the buffers; its own parameters are not used
        self.names, self.shapes, self.sizes = [], [], []
        for name, prm in self.base.named_parameters():
            self.names.append(name)
            self.shapes.append(tuple(prm.shape))
            self.sizes.append(prm.numel())
        self.flat = torch.stack([torch.cat([q.detach().reshape(-1) for q in m.parameters()]) for m in models])
        self.flat.requires_grad_(True)  # (K, P)
        groups = [model.param_group(n) for n in self.names]
        self.group_names = sorted(set(groups))
        gid = [self.group_names.index(g) for g, n in zip(groups, self.sizes, strict=True) for _ in range(n)]
        self.group_id = torch.tensor(gid, device=self.device)
        self.n_params = self.flat.shape[1]
        del models

    # -- forward -------------------------------------------------------------------------------
    def _params(self, flat_k: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of (P,) or (K, P) flat parameters by name, shaped (shape) or (K, *shape)."""
        lead = tuple(flat_k.shape[:-1])
        parts = torch.split(flat_k, self.sizes, dim=-1)
        return {n: t.view(lead + s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def _call(self, flat_k: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, self._params(flat_k), (x,))

    def forward(self, x: torch.Tensor, shared_x: bool = False) -> torch.Tensor:
        """(K, B, seq) tokens (or (B, seq) shared by all) -> (K, B, n_classes) logits."""
        if self.batched:
            return self._forward_batched(self._params(self.flat), x)
        return self._forward_vmap(x, shared_x)

    def _forward_vmap(self, x: torch.Tensor, shared_x: bool = False) -> torch.Tensor:
        # The CPU flash-attention kernel has no vmap rule; the math kernel decomposes into batched ops.
        with sdpa_kernel([SDPBackend.MATH] if self.device.type == "cpu" else
                         [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
            return vmap(self._call, in_dims=(0, None if shared_x else 0))(self.flat, x)

    def _forward_batched(self, P: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """model.forward_pass over a leading member axis with bmm (no vmap).

        vmap's rule for a linear layer on (B, 1, D) inputs with per-member weights expands the
        weight per example and sums B outer products in the backward pass; on the CPU that made
        the ensemble slower than its members one after another. Used only when the self-check in
        __init__ finds it equal to the plain model.
        """
        x = x if x.dim() == 3 else x.expand(self.K, *x.shape)  # shared rows: a view, no copy
        return model.forward_pass(self.arch, StackedWeights(P, self.K, self.base.prefixes), x)

    @torch.no_grad()
    def _batched_matches_model(self) -> bool:
        """Whether the hand-batched forward computes what model.Transformer computes, on a few rows and
        on more rows than values of a (where the forward gathers from per-value tables)."""
        names = {f.name for f in dataclasses.fields(model.Arch)}
        if names != _ARCH_FIELDS or self.arch.norm not in ("layernorm", "none"):
            return False
        k, m = self.K - 1, self.member_model(self.K - 1)
        for n in (4, self.arch.n_classes + 4):
            x = self.table_x[:n]
            try:
                got = self._forward_batched(self._params(self.flat), x)[k]
            except (KeyError, RuntimeError):
                return False
            if not torch.allclose(got, m(x), rtol=1e-4, atol=1e-5):
                return False
        return True

    # -- one step ------------------------------------------------------------------------------
    def _batch(self, s: int) -> torch.Tensor:
        """(K, W) table indices of step s (the index rows of many steps are gathered at once)."""
        if self._chunk is None or not 0 <= s - self._chunk[0] < self._chunk[1].shape[0]:
            count = max(1, min(256, self.cfgs[0].train.steps - s))
            pos = torch.stack([F.pad(o.rows(s, count), (0, self.width - o.batch)) for o in self.orders], dim=1)
            self._chunk = (s, torch.gather(self.train_idx.unsqueeze(0).expand(count, -1, -1), 2, pos))
        return self._chunk[1][s - self._chunk[0]]

    def train_step(self, want_grads: bool = False) -> dict[str, torch.Tensor]:
        """One optimizer step of every member; returns (K,) device tensors (grad norms when asked)."""
        idx, weights = self._batch(self.step), self.row_weights
        x = self.table_x[idx]  # (K, W, seq)
        y = torch.gather(self.table_y, 1, idx)  # (K, W)
        with autocast(self.cfgs[0].train.precision, self.device):
            logits = self.forward(x)
            K, W, C = logits.shape
            ce = self.loss_fn(logits.reshape(K * W, C), y.reshape(-1), reduction="none").view(K, W)
        loss = ce.mean(1) if weights is None else (ce.float() * weights).sum(1)
        (grad,) = torch.autograd.grad(loss.sum(), self.flat)
        out = self._norms("grad_norm", grad) if want_grads else {}
        self.opt.step(self.flat.data, grad, self.lr_table[self.step].view(-1, 1), self.lr_host[self.step])
        self.step += 1
        return out

    # -- metrics -------------------------------------------------------------------------------
    def _norms(self, prefix: str, t: torch.Tensor) -> dict[str, torch.Tensor]:
        sq = torch.zeros(self.K, len(self.group_names), device=self.device, dtype=torch.float32)
        sq.index_add_(1, self.group_id, t.detach().float().square())
        out = {prefix: sq.sum(1).sqrt()}
        out.update({f"{prefix}.{g}": sq[:, i].sqrt() for i, g in enumerate(self.group_names)})
        return out

    @torch.no_grad()
    def evaluate(self, keep: list | None = None) -> dict[str, torch.Tensor]:
        """train/val loss and accuracy and weight norms of every member, as (K,) device tensors; the
        logits of each chunk ((K, rows, p), in table order) go to ``keep`` when given."""
        N = self.table_x.shape[0]
        chunk = max(1, EVAL_ROWS // self.K)
        sums = torch.zeros(4, self.K, device=self.device)  # train loss, train correct, val loss, val correct
        for i in range(0, N, chunk):
            logits = self.forward(self.table_x[i:i + chunk], shared_x=True).float()
            if keep is not None:
                keep.append(logits)
            y = self.table_y[:, i:i + chunk]
            K, B, C = logits.shape
            ce = self.loss_fn(logits.reshape(K * B, C), y.reshape(-1), reduction="none").view(K, B)
            ok = (logits.argmax(-1) == y).float()
            tr = self.is_train[:, i:i + chunk].float()
            sums += torch.stack([(ce * tr).sum(1), (ok * tr).sum(1), (ce * (1 - tr)).sum(1), (ok * (1 - tr)).sum(1)])
        n = self.counts.repeat_interleave(2, dim=0)
        m = sums / n
        out = {"train_loss": m[0], "train_acc": m[1], "val_loss": m[2], "val_acc": m[3]}
        out.update(self._norms("weight_norm", self.flat))
        return out

    def mean_grad_norms(self) -> dict[str, torch.Tensor]:
        """metrics.mean_grad_norm for every member: the train split in its own order cut into
        consecutive minibatches, each one's gradient norm, averaged over the member's minibatches."""
        n_max = max(self.n_train)
        counts = torch.tensor(self.n_train, device=self.device).view(-1, 1)
        sums: dict[str, torch.Tensor] = {}
        for i in range(0, n_max, self.batch):
            w = min(self.batch, n_max - i)
            pos = torch.arange(i, i + w, device=self.device).view(1, -1)
            size = (counts - i).clamp(0, w)  # (K, 1) examples of this minibatch per member
            idx = self.train_idx[:, i:i + w]
            logits = self.forward(self.table_x[idx])
            K, W, C = logits.shape
            ce = self.loss_fn(logits.float().reshape(K * W, C), torch.gather(self.table_y, 1, idx).reshape(-1),
                              reduction="none").view(K, W)
            weights = (pos < counts).float() / size.clamp_min(1)
            (grad,) = torch.autograd.grad((ce * weights).sum(), self.flat)
            has = (size.view(-1) > 0).float()
            for k, v in self._norms("sgn", grad).items():
                sums[k] = sums[k] + v * has if k in sums else v * has
        batches = torch.tensor([-(-n // self.batch) for n in self.n_train], dtype=torch.float32, device=self.device)
        return {k: v / batches for k, v in sums.items()}

    def eval_rows(self, grads: dict[str, torch.Tensor], wall: float) -> list[dict[str, Any]]:
        """Every member's metrics row (metrics.eval_rows: the rows a single run writes), one host sync; at
        a measuring evaluation each row carries its member's progress measures ("progress"), brought over
        by a second sync of their own (progress.live)."""
        measure = bool(grads) and progress.due(self.cfgs[0].train, self.step)  # a scheduled evaluation only
        keep = [] if measure and progress.keeps_logits(self.K, *self.table_y.shape[1:], self.cfgs[0].data.p) else None
        rows = metrics.eval_rows(self.evaluate(keep), grads, self.mean_grad_norms, self.cfgs[0].train, self.step, wall,
                                 [self.lr_now(k) for k in range(self.K)],
                                 [o.epoch_of(self.step) for o in self.orders])
        if measure:  # the loop's Recorder writes each member's (progress.jsonl and columns)
            emb = self._params(self.flat.detach())["tok_emb.weight"]
            found = progress.live(list(emb), torch.cat(keep, 1) if keep is not None else None,
                                  [c.data.op for c in self.cfgs], self.cfgs[0].data.p, list(self.is_train))
            for row, found_k in zip(rows, found, strict=True):
                row["progress"] = found_k
        return rows

    def save(self, k: int, directory: Path, row: dict, tags: list[str], extra: dict[str, Any]) -> Path:
        """Member k's checkpoint, loadable as a single run's (weights, optimizer, data order)."""
        m = self.member_model(k)
        return save_member(directory, self.step, m, self.arch, self.member_optimizer(k, m),
                           self.orders[k].state_after(self.step), row, tags, extra)

    def lr_now(self, k: int) -> float:
        """Member k's lr of the last step taken (as train.py reports it)."""
        c = self.cfgs[k]
        return c.optim.lr * optim.lr_factor(c.optim, c.train.steps)(self.step - 1)

    # -- a member as a plain model -------------------------------------------------------------
    def member_weights(self, k: int) -> dict[str, torch.Tensor]:
        return {n: t.detach().clone() for n, t in self._params(self.flat[k]).items()}

    def member_model(self, k: int) -> model.Transformer:
        m = model.build(self.arch, device=self.device)
        m.load_state_dict(self.member_weights(k))
        return m

    def member_optimizer(self, k: int, m: torch.nn.Module) -> torch.optim.Optimizer:
        """A torch optimizer for model m (member k's weights) holding member k's optimizer state."""
        opt = optim.build(m, self.cfgs[k].optim, self.device)
        st = self.opt.member_state(k)
        if st is not None and self.opt.steps:
            views = {name: dict(zip(self.names, torch.split(t, self.sizes), strict=True)) for name, t in st.items()}
            for name, prm in m.named_parameters():
                state = {key: v[name].detach().view(prm.shape).clone() for key, v in views.items()}
                if self.opt.kind == "adam":
                    on_dev = bool(opt.defaults.get("fused") or opt.defaults.get("capturable"))
                    state["step"] = torch.tensor(float(self.opt.steps), dtype=torch.float32,
                                                 device=self.device if on_dev else "cpu")
                opt.state[prm] = state
        return opt
