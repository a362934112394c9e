"""The latent process that fitting and generation both run (the package docstring's copula),
and the standard normal distribution it needs (numpy has no erf; memsim/ avoids scipy)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from memsim.traces.calibrated.statistics import RANK_GRID

THETA_CLIP = 8.0  # |theta| cap: p = 1 - 6e-16 is "always"; keeps scores finite
MAX_RHO = 0.995  # |rho| cap before the Fisher transform of per-token persistence


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x) via erfc (Numerical Recipes' erfcc, fractional error < 1.2e-7); numpy has no erf
    and memsim/ does not depend on scipy."""
    x = np.asarray(x, np.float64)
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    erfc = t * np.exp(-z * z + poly)
    return np.where(x >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)


_PPF_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
          1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_PPF_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
          6.680131188771972e+01, -1.328068155288572e+01, 1.0)
_PPF_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
          -2.549671010522914e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_PPF_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
          3.754408661907416e+00, 1.0)


def norm_ppf(p: np.ndarray) -> np.ndarray:
    """Phi^-1(p) by Acklam's rational approximation (relative error 1.2e-9), clipped to
    +-THETA_CLIP so that p = 0 and p = 1 stay finite."""
    p = np.clip(np.asarray(p, np.float64), 0.0, 1.0)
    tail = np.maximum(np.minimum(p, 1.0 - p), 1e-300)  # the tails are symmetric
    r = (p - 0.5) ** 2
    x_mid = (p - 0.5) * np.polyval(_PPF_A, r) / np.polyval(_PPF_B, r)
    s = np.sqrt(-2.0 * np.log(tail))
    x_tail = np.polyval(_PPF_C, s) / np.polyval(_PPF_D, s)  # the lower tail: negative
    x = np.where(np.abs(p - 0.5) <= 0.5 - 0.02425, x_mid, np.where(p < 0.5, x_tail, -x_tail))
    return np.clip(x, -THETA_CLIP, THETA_CLIP)


def rank_mean(profile: np.ndarray) -> np.ndarray:
    """Mean over columns of profiles given at RANK_GRID (trapezoid rule over rank)."""
    return ((profile[..., 1:] + profile[..., :-1]) * 0.5 * np.diff(RANK_GRID)).sum(axis=-1)


def probit_shift(profile: np.ndarray, density: np.ndarray) -> np.ndarray:
    """(L, Q) frequency profiles moved to mean `density` (L,) by one shift of all their
    thresholds: the profile's shape in probit space is kept and p stays in [0, 1]."""
    base = norm_ppf(profile)
    lo, hi = np.full(len(density), -2 * THETA_CLIP), np.full(len(density), 2 * THETA_CLIP)
    for _ in range(40):  # bisection, all layers at once: 32 / 2^40 is exact enough
        mid = 0.5 * (lo + hi)
        too_low = rank_mean(norm_cdf(base + mid[:, None])) < density
        lo, hi = np.where(too_low, mid, lo), np.where(too_low, hi, mid)
    shifted = norm_cdf(base + (0.5 * (lo + hi))[:, None])
    shifted[density >= 1.0] = 1.0
    shifted[density <= 0.0] = 0.0
    return shifted


@dataclass(frozen=True)
class Coactivation:
    """Nested co-activation groups, in the generator's (block) column order: at level k,
    columns c and c' share a group when c // sizes[k] == c' // sizes[k], and the group adds
    a common component of variance loadings[l, k] to their latent scores (layer l)."""

    sizes: tuple[int, ...]  # (K,) group sizes in columns, each dividing the next
    loadings: np.ndarray  # (L, K), >= 0, summing to < 1 per layer

    def is_empty(self) -> bool:
        return not np.any(self.loadings > 0)


def combined_normals(shape: tuple[int, int], rng: np.random.Generator,
                     coactivation: Coactivation | None, out: np.ndarray | None = None
                     ) -> np.ndarray:
    """(L, M) float32 standard normals; with co-activation, each column's draw is
    sqrt(1 - sum_k g_k) (its own) + sum_k sqrt(g_k) (its level-k group's): still N(0, 1)
    per column, correlated g within a finest group (sums of g over shared levels).

    Speed shortcut: the group draws are added by broadcasting over a reshaped view of the
    columns (one pass per level); the last group of a level may be partial."""
    out = rng.standard_normal(shape, dtype=np.float32, out=out)
    if coactivation is None or coactivation.is_empty():
        return out
    L, M = shape
    g = coactivation.loadings.astype(np.float32)
    out *= np.sqrt(np.maximum(1.0 - g.sum(axis=1), 0.0))[:, None]
    for k, size in enumerate(coactivation.sizes):
        if not np.any(g[:, k] > 0) or size >= M:
            continue
        groups = -(-M // size)
        shared = rng.standard_normal((L, groups), dtype=np.float32)
        shared *= np.sqrt(g[:, k])[:, None]
        full = (M // size) * size
        out[:, :full].reshape(L, M // size, size)[...] += shared[:, :M // size, None]
        if full < M:
            out[:, full:] += shared[:, -1:]
    return out


def latent_scores(theta: np.ndarray, rho: np.ndarray, w: np.ndarray, v: np.ndarray,
                  sequence_lengths: tuple[int, ...], rng: np.random.Generator, *,
                  coactivation: Coactivation | None = None,
                  rho_offsets: np.ndarray | None = None
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per token, (score, cut): column on when score > cut, the process of the module
    docstring. theta (L, M) or (V, L, M); rho, w (L, 1), (V, 1, 1) or (V, L, 1); v (L,).
    A leading V axis runs V variants on common random numbers (the same draws for all).
    `score` is a buffer overwritten at the next token: use it before asking for another.

    `coactivation` makes every draw (per-sequence offset, initial state, innovations) a
    `combined_normals` draw: columns of a group share part of their whole process, and each
    column's own process is unchanged. `rho_offsets` (T, L): token t's persistence in layer
    l is tanh(atanh(rho) + rho_offsets[t, l]) (still an AR(1) step that keeps N(0, 1)).

    Rearranged so a token costs one draw of (L, M) and four passes over the state: with
    b = sqrt(1 - w) a and base = sqrt(w) u - theta / sqrt(1 - v),
        z > theta  <=>  b + base > -sqrt(v / (1 - v)) c.
    """
    L, M = theta.shape[-2:]
    v = np.asarray(v, np.float32).reshape(L, 1)
    shift_scale, own = np.sqrt(v / (1 - v)), np.sqrt(1 - v)
    step = (np.sqrt(1 - w) * np.sqrt(1 - rho * rho)).astype(np.float32)
    shape = np.broadcast_shapes(rho.shape, w.shape, theta.shape)
    is_step_in_place = np.broadcast_shapes(step.shape, (L, M)) == (L, M)
    state, score = np.empty(shape, np.float32), np.empty(shape, np.float32)
    noise = np.empty((L, M), np.float32)
    fisher = None if rho_offsets is None else np.arctanh(np.clip(rho, -MAX_RHO, MAX_RHO))
    t_global = 0
    for n in sequence_lengths:
        base = np.sqrt(w) * combined_normals((L, M), rng, coactivation) - theta / own
        state[...] = np.sqrt(1 - w) * combined_normals((L, M), rng, coactivation)
        for t in range(n):
            if t:
                combined_normals((L, M), rng, coactivation, out=noise)
                if fisher is None:
                    state *= rho
                    if is_step_in_place:
                        noise *= step
                        state += noise
                    else:
                        state += step * noise
                else:  # this token's own persistence, per layer
                    offset = rho_offsets[t_global + t].reshape(L, 1)
                    rho_t = np.tanh(fisher + offset).astype(np.float32)
                    state *= rho_t
                    state += (np.sqrt(1 - w) * np.sqrt(1 - rho_t * rho_t)) * noise
            np.add(state, base, out=score)
            yield score, -shift_scale * rng.standard_normal((L, 1), dtype=np.float32)
        t_global += n


def representative_thresholds(profile: np.ndarray, num_columns: int) -> np.ndarray:
    """(L, Q) profile -> (L, M) float32 thresholds of M columns at evenly spaced ranks."""
    ranks = (np.arange(num_columns) + 0.5) / num_columns
    p = np.stack([np.interp(ranks, RANK_GRID, row) for row in profile])
    return norm_ppf(1.0 - p).astype(np.float32)


def truncate_lengths(sequence_lengths: tuple[int, ...], max_tokens: int) -> tuple[int, ...]:
    """The source's sequence lengths, in order, truncated to `max_tokens` in total."""
    out, left = [], max_tokens
    for n in sequence_lengths:
        if left <= 0:
            break
        out.append(min(n, left))
        left -= out[-1]
    return tuple(out)
