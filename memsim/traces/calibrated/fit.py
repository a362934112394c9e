"""Fitting the generator to measured statistics: `calibrate` (token weight v, dynamics
(rho, w), and the deconvolved latent profile p; the package docstring says how)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from memsim.core.errors import ConfigError
from memsim.traces.bits import pack_words
from memsim.traces.calibrated.latent import (
    latent_scores,
    norm_cdf,
    norm_ppf,
    probit_shift,
    representative_thresholds,
    truncate_lengths,
)
from memsim.traces.calibrated.measure import (
    measure_mask,
    profile_of,
    reuse_histogram_words,
)
from memsim.traces.calibrated.statistics import GroupStatistics, TraceStatistics
from memsim.traces.trace import MASK_NAMES, Trace

# rho = 1 - 1/tau for correlation times tau = 1, 1.5, 2, 3, 5, 8, 13, 21, 34, 55 tokens
RHO_GRID = (0.0, 0.333, 0.5, 0.667, 0.8, 0.875, 0.923, 0.952, 0.971, 0.982)
W_GRID = (0.0, 0.03, 0.08, 0.15, 0.25, 0.4, 0.6)  # per-sequence weight
SHRINK_GRID = tuple(np.round(np.linspace(0.3, 1.0, 15), 3))  # latent / measured probit spread
FIT_COLUMNS = 128  # representative columns per layer in the (rho, w) fit simulation
FIT_MAX_TOKENS = 512  # tokens simulated per (rho, w) fit: the source's lengths, truncated
DECONVOLVE_COLUMNS = 256  # columns per layer simulated to measure the profile's noise
DECONVOLVE_MAX_TOKENS = 4096  # the source's lengths, truncated; beyond, the noise is small
MAX_TOKEN_WEIGHT = 0.95  # v: beyond this a layer is all-or-nothing per token


def fit_token_weight(profile: np.ndarray, density_std: np.ndarray, num_columns: int,
                     is_exact_k: bool) -> np.ndarray:
    """(L,) v: the per-token shift that reproduces the spread of the per-token density.

    Given the shift c the expected density is mean_i Phi((sqrt(v) c - theta_i) / sqrt(1-v));
    its variance over c (Gauss-Hermite quadrature) plus the binomial spread of N independent
    columns is the predicted variance, increasing in v; bisection solves per layer.
    """
    if is_exact_k:
        return np.zeros(profile.shape[0])
    theta = representative_thresholds(profile, FIT_COLUMNS)[:, None, :]  # (L, 1, M)
    nodes, weights = np.polynomial.hermite_e.hermegauss(48)
    weights = weights / weights.sum()

    def predicted_std(v: np.ndarray) -> np.ndarray:
        v = v[:, None, None]
        p = norm_cdf((np.sqrt(v) * nodes[None, :, None] - theta) / np.sqrt(1 - v))
        d = p.mean(axis=2)  # (L, nodes): expected density given c
        spread = ((d - (d @ weights)[:, None]) ** 2) @ weights
        return np.sqrt(spread + (p * (1 - p)).mean(axis=2) @ weights / num_columns)

    lo, hi = np.zeros(profile.shape[0]), np.full(profile.shape[0], MAX_TOKEN_WEIGHT)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        too_small = predicted_std(mid) < density_std
        lo, hi = np.where(too_small, mid, lo), np.where(too_small, hi, mid)
    return 0.5 * (lo + hi)


class DynamicsFit(NamedTuple):
    """Per layer: fitted rho and w, the L1 reuse-histogram error, the coarse grid cell."""

    rho: np.ndarray  # (L,)
    w: np.ndarray  # (L,)
    error: np.ndarray  # (L,)
    coarse: tuple[np.ndarray, np.ndarray]  # (L,) indices into RHO_GRID and W_GRID


def fit_dynamics(profile: np.ndarray, histogram: np.ndarray, token_weight: np.ndarray,
                 sequence_lengths: tuple[int, ...], seed: int = 0,
                 coarse: tuple[np.ndarray, np.ndarray] | None = None) -> DynamicsFit:
    """Per layer, the (rho, w) whose simulated reuse histogram is nearest (L1) the measured
    one: the best point of a coarse grid (RHO_GRID x W_GRID; skipped when `coarse` gives it),
    then of a 5 x 5 grid spanning half-way to that point's grid neighbours."""
    lengths = truncate_lengths(sequence_lengths, FIT_MAX_TOKENS)
    theta = representative_thresholds(profile, FIT_COLUMNS)  # (L, M)
    L = theta.shape[0]
    if coarse is None:
        rho_v, w_v = (np.asarray(g, np.float32).reshape(-1, 1, 1)  # (V, 1, 1): all layers
                      for g in np.meshgrid(RHO_GRID, W_GRID, indexing="ij"))
        error = _reuse_errors(theta, rho_v, w_v, token_weight, lengths, histogram, seed)
        coarse = np.unravel_index(error.argmin(axis=0), (len(RHO_GRID), len(W_GRID)))
    rho_l, w_l = _local_grid(RHO_GRID, coarse[0]), _local_grid(W_GRID, coarse[1])  # (5, L)
    rho_v = np.repeat(rho_l, 5, axis=0)[:, :, None].astype(np.float32)  # (25, L, 1)
    w_v = np.tile(w_l, (5, 1))[:, :, None].astype(np.float32)
    error = _reuse_errors(theta, rho_v, w_v, token_weight, lengths, histogram, seed)
    best, layers = error.argmin(axis=0), np.arange(L)
    return DynamicsFit(rho_v[best, layers, 0].astype(np.float64),
                       w_v[best, layers, 0].astype(np.float64), error[best, layers], coarse)


def _local_grid(grid: tuple[float, ...], best: np.ndarray) -> np.ndarray:
    """(5, L): five points from half-way to the lower grid neighbour to half-way to the upper."""
    g = np.asarray(grid)
    lower = (g[np.maximum(best - 1, 0)] + g[best]) / 2
    upper = (g[np.minimum(best + 1, len(g) - 1)] + g[best]) / 2
    return np.linspace(lower, upper, 5)


def _reuse_errors(theta: np.ndarray, rho: np.ndarray, w: np.ndarray, v: np.ndarray,
                  lengths: tuple[int, ...], histogram: np.ndarray, seed: int) -> np.ndarray:
    """(V, L) L1 distance between the measured reuse histogram (L, B+1) and the simulated
    one of each of V parameter pairs (rho, w: (V, 1 or L, 1)).

    Speed shortcut: all V pairs run at once, as the leading axis of one latent array on
    FIT_COLUMNS representative columns, with common random numbers (the pairs differ by
    their parameters, not by their luck), packed to bits token by token."""
    rng = np.random.default_rng(seed)
    words = np.stack([pack_words(score > cut)
                      for score, cut in latent_scores(theta, rho, w, v, lengths, rng)])
    T, V, L, W = words.shape
    simulated = reuse_histogram_words(words.reshape(T, V * L, W), lengths)
    return np.abs(simulated.reshape(V, L, -1) - histogram[None]).sum(axis=2)


def deconvolve_profile(measured: np.ndarray, density: np.ndarray, rho: np.ndarray,
                       w: np.ndarray, v: np.ndarray, sequence_lengths: tuple[int, ...],
                       seed: int = 0) -> np.ndarray:
    """(L, Q) stationary probabilities whose profile, measured over the source's tokens, is
    the source's.

    A column's frequency over T tokens is its probability plus sampling noise (the more
    persistent the column, the more noise), which spreads the sorted profile: generating
    from the measured profile would add that spread twice. Shrinkage: candidates are the
    measured profile with its probit deviations from the layer's median scaled by s in
    SHRINK_GRID, shifted back to the layer's density; per layer the s whose simulated
    profile is nearest (mean absolute difference) the measured one wins. One number per
    layer keeps the profile's shape and cannot overfit its noisy extremes.
    """
    lengths = truncate_lengths(sequence_lengths, DECONVOLVE_MAX_TOKENS)
    probit = norm_ppf(measured)  # (L, Q)
    centre = np.median(probit, axis=1, keepdims=True)
    candidates = np.stack([probit_shift(norm_cdf(centre + s * (probit - centre)), density)
                           for s in SHRINK_GRID])  # (S, L, Q)
    theta = np.stack([representative_thresholds(c, DECONVOLVE_COLUMNS) for c in candidates])
    rho, w = (np.asarray(a, np.float32).reshape(-1, 1) for a in (rho, w))  # (L, 1)
    counts = np.zeros(theta.shape, np.int32)  # (S, L, M)
    for score, cut in latent_scores(theta, rho, w, v, lengths, np.random.default_rng(seed)):
        counts += score > cut
    S, L, M = theta.shape
    simulated = profile_of(counts.reshape(S * L, M) / sum(lengths)).reshape(S, L, -1)
    best = np.abs(simulated - measured[None]).mean(axis=2).argmin(axis=0)  # (L,)
    return candidates[best, np.arange(L)]


def calibrate(traces: Trace | list[Trace], *, seed: int = 0) -> TraceStatistics:
    """Measure the traces' statistics and fit the generator (module docstring).

    Several traces (one model shape, one method; best one configuration) are pooled as
    independent sequences. `seed` drives only the fit's simulations.
    """
    traces = [traces] if isinstance(traces, Trace) else list(traces)
    _check_sources(traces)
    trace = traces[0] if len(traces) == 1 else Trace.concatenate(traces)
    groups: dict[str, GroupStatistics] = {}
    for name in MASK_NAMES:
        mask = getattr(trace, name)
        if mask is not None:
            same_as = next((k for k in groups if np.array_equal(getattr(trace, k), mask)), "")
            groups[name] = _group_statistics(name, mask, trace.sequence_lengths, same_as, seed)
    first = traces[0]
    return TraceStatistics(
        source_model=first.model.name, source_shape=first.model.to_dict(), method=first.method,
        method_params=dict(first.method_params),
        source_kind=", ".join(sorted({t.source or "unknown" for t in traces})),
        prompt_len=first.prompt_len, sequence_lengths=trace.sequence_lengths, groups=groups)


def _check_sources(traces: list[Trace]) -> None:
    """All traces must share one model shape and method (ConfigError naming the field)."""
    if not traces or not all(isinstance(t, Trace) for t in traces):
        raise ConfigError("need one or more Trace objects", key_path="traces",
                          allowed="a Trace or a list of Traces")
    first = traces[0]
    for trace in traces[1:]:
        if trace.model.to_dict() != first.model.to_dict():
            raise ConfigError(f"traces of {first.model.name} and {trace.model.name} mixed",
                              key_path="traces.model", allowed=f"{first.model.name} only")
        if trace.method != first.method:
            raise ConfigError(f"traces of methods {first.method!r} and {trace.method!r} mixed;"
                              " calibrate each method apart", key_path="traces.method",
                              allowed=first.method)


def _group_statistics(name: str, mask: np.ndarray, lengths: tuple[int, ...], same_as: str,
                      seed: int) -> GroupStatistics:
    """Measure one mask and fit its generator (nothing to fit for dense or tied masks)."""
    measured = measure_mask(mask, lengths)
    profile = measured["frequency_profile"]
    if measured["is_dense"] or same_as:  # generated as all-true, or as a copy
        zeros = np.zeros(mask.shape[1])
        return GroupStatistics(mask_name=name, same_as=same_as, **measured,
                               latent_profile=profile, persistence=zeros, sequence_weight=zeros,
                               token_weight=zeros, reuse_fit_error=zeros)
    v = fit_token_weight(profile, measured["density_std"], mask.shape[2],
                         measured["is_exact_k"])
    # The dynamics fit reads the latent profile and the latent profile the dynamics:
    # alternate twice (the second fit keeps the first one's coarse grid cell).
    fit = fit_dynamics(profile, measured["reuse_histogram"], v, lengths, seed)
    latent = deconvolve_profile(profile, measured["density"], fit.rho, fit.w, v, lengths, seed)
    fit = fit_dynamics(latent, measured["reuse_histogram"], v, lengths, seed, fit.coarse)
    latent = deconvolve_profile(profile, measured["density"], fit.rho, fit.w, v, lengths, seed)
    return GroupStatistics(mask_name=name, same_as=same_as, **measured, latent_profile=latent,
                           persistence=fit.rho, sequence_weight=fit.w, token_weight=v,
                           reuse_fit_error=fit.error)
