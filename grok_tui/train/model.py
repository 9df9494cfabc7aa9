"""A small decoder-only transformer that predicts c from the last input position.

The training forward (``Transformer.forward``, written once in ``forward_pass`` for one model and for
an ensemble of stacked models) computes only what the readout needs, exactly:

- only the last position is read out, so the last block computes its query, attention output and
  MLP for that position alone (the keys and values still see every position);
- an input row is ``[a, b]`` or ``[a, op, b, =]`` (ops.encode), so by causality the positions before
  b depend on a alone. When a batch has more rows than there are values of a, those positions are
  computed once per value of a (p rows) and each row gathers its own; their gradients flow back
  through the gather;
- in such a batch the first block's inputs from b on, and their queries, keys and values, depend on
  the token and its position alone: they come from a table of every token at every such position.

``forward_all_positions`` is the plain causal transformer (every block at every position, the fused
attention kernel): the same function, the way the seed-004 notebook computes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn

from grok_tui.spec import ops
from grok_tui.train.opaque import embedding, relu


@dataclass(frozen=True)
class Arch:
    vocab: int
    seq_len: int
    n_classes: int
    layers: int = 2
    d_model: int = 128
    heads: int = 4
    mlp_ratio: int = 4
    norm: str = "layernorm"
    scale_invariant: bool = False


def arch_from_config(cfg) -> Arch:
    d, m = cfg.data, cfg.model
    return Arch(vocab=ops.vocab_size(d.p), seq_len=ops.seq_len(d.tokens), n_classes=d.p,
                layers=m.layers, d_model=m.d_model, heads=m.heads, mlp_ratio=m.mlp_ratio, norm=m.norm,
                scale_invariant=m.scale_invariant)


def _norm(arch: Arch) -> nn.Module:
    if arch.scale_invariant:  # its normalisations sit after the linear maps instead
        return nn.Identity()
    return nn.LayerNorm(arch.d_model) if arch.norm == "layernorm" else nn.Identity()


# Scale-invariant variant (seed 000): every linear map (embeddings included) is followed by a
# normalisation without gains, which removes any common factor C > 0 of its weights and bias; the head
# is a cosine classifier (each class vector normalised, the features have norm sqrt(d_model)), so
# log p(y | x, Cθ) = log p(y | x, θ) for every parameter. The tiny eps keeps the invariance exact to
# rounding for C far from 1 (weight decay shrinks the norms a lot).
SI_EPS = 1e-12


def si_norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=SI_EPS)


# --- the modules: parameters, and the plain all-positions pass ------------------------------------

class Attention(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.heads = arch.heads
        self.si = arch.scale_invariant
        self.qkv = nn.Linear(arch.d_model, 3 * arch.d_model)
        self.proj = nn.Linear(arch.d_model, arch.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, T, D = h.shape
        q, k, v = (t.reshape(B, T, self.heads, D // self.heads).transpose(1, 2)
                   for t in self.qkv(h).split(D, dim=-1))
        if self.si:  # per head
            q, k, v = si_norm(q), si_norm(k), si_norm(v)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        out = self.proj(y.transpose(1, 2).reshape(B, T, D))
        return si_norm(out) if self.si else out


class MLP(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.si = arch.scale_invariant
        self.fc = nn.Linear(arch.d_model, arch.mlp_ratio * arch.d_model)
        self.proj = nn.Linear(arch.mlp_ratio * arch.d_model, arch.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.si:
            return si_norm(self.proj(F.relu(si_norm(self.fc(x)))))
        return self.proj(F.relu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.ln1, self.attn, self.ln2, self.mlp = _norm(arch), Attention(arch), _norm(arch), MLP(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.tok_emb = nn.Embedding(arch.vocab, arch.d_model)
        self.pos_emb = nn.Embedding(arch.seq_len, arch.d_model)
        self.blocks = nn.ModuleList(Block(arch) for _ in range(arch.layers))
        self.ln_f = _norm(arch)
        self.head = nn.Linear(arch.d_model, arch.n_classes, bias=not arch.scale_invariant)
        self.register_buffer("positions", torch.arange(arch.seq_len), persistent=False)
        self.register_buffer("prefixes", torch.from_numpy(ops.prefixes(arch.n_classes, arch.seq_len)),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, seq_len) rows of ops.encode -> (B, n_classes) logits for c."""
        return forward_pass(self.arch, Weights(self), x)

    def forward_all_positions(self, x: torch.Tensor) -> torch.Tensor:
        """The same logits the way a plain causal transformer computes them: every block at every
        position, then the last one read out (the notebook's model; the reference loop of `bench`)."""
        h = self.tok_emb(x) + self.pos_emb(self.positions)
        if self.arch.scale_invariant:
            h = si_norm(h)
        for block in self.blocks:
            h = block(h)
        h = h[:, -1]
        if self.arch.scale_invariant:
            return F.linear(si_norm(h), F.normalize(self.head.weight, dim=1))
        return self.head(self.ln_f(h))


# --- the training forward, for one model or K stacked ones ------------------------------------------

class Weights:
    """One model's parameters as ``forward_pass`` reads them: looked up by attribute at call time, so
    ``torch.func.functional_call``'s substitutes are the ones used. Tensors are (..., rows, pos, D)."""

    def __init__(self, m: Transformer):
        self.m = m
        self.prefixes = m.prefixes

    def __getitem__(self, name: str) -> torch.Tensor:
        return reduce(getattr, name.split("."), self.m)

    def embed(self, tokens: torch.Tensor, pos: slice) -> torch.Tensor:
        return embedding(tokens, self["tok_emb.weight"]) + self["pos_emb.weight"][pos]

    def lin(self, t: torch.Tensor, name: str, rows: slice = slice(None)) -> torch.Tensor:
        mod = self[name]
        if rows == slice(None):  # a full slice still costs a zero-filled weight-sized gradient in backward
            return F.linear(t, mod.weight, mod.bias)
        return F.linear(t, mod.weight[rows], None if mod.bias is None else mod.bias[rows])

    def norm(self, t: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(t, t.shape[-1:], self[name + ".weight"], self[name + ".bias"])

    def take(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Rows idx (B,) of t (P, ...) (as an embedding lookup: its backward is the faster one)."""
        return embedding(idx, t.flatten(1)).view(idx.shape + t.shape[1:])

    def cosine_head(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, F.normalize(self["head.weight"], dim=-1))


# Sequences per call of the fused attention kernels: their CUDA grids cap the batch dimension at 65,535
# (pytorch#146704), which an ensemble's training batch (members x batch size) can pass.
SDPA_MAX_BATCH = 32768


def attend(q: torch.Tensor, ks: list[torch.Tensor], vs: list[torch.Tensor], offset: int | None,
           fused: bool | None = None) -> torch.Tensor:
    """Softmax attention of (..., Tq, H, hd) queries over keys and values given in consecutive parts
    (..., T_i, H, hd) (the gathered prefix, then the row's own positions) -> (..., Tq, H, hd); query i
    sits at position offset + i and sees the keys up to it (offset None: every key). The sequences
    are 1-4 positions long: on a GPU the fused kernel; on the CPU, where that kernel spends most of
    its time on per-sequence overhead, broadcasts in this layout, part by part (no transposes and no
    concatenated keys, so no copies)."""
    Tq, T = q.shape[-3], sum(k.shape[-3] for k in ks)
    mask = None if offset is None else torch.ones(Tq, T, dtype=torch.bool, device=q.device).triu(offset + 1)
    if fused is None:
        fused = q.device.type != "cpu"
    if fused:  # the fused kernels take (N, H, T, hd)
        shape = q.shape
        k, v = torch.cat(ks, dim=-3), torch.cat(vs, dim=-3)
        q, k, v = (t.reshape(-1, *t.shape[-3:]).transpose(1, 2) for t in (q, k, v))
        m, n = None if mask is None else ~mask, SDPA_MAX_BATCH
        ys = [F.scaled_dot_product_attention(q[i:i + n], k[i:i + n], v[i:i + n], attn_mask=m)
              for i in range(0, q.shape[0], n)]
        y = ys[0] if len(ys) == 1 else torch.cat(ys)
        return y.transpose(1, 2).reshape(shape)
    qq = q.unsqueeze(-3)
    scores = torch.cat([(qq * k.unsqueeze(-4)).sum(-1) for k in ks], dim=-2) * (q.shape[-1] ** -0.5)
    if mask is not None:  # scores: (..., Tq, T, H)
        scores = scores.masked_fill(mask.unsqueeze(-1), float("-inf"))
    p = scores.softmax(-2).unsqueeze(-1)
    out, j = None, 0
    for v in vs:
        part = (p[..., j:j + v.shape[-3], :, :] * v.unsqueeze(-4)).sum(-3)
        out = part if out is None else out + part
        j += v.shape[-3]
    return out


def forward_pass(arch: Arch, W, x: torch.Tensor) -> torch.Tensor:
    """(..., B, seq_len) rows of ops.encode -> (..., B, n_classes) logits, computing only what the
    readout needs (module doc). W is a ``Weights`` (one model) or the ensemble's stacked weights."""
    ib, T, D, H, si = ops.b_index(arch.seq_len), arch.seq_len, arch.d_model, arch.heads, arch.scale_invariant
    Ts = T - ib  # positions from b on
    share = x.shape[-2] > arch.n_classes  # more rows than values of a: compute per value, then gather
    if share:  # the positions before b once per value of a
        hp, rows = W.embed(W.prefixes, slice(0, ib)), x[..., 0]
    else:
        hp, rows = W.embed(x[..., :ib], slice(0, ib)), None
    if si:
        hp = si_norm(hp)

    def ln(t: torch.Tensor, name: str) -> torch.Tensor:
        return t if si or arch.norm == "none" else W.norm(t, name)

    def heads(t: torch.Tensor) -> torch.Tensor:  # (..., R, T', D) -> (..., R, T', H, hd)
        t = t.unflatten(-1, (H, D // H))
        return si_norm(t) if si else t

    def out(y: torch.Tensor, name: str) -> torch.Tensor:  # attention output: merge heads, project
        o = W.lin(y.flatten(-2), name)
        return si_norm(o) if si else o

    def mlp(t: torch.Tensor, pre: str) -> torch.Tensor:
        if si:
            return si_norm(W.lin(relu(si_norm(W.lin(t, pre + "mlp.fc"))), pre + "mlp.proj"))
        return W.lin(relu(W.lin(ln(t, pre + "ln2"), pre + "mlp.fc")), pre + "mlp.proj")

    def embed_suffix() -> torch.Tensor:
        h = W.embed(x[..., ib:], slice(ib, T))
        return si_norm(h) if si else h

    def token_tables() -> tuple[torch.Tensor, ...]:
        """The first block's inputs from b on, and their q, k, v: functions of (token, position) alone,
        so computed once for every token at every such position and gathered per row."""
        e = W.embed(torch.arange(arch.vocab, device=x.device).view(-1, 1), slice(ib, T))  # (..., V, Ts, D)
        if si:
            e = si_norm(e)
        table = torch.cat([e, W.lin(ln(e, "blocks.0.ln1"), "blocks.0.attn.qkv")], dim=-1).flatten(-3, -2)
        idx = x[..., ib:] * Ts + torch.arange(Ts, device=x.device)  # rows of the (V * Ts, 4D) table
        return W.take(table, idx).split(D, dim=-1)

    hs = None if share else embed_suffix()
    for i in range(arch.layers):
        pre, last = f"blocks.{i}.", i == arch.layers - 1
        qkv = pre + "attn.qkv"
        xp = ln(hp, pre + "ln1")
        # The prefix's queries are cheap (few rows) even where unused; slicing the weight is not.
        qkvp = W.lin(xp, qkv)
        qp, kp, vp = qkvp.split(D, dim=-1)
        if hs is None:
            hs, q, ks, vs = token_tables()
            q = q[..., -1:, :] if last else q
        elif last and Ts > 1:  # keys and values everywhere, the query at the last position only
            xs = ln(hs, pre + "ln1")
            ks, vs = W.lin(xs, qkv, slice(D, 3 * D)).split(D, dim=-1)
            q = W.lin(xs[..., -1:, :], qkv, slice(0, D))
        else:
            q, ks, vs = W.lin(ln(hs, pre + "ln1"), qkv).split(D, dim=-1)
        gk, gv = (kp, vp) if rows is None else W.take(qkvp[..., D:], rows).split(D, dim=-1)
        y = attend(heads(q), [heads(gk), heads(ks)], [heads(gv), heads(vs)], None if last else ib)
        hs = (hs[..., -1:, :] if last else hs) + out(y, pre + "attn.proj")
        hs = hs + mlp(hs, pre)
        if not last:  # the prefix positions, for the next block's keys and values
            yp = attend(heads(qp), [heads(kp)], [heads(vp)], 0)
            hp = hp + out(yp, pre + "attn.proj")
            hp = hp + mlp(hp, pre)
    h = hs[..., -1, :]
    if si:
        return W.cosine_head(si_norm(h))
    return W.lin(ln(h, "ln_f"), "head")


def param_group(name: str) -> str:
    """The group a parameter belongs to for per-group metrics: embed, attn, mlp, norm or head."""
    if name.startswith(("tok_emb", "pos_emb")):
        return "embed"
    if name.startswith("head"):
        return "head"
    if ".attn." in name:
        return "attn"
    if ".mlp." in name:
        return "mlp"
    return "norm"


def build(arch: Arch, seed: int | None = None, device: torch.device | str = "cpu") -> Transformer:
    """A freshly initialised model; with a seed, the same weights on every device, global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = Transformer(arch)
    return model.to(device)
