"""Progress measures of grokking (Nanda et al. 2023, "Progress measures for grokking via mechanistic
interpretability"): the Fourier structure of the number embeddings and of the answer logits.

Everything here is torch on whatever device its inputs are on, with no host synchronisation until
``to_host`` (the caller syncs once per evaluation, as with ``metrics.py``). Definitions (also in
docs/metrics.md, "Progress measures"):

**Basis.** The operation decides the group the measures live on (``basis_of``):

- ``add`` (x+y), ``sub`` (x−y): the additive group Z_p; a row's "sum" is s = a + b, resp. a − b.
- ``mul`` (x*y), ``div`` (x/y), p prime and p >= 3: the multiplicative group of the nonzero residues,
  made additive by the discrete logarithm to g = the smallest primitive root mod p (``primitive_root``):
  Z_{p−1}, s = log a + log b, resp. log a − log b, and an answer c sits at log c. Rows with a zero
  operand (whose answer is 0) are left out of the restricted and excluded losses, and the answer 0 is
  outside every key direction (log 0 does not exist): its logit is kept as it is (excluded loss) or
  replaced by its mean over the rows (restricted loss).
- every other operation (and x*y with p not prime): the embedding spectrum in the additive basis only;
  ``restricted_loss`` and ``excluded_loss`` are None (absent: the logits have no known Fourier form).

n is the group's order (p or p − 1), w_k = 2πk/n and the frequencies are k = 1..⌊n/2⌋.

**Fourier basis** (``fourier_basis(n)``): rows 1/√n, then cos(w_k x), sin(w_k x) for k = 1..⌊n/2⌋, each
scaled to unit length; for even n the last frequency has only its cosine (its sine is zero). (n, n),
orthonormal.

**Embedding spectrum** (``embedding_spectrum``): the number tokens' embedding rows W_E[0..p−1] (p x d;
in the multiplicative basis the p − 1 nonzero tokens in the order g^0, g^1, ..., g^(p−2)), projected
on the basis: spectrum[k−1] = sqrt(‖cos_k·W‖² + ‖sin_k·W‖²). The constant row's norm (the mean
embedding times √n) is returned apart (``const_norm``) and takes no part in the sparsity measures.

**Sparsity** of the spectrum x_1..x_K (K = ⌊n/2⌋):

- ``gini``: Gini coefficient of the norms x_k, normalised to [0, 1]:
  Σ_i Σ_j |x_i − x_j| / (2 (K − 1) Σ x) (1: all the norm in one frequency, 0: all equal).
- ``ipr``: inverse participation ratio of the energies e_k = x_k²: Σ e² / (Σ e)², in [1/K, 1]; its
  inverse is the effective number of frequencies in use.

**Key frequencies** (``key_mask``): the fewest frequencies holding at least ``share`` (default 90%) of
the spectrum's energy Σ e_k, taken by decreasing energy. Why this rule and not the paper's (each MLP
neuron of its 1-layer model assigned the frequency that explains most of its activation variance; the
key frequencies are the set of those): it needs only W_E, so no hooks, no extra forward and no
assumption about depth or normalisation (this project's models have 1-2 layers with LayerNorm, or a
scale-invariant variant); it is computed on the device without a host sync; and it has the same meaning
at every checkpoint: a memorising model with its energy spread over all frequencies gets most of them
as key, a grokked one the few it uses. The paper fixes the key frequencies of the final model for all
checkpoints: pass ``key_freqs`` (from ``to_host(measures_from(final...))["key_freqs"]``) to do that.

**Restricted and excluded loss** (``fourier_losses``): the answer logits over every row of the table
(``ops.table`` order: by a then b; x/y has b in [1, p)) as a function L(a, b, c), c the answer in
[0, p). The key directions are the functions cos(w_k(s − t_c)) and sin(w_k(s − t_c)) of (a, b, c) for
every key frequency k, s the row's sum and t_c = c (additive) or log c (multiplicative), zero outside
the included rows and answers; over the included rows they are orthogonal. P(L) is L's orthogonal
projection on them.

- ``restricted_loss``: cross-entropy over all included rows of P(L) + m, where m(c) is the mean over the
  included rows of L(·, ·, c) − P(L)(·, ·, c): the paper's bias correction (the input-independent part of
  each answer's logit is kept). A constant over the answers of one row would not change a softmax, so
  "the per-(a, b) mean over c" adds nothing. Low when the key frequencies alone solve the task.
- ``excluded_loss``: cross-entropy of L − P(L) over the included training rows. Rises when the training
  fit comes to rest on the key frequencies (the generalising circuit), while the train loss stays low.

The paper's code projects the logits on cos(w_k(a + b)), sin(w_k(a + b)) over the inputs for each answer
separately (two more directions per frequency, cos(w_k(a + b + c)) and sin(w_k(a + b + c))), scores the
restricted loss on all p² inputs with the bias correction above, and the excluded loss on the training
set; here the directions are those of its logit coefficients, cos(w_k(a + b − c)): the ones the
algorithm it describes computes. Both use plain cross-entropy whatever the run's training loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from grok_tui.spec import ops

ADDITIVE, MULTIPLICATIVE = "additive", "multiplicative"
SIGN = {"add": 1, "sub": -1, "mul": 1, "div": -1}  # s = x + SIGN * y in the basis's group
DEFAULT_SHARE = 0.9


# --- the groups -----------------------------------------------------------------------------------

def _prime_factors(n: int) -> list[int]:
    out, q = [], 2
    while q * q <= n:
        if n % q == 0:
            out.append(q)
            while n % q == 0:
                n //= q
        q += 1
    return out + ([n] if n > 1 else [])


def primitive_root(p: int) -> int:
    """The smallest primitive root mod the prime p (a generator of the nonzero residues)."""
    if not ops.is_prime(p):
        raise ValueError(f"p must be prime for a primitive root, got {p}.")
    if p == 2:
        return 1
    qs = _prime_factors(p - 1)
    return next(g for g in range(2, p) if all(pow(g, (p - 1) // q, p) != 1 for q in qs))


@lru_cache(maxsize=32)
def discrete_log(p: int) -> np.ndarray:
    """(p,) int64: log[x] = i with g^i = x mod p for x in [1, p), g = primitive_root(p); log[0] = -1."""
    g, log, x = primitive_root(p), np.full(p, -1, dtype=np.int64), 1
    for i in range(p - 1):
        log[x] = i
        x = x * g % p
    log.flags.writeable = False
    return log


def basis_of(op: str | ops.Op, p: int) -> str:
    """'multiplicative' for x*y and x/y with p prime (p >= 3), else 'additive' (module doc)."""
    op = ops.get_op(op) if isinstance(op, str) else op
    return MULTIPLICATIVE if op.name in ("mul", "div") and p >= 3 and ops.is_prime(p) else ADDITIVE


def has_losses(op: str | ops.Op, p: int) -> bool:
    """Whether the restricted and excluded losses are defined: x+y, x−y, and x*y, x/y with p prime."""
    op = ops.get_op(op) if isinstance(op, str) else op
    return op.name in ("add", "sub") or basis_of(op, p) == MULTIPLICATIVE


def fourier_basis(n: int, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n, n) orthonormal rows: 1/√n, then cos(2πkx/n), sin(2πkx/n) for k = 1..⌊n/2⌋ scaled to unit
    length (for even n, k = n/2 has its cosine only)."""
    x = np.arange(n, dtype=np.int64)
    rows = [np.full(n, 1.0 / math.sqrt(n))]
    for k in range(1, n // 2 + 1):
        phase = 2 * np.pi * ((k * x) % n) / n  # k*x reduced mod n first: exact phases
        for f in (np.cos, np.sin) if 2 * k < n else (np.cos,):
            r = f(phase)
            rows.append(r / np.linalg.norm(r))
    return torch.tensor(np.stack(rows), dtype=dtype, device=device)


def _freq_of_row(n: int) -> np.ndarray:
    """The frequency of each row of fourier_basis(n) (0: the constant)."""
    return np.array([0] + [k for k in range(1, n // 2 + 1) for _ in range(1 if 2 * k == n else 2)])


# --- the embedding spectrum and its sparsity -----------------------------------------------------

def number_rows(op: str | ops.Op, p: int) -> np.ndarray:
    """The token ids of the numbers in the order of the basis's group: 0..p−1 (additive), or
    g^0, g^1, ..., g^(p−2) mod p (multiplicative)."""
    if basis_of(op, p) == MULTIPLICATIVE:
        return np.argsort(discrete_log(p))[1:]  # log[0] = -1 sorts first
    return np.arange(p)


def embedding_spectrum(embedding: torch.Tensor, op: str | ops.Op, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(spectrum (K,), const_norm ()) of the token embedding table (rows 0..p−1 are the numbers; more
    rows, such as the operation and '=' tokens, are ignored): module doc. K = ⌊n/2⌋."""
    rows, basis, freq = _spectrum_tables(basis_of(op, p), p, embedding.device)
    w = embedding.detach()[rows].float()  # (n, d)
    energy = (basis @ w).square().sum(-1)  # per basis row
    per_freq = torch.zeros(basis.shape[0] // 2 + 1, device=w.device).index_add_(0, freq, energy)
    return per_freq[1:].sqrt(), per_freq[0].sqrt()


_TABLES: dict[tuple, tuple] = {}


def _cached(key: tuple, build):
    """Small constant tensors, built once per key (so a call copies nothing to the device again)."""
    if key not in _TABLES:
        if len(_TABLES) >= 32:
            _TABLES.clear()
        _TABLES[key] = build()
    return _TABLES[key]


def _spectrum_tables(basis: str, p: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The number tokens in the group's order, the group's Fourier basis and each row's frequency."""
    def build():
        rows = number_rows("x*y" if basis == MULTIPLICATIVE else "x+y", p)
        n = len(rows)
        return (torch.from_numpy(rows.copy()).to(device), fourier_basis(n, device),
                torch.from_numpy(_freq_of_row(n)).to(device))
    return _cached(("spectrum", basis, p, str(device)), build)


def gini(x: torch.Tensor) -> torch.Tensor:
    """Gini coefficient of the nonnegative values x, normalised to [0, 1]: Σ|x_i − x_j| / (2 (K−1) Σx)
    (1: one nonzero value, 0: all equal; 0 when K = 1 or x = 0)."""
    k = x.shape[-1]
    xs = x.float().sort(dim=-1).values
    i = torch.arange(1, k + 1, device=x.device, dtype=xs.dtype)
    num = ((2 * i - k - 1) * xs).sum(-1)
    return num / (max(k - 1, 1) * xs.sum(-1)).clamp_min(1e-30)


def ipr(x: torch.Tensor) -> torch.Tensor:
    """Inverse participation ratio of the energies e = x²: Σe² / (Σe)², in [1/K, 1] (0 when x = 0)."""
    e = x.float().square()
    return e.square().sum(-1) / e.sum(-1).square().clamp_min(1e-30)


def key_mask(spectrum: torch.Tensor, share: float = DEFAULT_SHARE) -> torch.Tensor:
    """(K,) bool: the fewest frequencies whose energies (spectrum²) add up to at least `share` of the
    total, taken by decreasing energy (ties: the lower frequency first). On the device, no sync."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}.")
    k = spectrum.shape[-1]
    e = spectrum.float().square()
    # A stable sort of -e puts equal energies in frequency order.
    order = torch.sort(-e, stable=True).indices
    cum = e[order].cumsum(0)
    # Rounding may leave the last partial sum a hair under share * total: never take more than K.
    count = ((cum < share * cum[-1:]).sum() + 1).clamp_max(k) if k else torch.zeros((), dtype=torch.long)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k, device=e.device)
    return rank < count


def mask_of(freqs, k: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(k,) bool with the given frequencies (1-based, in 1..k) set."""
    freqs = [int(f) for f in freqs]
    bad = [f for f in freqs if not 1 <= f <= k]
    if bad:
        raise ValueError(f"key frequencies must be in 1..{k}, got {bad}.")
    m = torch.zeros(k, dtype=torch.bool, device=device)
    m[[f - 1 for f in freqs]] = True
    return m


# --- the restricted and excluded losses ----------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Where the key directions live in an op's table (numpy, built once per (op, p))."""

    n: int  # the group's order
    rows: np.ndarray  # (R,) the included rows of ops.table
    s: np.ndarray  # (R,) each included row's sum in Z_n
    labels: np.ndarray  # (R,) its answer c
    t: np.ndarray  # (p,) each answer's place in Z_n, -1 outside every direction (c = 0, multiplicative)
    n_rows: int  # rows of the whole table


@lru_cache(maxsize=32)
def layout(op_name: str, p: int) -> Layout:
    op = ops.get_op(op_name)
    if not has_losses(op, p):
        raise ValueError(f"the restricted and excluded losses are not defined for {op.formula}"
                         f"{' with p not prime' if op.name in ('mul', 'div') else ''}.")
    a, b, c = ops.table(op, p)
    sign = SIGN[op.name]
    if basis_of(op, p) == MULTIPLICATIVE:
        log, n = discrete_log(p), p - 1
        keep = np.flatnonzero((a != 0) & (b != 0))
        s, t = np.mod(log[a[keep]] + sign * log[b[keep]], n), log.copy()
    else:
        n, keep = p, np.arange(len(c))
        s, t = np.mod(a + sign * b, n), np.arange(p)
    return Layout(n, keep, s, c[keep], t, len(c))


class _Directions:
    """The key directions' factors on the device: cos/sin(w_k s) over the group's elements s (n, K),
    cos/sin(w_k t_c) over the answers (K, p, zero outside), and their squared norms over the table."""

    def __init__(self, lay: Layout, device: torch.device, dtype: torch.dtype):
        n, k = lay.n, lay.n // 2
        freqs = np.arange(1, k + 1)
        g = np.arange(n)
        ph_s = 2 * np.pi * np.mod(np.outer(g, freqs), n) / n  # (n, K)
        ok = lay.t >= 0
        ph_c = 2 * np.pi * np.mod(np.outer(freqs, np.where(ok, lay.t, 0)), n) / n  # (K, p)
        cs, ss = np.cos(ph_s), np.sin(ph_s)
        cc, sc = np.cos(ph_c) * ok, np.sin(ph_c) * ok
        cnt = np.bincount(lay.s, minlength=n).astype(np.float64)[:, None]  # rows per sum
        # ‖u1 v1ᵀ + u2 v2ᵀ‖² = |u1|²|v1|² + 2 (u1·u2)(v1·v2) + |u2|²|v2|², rows weighted by their count.
        def sq(u1, v1, u2, v2):
            return ((cnt * u1 * u1).sum(0) * (v1 * v1).sum(1) + 2 * (cnt * u1 * u2).sum(0) * (v1 * v2).sum(1)
                    + (cnt * u2 * u2).sum(0) * (v2 * v2).sum(1))
        n_cos, n_sin = sq(cs, cc, ss, sc), sq(ss, cc, -cs, sc)
        inv = [np.divide(1.0, v, out=np.zeros_like(v), where=v > 1e-9) for v in (n_cos, n_sin)]
        t = lambda v: torch.tensor(v, dtype=dtype, device=device)  # noqa: E731
        self.cs, self.ss, self.cc, self.sc = t(cs), t(ss), t(cc), t(sc)
        self.inv_cos, self.inv_sin = t(inv[0]), t(inv[1])
        self.s = torch.from_numpy(lay.s).to(device)
        self.rows = torch.from_numpy(lay.rows).to(device)
        self.labels = torch.from_numpy(lay.labels).to(device)
        self.n = n


def _directions(op_name: str, p: int, device: torch.device, dtype: torch.dtype) -> _Directions:
    return _cached(("directions", op_name, p, str(device), dtype), lambda: _Directions(layout(op_name, p), device, dtype))


def key_projection(logits: torch.Tensor, op: str | ops.Op, p: int, key: torch.Tensor) -> torch.Tensor:
    """(R, p): the orthogonal projection of the included rows' logits (``logits`` is over the whole
    table, ``layout(op, p).rows`` are the R included ones) on the key directions cos(w_k(s − t_c)),
    sin(w_k(s − t_c)) for the frequencies set in ``key`` ((K,) bool)."""
    op = ops.get_op(op) if isinstance(op, str) else op
    lay = layout(op.name, p)
    if logits.shape != (lay.n_rows, p):
        raise ValueError(f"logits must be ({lay.n_rows}, {p}) for {op.formula} at p={p} (one row per row of "
                         f"the table, in ops.table order), got {tuple(logits.shape)}.")
    L = logits.float()
    d = _directions(op.name, p, L.device, L.dtype)
    if key.shape != (d.n // 2,):
        raise ValueError(f"key must have {d.n // 2} frequencies, got {tuple(key.shape)}.")
    # The directions depend on a row only through its sum s: add up the rows of each sum first.
    G = torch.zeros(d.n, p, device=L.device, dtype=L.dtype).index_add_(0, d.s, L[d.rows])  # (n, p)
    X, Y = G @ d.cc.T, G @ d.sc.T  # (n, K): Σ_c G cos(w t_c), Σ_c G sin(w t_c)
    # cos(w(s−t)) = cos ws cos wt + sin ws sin wt;  sin(w(s−t)) = sin ws cos wt − cos ws sin wt
    w = key.to(L.dtype)
    alpha = (d.cs * X + d.ss * Y).sum(0) * d.inv_cos * w  # coefficient / squared norm, per frequency
    beta = (d.ss * X - d.cs * Y).sum(0) * d.inv_sin * w
    R = (d.cs * alpha + d.ss * beta) @ d.cc + (d.ss * alpha - d.cs * beta) @ d.sc  # (n, p) per sum
    return R[d.s]


def fourier_losses(logits: torch.Tensor, op: str | ops.Op, p: int, key: torch.Tensor,
                   train: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(restricted_loss, excluded_loss) as 0-d tensors (module doc); (None, None) for an operation
    without the losses; excluded_loss None without ``train`` (a bool mask over the table's rows, or
    their indices), NaN when no training row is included (known without a host sync)."""
    op = ops.get_op(op) if isinstance(op, str) else op
    if not has_losses(op, p):
        return None, None
    proj = key_projection(logits, op, p, key)
    d = _directions(op.name, p, logits.device, torch.float32)
    L = logits.float()[d.rows]
    restricted = proj + (L - proj).mean(0, keepdim=True)
    r_loss = F.cross_entropy(restricted, d.labels)
    if train is None:
        return r_loss, None
    mask = train_mask(train, logits.shape[0], logits.device)[d.rows]
    excl = F.cross_entropy(L - proj, d.labels, reduction="none")
    # Mean over the included training rows, without a host sync (nan when there are none).
    e_loss = (excl * mask).sum() / mask.sum()
    return r_loss, e_loss


def train_mask(train: torch.Tensor, n_rows: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n_rows,) bool over the table's rows from a bool mask or an index tensor."""
    train = torch.as_tensor(train, device=device)
    if train.dtype == torch.bool:
        if train.shape != (n_rows,):
            raise ValueError(f"a train mask must have the table's {n_rows} rows, got {tuple(train.shape)}.")
        return train
    return torch.zeros(n_rows, dtype=torch.bool, device=device).index_fill_(0, train.long().reshape(-1), True)


# --- the measures together -----------------------------------------------------------------------

def measures_from(embedding: torch.Tensor, logits: torch.Tensor | None, op: str | ops.Op, p: int,
                  train: torch.Tensor | None = None, key_freqs=None,
                  share: float = DEFAULT_SHARE) -> dict[str, torch.Tensor | None]:
    """Every measure as device tensors, from the token embedding table (rows 0..p−1 the numbers) and,
    if given, the answer logits over every row of ``ops.table(op, p)`` in its order ((rows, p)).
    ``key_freqs``: fixed key frequencies (1-based) instead of the ``share`` rule.

    Keys: spectrum (K,), const_norm, gini, ipr, key (K,) bool, basis (str), restricted_loss and
    excluded_loss (0-d, or None: module doc). ``to_host`` turns it into plain numbers and lists."""
    op = ops.get_op(op) if isinstance(op, str) else op
    spectrum, const = embedding_spectrum(embedding, op, p)
    k = spectrum.shape[0]
    key = key_mask(spectrum, share) if key_freqs is None else mask_of(key_freqs, k, spectrum.device)
    out: dict[str, torch.Tensor | None] = {
        "spectrum": spectrum, "const_norm": const, "gini": gini(spectrum), "ipr": ipr(spectrum), "key": key,
        "basis": basis_of(op, p), "restricted_loss": None, "excluded_loss": None}
    if logits is not None:
        out["restricted_loss"], out["excluded_loss"] = fourier_losses(logits.detach(), op, p, key, train)
    return out


def _scalars(m: dict) -> list[str]:
    return [k for k in ("const_norm", "gini", "ipr", "restricted_loss", "excluded_loss") if m.get(k) is not None]


def _flat(m: dict) -> torch.Tensor:
    return torch.cat([m["spectrum"].float(), m["key"].float(),
                      torch.stack([m[k].float().reshape(()) for k in _scalars(m)])])


def to_host(m: dict) -> dict:
    """measures_from's dict as plain Python: floats, ``spectrum`` a list, ``key_freqs`` the sorted key
    frequencies (1-based), None kept. One device-to-host transfer."""
    return _unflat(m, _flat(m).tolist())


def to_host_all(ms: list[dict]) -> list[dict]:
    """``to_host`` of several members' measures with one device-to-host transfer."""
    if not ms:
        return []
    flats = [_flat(m) for m in ms]
    host = torch.cat(flats).tolist()
    out, i = [], 0
    for m, f in zip(ms, flats, strict=True):
        out.append(_unflat(m, host[i:i + f.shape[0]]))
        i += f.shape[0]
    return out


def _unflat(m: dict, flat: list[float]) -> dict:
    scalars = _scalars(m)
    k = m["spectrum"].shape[0]
    out = dict.fromkeys(("restricted_loss", "excluded_loss"))
    out.update(zip(scalars, flat[2 * k:], strict=True))
    out.update({"spectrum": flat[:k], "key_freqs": [i + 1 for i, v in enumerate(flat[k:2 * k]) if v],
                "basis": m["basis"]})
    return out


@torch.no_grad()
def all_logits(model: torch.nn.Module, cfg, chunk: int = 16384) -> torch.Tensor:
    """(rows, p) float32 answer logits of every row of the config's table (``ops.table`` order), in the
    project's token format, as the training loss reads them (``model(x)``: the last position's logits
    over the p answers), in eval mode with no grad (the model's mode is restored)."""
    d = cfg.data
    op = ops.get_op(d.op)
    a, b, _ = ops.table(op, d.p)
    device = next(model.parameters()).device
    x = torch.from_numpy(ops.encode(a, b, d.p, d.tokens)).to(device)
    was = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + chunk]).float() for i in range(0, x.shape[0], chunk)])
    finally:
        model.train(was)


def train_rows(cfg) -> torch.Tensor:
    """The table rows of the config's training split (data.split_indices over ops.table's rows)."""
    from grok_tui.train.data import split_indices

    n = len(ops.table(ops.get_op(cfg.data.op), cfg.data.p)[2])
    return split_indices(n, cfg.data.train_frac, cfg.split_seed)[0]


def measure(model: torch.nn.Module, cfg, train: torch.Tensor | None = None, key_freqs=None,
            share: float = DEFAULT_SHARE, logits: torch.Tensor | None = None) -> dict:
    """The progress measures of a model of this project, as plain numbers: gini, ipr, const_norm,
    restricted_loss, excluded_loss (None where undefined), key_freqs (sorted list), spectrum (list),
    basis. One no-grad forward over the whole table unless ``logits`` (all_logits's) are given; the
    training rows are the config's split unless ``train`` (mask or indices over the table) is given."""
    if logits is None:
        logits = all_logits(model, cfg)
    if train is None:
        train = train_rows(cfg)
    m = measures_from(model.tok_emb.weight, logits, cfg.data.op, cfg.data.p, train, key_freqs, share)
    return to_host(m)


def measure_checkpoint(path, cfg, device: torch.device | str = "cpu") -> dict:
    """``measure`` of the model saved in a checkpoint file of a run with config ``cfg``: plain numbers.
    Raises CheckpointError with one sentence when the file does not hold this config's model."""
    from grok_tui.train import checkpoint, model

    arch = model.arch_from_config(cfg)
    net = model.build(arch, seed=0, device=device)
    checkpoint.load_into(net, path, arch)
    return measure(net, cfg)


# --- live, at a training run's evaluations ---------------------------------------------------------

# The answer logits over the whole table are kept for the restricted and excluded losses only up to this
# many values (K members x rows x p; 512 MiB of float32): past it (p over about 400 for one member) the
# live measures are the spectrum's alone and the losses are absent.
MAX_LIVE_LOGITS = 2 ** 27


def due(train_cfg, step: int) -> bool:
    """Whether the evaluation at `step` measures progress: every ``measure_every``-th evaluation
    (step // eval_every a multiple of it; the same rule as sgn_every), never with 0."""
    every = getattr(train_cfg, "measure_every", 0)
    return bool(every) and (step // train_cfg.eval_every) % every == 0


def keeps_logits(k: int, rows: int, p: int) -> bool:
    return k * rows * p <= MAX_LIVE_LOGITS


def live(embeddings: list[torch.Tensor], logits: torch.Tensor | list | None, op_names: list[str], p: int,
         trains: list[torch.Tensor]) -> list[dict]:
    """The measures of K members at one evaluation, as plain numbers (``to_host``'s dicts), with one host
    sync: member k's token embedding table, its answer logits over the whole table in ``ops.table``
    order (``logits[k]``, (rows, p); None: the spectrum's measures only) and its training rows."""
    ms = [measures_from(e, None if logits is None else logits[k], op, p, t)
          for k, (e, op, t) in enumerate(zip(embeddings, op_names, trains, strict=True))]
    return to_host_all(ms)
