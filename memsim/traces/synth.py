"""Synthetic traces with realistic reuse between tokens, for tests and benchmarks.

Real DIP masks are top-k of |x|: some columns are hot for every token (outlier features),
and consecutive tokens share much of their mask. We model a column's score as a fixed
per-column popularity plus an AR(1) process over tokens, and keep the top-k per token:
    score[t, l, i] = popularity[l, i] + z[t, l, i],  z[t] = rho * z[t-1] + sqrt(1-rho^2) * eps
Higher `rho` = more reuse from one token to the next; larger `popularity_std` = a more
skewed frequency distribution. Not i.i.d. uniform, but not calibrated on a real model either
(a trace calibrated on real masks is the LoRA/claims issue's job).
"""
from __future__ import annotations

import numpy as np

from memsim.traces.density import dip_keep_fractions
from memsim.traces.model_shape import ModelShape
from memsim.traces.trace import Trace

SYNTH_METHODS = ("dip", "dense")


def _topk_masks(rng: np.random.Generator, T: int, L: int, N: int, keep: float, rho: float,
                popularity_std: float) -> np.ndarray:
    """(T, L, N) bool with exactly round(keep*N) columns per (token, layer)."""
    k = int(round(keep * N))
    out = np.zeros((T, L, N), dtype=bool)
    if k >= N:
        out[:] = True
        return out
    if k == 0:
        return out
    popularity = rng.standard_normal((L, N), dtype=np.float32) * popularity_std
    z = rng.standard_normal((L, N), dtype=np.float32)
    noise_scale = np.float32(np.sqrt(1.0 - rho * rho))
    rows = np.arange(L)[:, None]
    for t in range(T):
        if t:
            z *= np.float32(rho)
            z += noise_scale * rng.standard_normal((L, N), dtype=np.float32)
        top = np.argpartition(popularity + z, N - k, axis=1)[:, N - k:]  # (L, k)
        out[t, rows, top] = True
    return out


def mask_bytes_per_token(model: ModelShape) -> int:
    """Bytes of one token's boolean masks while a trace is drawn (up or gate over H, up rows
    and down over I: an upper bound for every generator), before they are packed 8 to a
    byte; what a caller checks against the machine's memory before asking for T tokens."""
    return model.num_hidden_layers * (model.hidden_size + 2 * model.intermediate_size)


def synth_trace(model: ModelShape, num_tokens: int, density: float = 0.5, *, seed: int = 0,
                method: str = "dip", rho: float = 0.8, popularity_std: float = 1.0,
                prompt_len: int = 0, num_sequences: int = 1) -> Trace:
    """A DIP-like (or dense) trace: up keeps `up_keep`, down `down_keep` of the fit for `density`."""
    if method not in SYNTH_METHODS:
        raise ValueError(f"method must be one of {SYNTH_METHODS}, got {method!r}")
    if num_tokens <= 0 or num_sequences <= 0 or num_tokens % num_sequences:
        raise ValueError("num_tokens must be a positive multiple of num_sequences")
    up_keep, down_keep = (1.0, 1.0) if method == "dense" else dip_keep_fractions(density)
    rng = np.random.default_rng(seed)
    T, L = num_tokens, model.num_hidden_layers
    up = _topk_masks(rng, T, L, model.hidden_size, up_keep, rho, popularity_std)
    down = _topk_masks(rng, T, L, model.intermediate_size, down_keep, rho, popularity_std)
    params = {"density": density if method == "dip" else 1.0, "up_keep": up_keep,
              "down_keep": down_keep, "rho": rho, "popularity_std": popularity_std, "seed": seed}
    lengths = (num_tokens // num_sequences,) * num_sequences
    return Trace(up=up, down=down, model=model, method=method, method_params=params,
                 prompt_len=prompt_len, sequence_lengths=lengths, source="synthetic")
