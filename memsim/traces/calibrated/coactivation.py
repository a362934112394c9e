"""Co-activation: which columns fire together, measured so that a generator can be fitted
to it, and the fit of the generator's nested groups (latent.Coactivation).

What is measured is what a placement (memsim layout build --method coactivation) exploits,
taken out of sample: split a layer's tokens into two halves (alternate sequences); in half A
rank every column's partners by their phi coefficient (the correlation of two 0/1 masks);
in half B read the phi of the r-th ranked partner. Averaged over columns, this is the
*partner curve* at the ranks PARTNER_RANKS. Selecting on A and reading on B removes the
selection bias: with no co-activation the curve is ~0 (slightly below: top-k masks keep k
columns, so any two are a little anti-correlated), whatever the number of tokens.

The generator's groups: at level k the columns form groups of COACTIVATION_SIZES[k] (each
a group of four of the level below), and a group adds a shared component of variance g_k
to its columns' latent scores. Two columns whose finest common group is at level k are
correlated G_k = g_k + g_{k+1} + ... in the latent space, so the curve's ranks inside a
level's group size (the "band": ranks 1-3 for level 0, 4-15 for level 1, ...) read G_k.
Fitting: G_k starts at band_k / PHI_PER_LATENT; each round simulates the source's shape and
tokens with the current loadings, measures the simulated curve the same way and moves G_k by
the band's shortfall (then keeps 0 <= G_{k+1} <= G_k <= MAX_LOADING). Simulating rather than
inverting keeps every bias (finite tokens, partner selection noise, top-k) on both sides.

What it ignores: co-activation across layers and across masks; anti-correlated columns
beyond what top-k implies; any link between a column's group and its frequency (groups mix
hot and cold columns at random); groups that overlap other than by nesting.
"""
from __future__ import annotations

import numpy as np

from memsim.core.bitops import popcount
from memsim.core.jit import kernel
from memsim.traces.bits import pack_words
from memsim.traces.calibrated.statistics import COACTIVATION_SIZES, PARTNER_RANKS

MAX_QUERIES = 256  # columns whose partners are ranked, per layer (all, in narrow layers)
PHI_PER_LATENT = 0.6  # phi of two 0/1 masks per unit of latent correlation (about 0.5-0.65)
MAX_LOADING = 0.9  # latent correlation within the finest group, at most


def token_halves(sequence_lengths: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Token indices of halves A and B: alternate sequences, or one sequence cut in two."""
    ends = np.cumsum(sequence_lengths)
    spans = [np.arange(e - n, e) for n, e in zip(sequence_lengths, ends)]
    if len(spans) == 1:
        n = len(spans[0])
        return spans[0][: n // 2], spans[0][n // 2:]
    return np.concatenate(spans[0::2]), np.concatenate(spans[1::2])


def partner_curves(mask: np.ndarray, sequence_lengths: tuple[int, ...],
                   seed: int = 0) -> np.ndarray:
    """(T, L, N) bool -> (L, R) partner curve per layer at PARTNER_RANKS (0 at ranks the
    layer has no partner for, r >= N - 1)."""
    half_a, half_b = token_halves(sequence_lengths)
    T, L, N = mask.shape
    rng = np.random.default_rng(seed)
    out = np.zeros((L, len(PARTNER_RANKS)))
    for layer in range(L):
        out[layer] = _layer_curve(mask[half_a, layer], mask[half_b, layer], rng)
    return out


def _layer_curve(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Partner curve of one layer from its halves (Ta, N) and (Tb, N)."""
    N = a.shape[1]
    curve = np.zeros(len(PARTNER_RANKS))
    ok = _varies(a) & _varies(b)
    usable = np.flatnonzero(ok)
    ranks = np.array([r for r in PARTNER_RANKS if r < min(N - 1, len(usable))], np.int64)
    if len(ranks) == 0:
        return curve
    queries = usable if len(usable) <= MAX_QUERIES else np.sort(
        rng.choice(usable, MAX_QUERIES, replace=False))
    phi_a, phi_b = _phi_rows(a, queries), _phi_rows(b, queries)
    phi_a[:, ~ok] = -np.inf  # never a partner
    phi_a[np.arange(len(queries)), queries] = -np.inf  # nor itself
    # the r-th best partner of every query at once: argpartition puts each kth in place
    kth = np.argpartition(-phi_a, ranks - 1, axis=1)[:, ranks - 1]  # (Q, R)
    curve[: len(ranks)] = np.take_along_axis(phi_b, kth, axis=1).mean(axis=0)
    return curve


def _varies(mask: np.ndarray) -> np.ndarray:
    count = mask.sum(axis=0)
    return (count > 0) & (count < mask.shape[0])


def _phi_rows(mask: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(Q, N) float32 phi between the query columns and every column (0 where a column is
    always or never used: phi is undefined there)."""
    T = mask.shape[0]
    by_column = pack_words(np.ascontiguousarray(mask.T))  # (N, ceil(T/64)): tokens per column
    p = mask.mean(axis=0, dtype=np.float64)
    sd = np.sqrt(p * (1 - p))
    inv_sd = np.where(sd > 0, 1.0 / np.maximum(sd, 1e-300), 0.0)
    return _phi_kernel(by_column[queries], by_column, p, inv_sd, queries, float(T))


@kernel
def _phi_kernel(query_bits: np.ndarray, all_bits: np.ndarray, p: np.ndarray,
                inv_sd: np.ndarray, queries: np.ndarray, T: float) -> np.ndarray:
    """phi[q, j] = (n_qj / T - p_q p_j) / (sd_q sd_j), n_qj the tokens both used.

    Speed shortcut: bitwise AND + popcount over 64 tokens at a time (one instruction)."""
    Q, W = query_bits.shape
    N = all_bits.shape[0]
    out = np.empty((Q, N), np.float32)
    for q in range(Q):
        pq, sq = p[queries[q]], inv_sd[queries[q]]
        for j in range(N):
            total = 0
            for k in range(W):
                total += int(popcount(query_bits[q, k] & all_bits[j, k]))
            out[q, j] = (total / T - pq * p[j]) * sq * inv_sd[j]
    return out


def fitted_levels(num_columns: int) -> np.ndarray:
    """(K,) bool: the levels a layer of `num_columns` can show (a group of at most half the
    columns; a larger one is nearly a shift of the whole layer)."""
    return np.array([s <= num_columns // 2 for s in COACTIVATION_SIZES])


def band_means(curve: np.ndarray, num_columns: int) -> np.ndarray:
    """(L, R) partner curve -> (L, K) its mean over each level's band of ranks (0 where a
    level is not fitted or has no rank)."""
    ranks = np.array(PARTNER_RANKS)
    lower = (1,) + COACTIVATION_SIZES[:-1]
    out = np.zeros(curve.shape[:-1] + (len(COACTIVATION_SIZES),))
    for k, (lo, hi) in enumerate(zip(lower, COACTIVATION_SIZES)):
        inside = (ranks >= lo) & (ranks < hi) & (ranks < num_columns - 1)
        if inside.any() and fitted_levels(num_columns)[k]:
            out[..., k] = curve[..., inside].mean(axis=-1)
    return out


def initial_cumulative(measured_bands: np.ndarray, num_columns: int) -> np.ndarray:
    """(L, K) first guess of the cumulative loadings G from the measured bands."""
    return project_cumulative(measured_bands / PHI_PER_LATENT, num_columns)


def update_cumulative(cumulative: np.ndarray, measured_bands: np.ndarray,
                      simulated_bands: np.ndarray, num_columns: int) -> np.ndarray:
    """One fitting round: move G by each band's shortfall (in latent units)."""
    step = (measured_bands - simulated_bands) / PHI_PER_LATENT
    return project_cumulative(cumulative + step, num_columns)


def project_cumulative(cumulative: np.ndarray, num_columns: int) -> np.ndarray:
    """Clip to 0 <= G_{k+1} <= G_k <= MAX_LOADING; unfitted levels 0."""
    g = np.clip(cumulative, 0.0, MAX_LOADING) * fitted_levels(num_columns)
    return np.minimum.accumulate(g, axis=-1)


def loadings_of(cumulative: np.ndarray) -> np.ndarray:
    """(L, K) cumulative G -> per-level loadings g_k = G_k - G_{k+1}."""
    nxt = np.concatenate([cumulative[:, 1:], np.zeros((cumulative.shape[0], 1))], axis=1)
    return np.maximum(cumulative - nxt, 0.0)
