"""A small decoder-only transformer that predicts c from the last input position.

Only the last position is read out, so the last block computes its query, attention output and MLP
for that position alone (the keys and values still see every position): the same function as the
full causal pass at the last position, with less work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod


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
    return Arch(vocab=data_mod.vocab_size(d.p), seq_len=2 if d.tokens == "ab" else 4, n_classes=d.p,
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


class Attention(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.heads = arch.heads
        self.si = arch.scale_invariant
        self.qkv = nn.Linear(arch.d_model, 3 * arch.d_model)
        self.proj = nn.Linear(arch.d_model, arch.d_model)

    def forward(self, h: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        B, T, D = h.shape
        if last_only:  # keys and values at every position, the query at the last one only
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(h[:, -1:], w[:D], b[:D])
            k, v = F.linear(h, w[D:], b[D:]).split(D, dim=-1)
        else:
            q, k, v = self.qkv(h).split(D, dim=-1)
        shape = (B, -1, self.heads, D // self.heads)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
        if self.si:  # per head
            q, k, v = si_norm(q), si_norm(k), si_norm(v)
        # The last query may attend to every key, so it needs no mask.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=not last_only)
        out = self.proj(y.transpose(1, 2).reshape(B, -1, D))
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

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        a = self.attn(self.ln1(x), last_only)
        x = (x[:, -1:] if last_only else x) + a
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, seq_len) tokens -> (B, n_classes) logits for c."""
        h = self._embed(x)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            h = block(h, last_only=i == last)
        return self._readout(h[:, -1])

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tok_emb(x) + self.pos_emb(self.positions)
        return si_norm(h) if self.arch.scale_invariant else h

    def _readout(self, h: torch.Tensor) -> torch.Tensor:
        if self.arch.scale_invariant:
            return F.linear(si_norm(h), F.normalize(self.head.weight, dim=1))
        return self.head(self.ln_f(h))

    def forward_all_positions(self, x: torch.Tensor) -> torch.Tensor:
        """The same logits the way a plain causal transformer computes them: every block at every
        position, then the last one read out (the notebook's model; the reference loop of `bench`)."""
        h = self._embed(x)
        for block in self.blocks:
            h = block(h, last_only=False)
        return self._readout(h[:, -1])


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
