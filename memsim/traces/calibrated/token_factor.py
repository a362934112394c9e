"""The token factor: how much a token's masks change from the previous token's, shared by
a layer's masks and persisting from layer to layer.

Real masks show it plainly (SmolLM2-135M, DIP): a token's *novelty* (the share of the columns
it keeps that the previous token did not keep) varies from token to token well beyond
sampling noise, and that variation is nearly the same in a layer's up and down masks and in
neighbouring layers, decaying slowly with depth: some tokens continue their predecessor
(their hidden state barely moved), others break from it, and every layer sees it. It is not
a token being "typical" (novelty against the token 5 back barely correlates with novelty
against the previous one).

The generator: token t's persistence in layer l is rho_{t,l} = tanh(atanh(rho_l) + delta_l
zeta_{t,l}) (the AR(1) step stays variance-preserving, so every column's frequency is kept),
with zeta standard normal, the same for all masks of a layer, and over depth
    zeta_{t,l} = sqrt(q) zeta0_t + sqrt(1 - q) xi_{t,l},  xi an AR(1) over layers (r).
Fitted: delta_l per mask and layer, so that the per-token novelty's spread matches the
source's (by simulation at the source's shape: the spread includes sampling noise, which
depends on the width); q and r to the source's correlation of novelty between layers d
apart, corrected for that noise (signal correlation = raw / sqrt(reliability_l
reliability_l'), reliability = share of the variance not explained by noise).
Carried to L' layers: r per relative depth (r' = r^((L - 1) / (L' - 1))).

Ignores: a token factor distinct per mask (the masks' measured correlation is reported, not
fitted: novelty_mask_corr), any link between the factor and which columns are kept (a
continuing token keeps its predecessor's columns, whatever they are), and the factor's own
persistence from token to token.
"""
from __future__ import annotations

import numpy as np

MIN_RELIABILITY = 0.15  # layers with less signal than this do not inform q and r
DELTA_TRIAL = 0.5  # the first trial spread when fitting delta
MAX_DELTA = 3.0
Q_GRID = tuple(np.round(np.linspace(0.0, 1.0, 21), 3))
R_GRID = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)


def novelty(mask: np.ndarray, sequence_lengths: tuple[int, ...]) -> np.ndarray:
    """(T, L, N) bool -> (T', L) per token with a predecessor in its sequence: the share of
    its kept columns the previous token did not keep (0 where it keeps none)."""
    out = []
    end = 0
    for n in sequence_lengths:
        start, end = end, end + n
        if n < 2:
            continue
        now, before = mask[start + 1:end], mask[start:end - 1]
        kept = now.sum(axis=2)
        out.append((now & ~before).sum(axis=2) / np.maximum(kept, 1))
    if not out:
        return np.zeros((0, mask.shape[1]))
    return np.concatenate(out)


def layer_correlations(series: np.ndarray) -> np.ndarray:
    """(T', L) -> (L, L) correlation over tokens (0 for a constant layer)."""
    x = series - series.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd == 0] = np.inf
    return (x.T @ x) / len(x) / np.outer(sd, sd)


def by_distance(matrix: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """(L, L) -> (L - 1,) weighted mean of the entries d = 1, 2, ... layers apart."""
    L = matrix.shape[0]
    weight = np.ones((L, L)) if weight is None else weight
    out = np.zeros(max(L - 1, 0))
    for d in range(1, L):
        w = np.diagonal(weight, d)
        out[d - 1] = (np.diagonal(matrix, d) * w).sum() / w.sum() if w.sum() > 0 else np.nan
    return out


def reliability(source_std: np.ndarray, noise_std: np.ndarray) -> np.ndarray:
    """(L,) share of the source's novelty variance that is not sampling noise."""
    var = source_std ** 2
    return np.where(var > 0, np.clip(1 - noise_std ** 2 / np.maximum(var, 1e-30), 0, 1), 0.0)


def fit_depth_structure(signal_corr: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """(q, r) whose correlation q + (1 - q) r^d best matches (weighted least squares) the
    signal correlations by distance d = 1, 2, ...; (0, 0) when nothing is measured."""
    d = np.arange(1, len(signal_corr) + 1)
    ok = np.isfinite(signal_corr) & (weight > 0)
    if not ok.any():
        return 0.0, 0.0
    target = np.clip(signal_corr[ok], -1, 1)
    best, best_err = (0.0, 0.0), np.inf
    for q in Q_GRID:
        for r in R_GRID:
            err = (weight[ok] * (q + (1 - q) * r ** d[ok] - target) ** 2).sum()
            if err < best_err - 1e-15:
                best, best_err = (float(q), float(r)), err
    return best


def depth_corr_at(r: float, num_source: int, num_target: int) -> float:
    """The adjacent-layer correlation r of a source with `num_source` layers, carried to
    `num_target` layers so that the correlation over relative depth stays the same."""
    if num_target <= 1 or num_source <= 1:
        return r
    return float(r ** ((num_source - 1) / (num_target - 1)))


def token_factor(num_tokens: int, num_layers: int, shared: float, depth_corr: float,
                 rng: np.random.Generator) -> np.ndarray:
    """(T, L) float32 zeta: standard normal per entry, correlated over layers as the module
    docstring says, independent from token to token."""
    common = rng.standard_normal((num_tokens, 1))
    xi = np.empty((num_tokens, num_layers))
    xi[:, 0] = rng.standard_normal(num_tokens)
    step = np.sqrt(max(1 - depth_corr ** 2, 0.0))
    for layer in range(1, num_layers):
        xi[:, layer] = depth_corr * xi[:, layer - 1] + step * rng.standard_normal(num_tokens)
    return (np.sqrt(shared) * common + np.sqrt(1 - shared) * xi).astype(np.float32)
