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


def arch_from_config(cfg) -> Arch:
    d, m = cfg.data, cfg.model
    return Arch(vocab=data_mod.vocab_size(d.p), seq_len=2 if d.tokens == "ab" else 4, n_classes=d.p,
                layers=m.layers, d_model=m.d_model, heads=m.heads, mlp_ratio=m.mlp_ratio, norm=m.norm)


def _norm(arch: Arch) -> nn.Module:
    return nn.LayerNorm(arch.d_model) if arch.norm == "layernorm" else nn.Identity()


class Attention(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.heads = arch.heads
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
        # The last query may attend to every key, so it needs no mask.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=not last_only)
        return self.proj(y.transpose(1, 2).reshape(B, -1, D))


class MLP(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.fc = nn.Linear(arch.d_model, arch.mlp_ratio * arch.d_model)
        self.proj = nn.Linear(arch.mlp_ratio * arch.d_model, arch.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        self.head = nn.Linear(arch.d_model, arch.n_classes)
        self.register_buffer("positions", torch.arange(arch.seq_len), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, seq_len) tokens -> (B, n_classes) logits for c."""
        h = self.tok_emb(x) + self.pos_emb(self.positions)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            h = block(h, last_only=i == last)
        return self.head(self.ln_f(h[:, -1]))

    def forward_all_positions(self, x: torch.Tensor) -> torch.Tensor:
        """The same logits the way a plain causal transformer computes them: every block at every
        position, then the last one read out (the notebook's model; the reference loop of `bench`)."""
        h = self.tok_emb(x) + self.pos_emb(self.positions)
        for block in self.blocks:
            h = block(h, last_only=False)
        return self.head(self.ln_f(h[:, -1]))


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
