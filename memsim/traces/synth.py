"""Synthetic traces with realistic reuse between tokens, for tests and benchmarks.

Real DIP masks are top-k of |x|: some columns are hot for every token (outlier features),
and consecutive tokens share much of their mask. We model a column's score as a fixed
per-column popularity plus an AR(1) process over tokens, and keep the top-k per token:
    score[t, l, i] = popularity[l, i] + z[t, l, i],  z[t] = rho * z[t-1] + sqrt(1-rho^2) * eps
Higher `rho` = more reuse from one token to the next; larger `popularity_std` = a more
skewed frequency distribution. Not i.i.d. uniform, but not calibrated on a real model either
(a trace calibrated on real masks is the LoRA/claims issue's job).

`synth_neuron_trace` draws neuron masks (a trained predictor's, LLM in a flash style) with two
stated statistics, so a paper's reported figures can be replayed without its weights: every
token keeps exactly round(a N) of a layer's N neurons (`active_fraction` a), and from each
sequence's second token on exactly round(r round(a N)) of them were active within the last k
tokens (`reuse_share` r, `window_tokens` k); the others were not. Which ones: uniformly at
random inside and outside the window, or weighted by a fixed lognormal popularity per neuron
(`popularity_std` > 0). How large the window grows (the union of k masks) is not set: it
follows, and is what a sliding-window cache holds (memsim/cache/window.py).
"""
from __future__ import annotations

import numpy as np

from memsim.traces.density import dip_keep_fractions
from memsim.traces.model_shape import ModelShape
from memsim.traces.trace import Trace

SYNTH_METHODS = ("dip", "dense")
NEURON_MASK_NAME = "neurons"


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
    up_keep, down_keep = (1.0, 1.0) if method == "dense" else dip_keep_fractions(
        density, plain=model.is_plain)
    rng = np.random.default_rng(seed)
    T, L = num_tokens, model.num_hidden_layers
    up = _topk_masks(rng, T, L, model.hidden_size, up_keep, rho, popularity_std)
    down = _topk_masks(rng, T, L, model.intermediate_size, down_keep, rho, popularity_std)
    params = {"density": density if method == "dip" else 1.0, "up_keep": up_keep,
              "down_keep": down_keep, "rho": rho, "popularity_std": popularity_std, "seed": seed}
    lengths = (num_tokens // num_sequences,) * num_sequences
    return Trace(up=up, down=down, model=model, method=method, method_params=params,
                 prompt_len=prompt_len, sequence_lengths=lengths, source="synthetic")


def synth_neuron_trace(model: ModelShape, num_tokens: int, active_fraction: float,
                       reuse_share: float, window_tokens: int = 5, *, seed: int = 0,
                       popularity_std: float = 0.0, prompt_len: int = 0,
                       num_sequences: int = 1, predictor_params: int = 0,
                       method: str = "predictor") -> Trace:
    """A `neurons` trace with the stated per-token active fraction and reuse share (module
    docstring); `predictor_params` records a predictor's resident weights."""
    _check_neuron_args(num_tokens, num_sequences, active_fraction, reuse_share, window_tokens,
                       popularity_std)
    rng = np.random.default_rng(seed)
    L, N = model.num_hidden_layers, model.intermediate_size
    n = int(round(active_fraction * N))
    reused = int(round(reuse_share * n))
    log_weight = (rng.standard_normal((L, N)) * popularity_std).astype(np.float32)
    per_seq = num_tokens // num_sequences
    masks = np.concatenate([_neuron_sequence(rng, per_seq, L, N, n, reused, window_tokens,
                                             log_weight) for _ in range(num_sequences)])
    params = {"active_fraction": active_fraction, "reuse_share": reuse_share,
              "window_tokens": window_tokens, "popularity_std": popularity_std, "seed": seed,
              "neurons_per_token": n, "reused_per_token": reused}
    return Trace(neurons=masks, model=model, method=method, method_params=params,
                 prompt_len=prompt_len, sequence_lengths=(per_seq,) * num_sequences,
                 source="synthetic (stated statistics)", predictor_params=predictor_params)


def _neuron_sequence(rng: np.random.Generator, T: int, L: int, N: int, n: int, reused: int,
                     window_tokens: int, log_weight: np.ndarray) -> np.ndarray:
    """(T, L, N) bool: n neurons per token, `reused` of them from the last k tokens' union."""
    out = np.zeros((T, L, N), bool)
    last_use = np.full((L, N), -(1 << 40), np.int64)
    for t in range(T):
        in_window = last_use >= t - window_tokens  # used by one of tokens t-k .. t-1
        take_in = min(reused, int(in_window.sum(axis=1).min())) if t else 0
        keys = log_weight + rng.gumbel(size=(L, N)).astype(np.float32)  # weighted draw
        chosen = _top_where(keys, in_window, take_in)
        chosen |= _top_where(keys, ~in_window & ~chosen, n - take_in)
        out[t] = chosen
        last_use[chosen] = t
    return out


def _top_where(keys: np.ndarray, allowed: np.ndarray, count: int) -> np.ndarray:
    """(L, N) bool: per row, the `count` allowed entries with the largest keys."""
    chosen = np.zeros(keys.shape, bool)
    if count <= 0:
        return chosen
    masked = np.where(allowed, keys, -np.inf)
    top = np.argpartition(masked, keys.shape[1] - count, axis=1)[:, keys.shape[1] - count:]
    np.put_along_axis(chosen, top, True, axis=1)
    return chosen & allowed


def _check_neuron_args(num_tokens, num_sequences, active_fraction, reuse_share,
                       window_tokens, popularity_std) -> None:
    if num_tokens <= 0 or num_sequences <= 0 or num_tokens % num_sequences:
        raise ValueError("num_tokens must be a positive multiple of num_sequences")
    if not 0.0 < active_fraction <= 1.0:
        raise ValueError(f"active_fraction must be in (0, 1], got {active_fraction}")
    if not 0.0 <= reuse_share <= 1.0:
        raise ValueError(f"reuse_share must be in [0, 1], got {reuse_share}")
    if not isinstance(window_tokens, int) or window_tokens < 1:
        raise ValueError(f"window_tokens must be an integer >= 1, got {window_tokens!r}")
    if not 0.0 <= popularity_std <= 10.0:
        raise ValueError(f"popularity_std must be in [0, 10], got {popularity_std}")
