"""Fitting what single columns do not show: co-activation groups (coactivation.py) and the
token factor's per-layer spread (token_factor.py), jointly, by simulating the source's shape.

Both statistics depend on the width and the number of tokens (partner selection noise,
binomial noise in a token's novelty), so each round draws the mask at the source's shape,
over the source's (truncated) sequences, with the fitted frequency profile and dynamics and
the current guesses, measures it exactly as the source was measured, and corrects the
guesses: the group loadings by each band's shortfall, the spread delta by a secant step on
the novelty variance above the noise floor (the first round, with delta = 0, measures that
floor). Rounds share nothing random with the source; their seed is the calibration seed.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from memsim.traces.calibrated.coactivation import (
    band_means,
    initial_cumulative,
    loadings_of,
    partner_curves,
    update_cumulative,
)
from memsim.traces.calibrated.generate import dealt_thresholds, draw_block_masks
from memsim.traces.calibrated.latent import Coactivation
from memsim.traces.calibrated.statistics import COACTIVATION_SIZES
from memsim.traces.calibrated.token_factor import DELTA_TRIAL, MAX_DELTA, novelty

STRUCTURE_ROUNDS = 3  # simulations per mask: the noise floor, a trial, a correction
STRUCTURE_MAX_TOKENS = 2048  # the source's sequences, truncated, for the partner curve


class StructureFit(NamedTuple):
    coactivation: np.ndarray  # (L, K) loadings per level
    novelty_scale: np.ndarray  # (L,) delta
    noise_std: np.ndarray  # (L,) novelty spread with delta = 0 (the sampling-noise floor)


def fit_structure(curve: np.ndarray, novelty_std: np.ndarray, latent_profile: np.ndarray,
                  density: np.ndarray, is_exact_k: bool, num_columns: int, rho: np.ndarray,
                  w: np.ndarray, v: np.ndarray, lengths: tuple[int, ...],
                  seed: int) -> StructureFit:
    """Loadings and delta for one mask; `curve` must be measured on `lengths` (truncated to
    STRUCTURE_MAX_TOKENS by the caller), `novelty_std` on any number of tokens."""
    L = len(density)
    measured_bands = band_means(curve, num_columns)
    cumulative = initial_cumulative(measured_bands, num_columns)
    delta, noise = np.zeros(L), np.zeros(L)
    want = np.zeros(L)
    rng = np.random.default_rng(seed)
    theta = dealt_thresholds(latent_profile, num_columns, rng)
    keep = np.rint(density * num_columns).astype(np.int64) if is_exact_k else None
    zeta = rng.standard_normal((sum(lengths), L)).astype(np.float32)
    for round_ in range(STRUCTURE_ROUNDS):
        simulated = draw_block_masks(
            theta, rho.reshape(L, 1).astype(np.float32), w.reshape(L, 1).astype(np.float32),
            v, keep, lengths, np.random.default_rng([seed, round_]),
            Coactivation(COACTIVATION_SIZES, loadings_of(cumulative)),
            zeta * delta[None].astype(np.float32) if np.any(delta > 0) else None)
        simulated_std = novelty(simulated, lengths).std(axis=0)
        simulated_bands = band_means(partner_curves(simulated, lengths, seed), num_columns)
        cumulative = update_cumulative(cumulative, measured_bands, simulated_bands, num_columns)
        if round_ == 0:  # delta = 0: the noise floor
            noise = simulated_std
            want = np.maximum(novelty_std ** 2 - noise ** 2, 0.0)
            delta = np.where(want > 0, DELTA_TRIAL, 0.0)
        else:
            got = simulated_std ** 2 - noise ** 2
            ratio = np.where(got > 1e-12, want / np.maximum(got, 1e-12), 4.0)
            delta = np.clip(delta * np.sqrt(ratio), 0.0, MAX_DELTA)
    return StructureFit(loadings_of(cumulative), delta, noise)
