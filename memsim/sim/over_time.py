"""Speed over time, from per-token records: burst and sustained tokens/s, latency percentiles.

Burst is the first BURST_TOKENS decode tokens' rate (a cool phone, nothing queued yet);
sustained is the rate over the last SUSTAINED_WINDOW_S seconds of decode time (summed token
times, so think time and prefills do not count), or over all tokens when decode took less.
Both are tokens / decode time of the tokens they cover.
"""
from __future__ import annotations

import numpy as np

BURST_TOKENS = 32
SUSTAINED_WINDOW_S = 60.0


def burst_tokens_per_s(time_s: np.ndarray, tokens: int = BURST_TOKENS) -> float:
    head = np.asarray(time_s)[:tokens]
    return float(head.shape[0] / head.sum()) if head.sum() > 0 else float("inf")


def sustained_tokens_per_s(time_s: np.ndarray, window_s: float = SUSTAINED_WINDOW_S) -> float:
    """Tokens / decode time over the last tokens whose decode time adds up to `window_s`
    (the token that crosses it included)."""
    t = np.asarray(time_s)[::-1]
    if t.sum() <= 0:
        return float("inf")
    n = int(np.searchsorted(np.cumsum(t), window_s) + 1)
    tail = t[:n]
    return float(tail.shape[0] / tail.sum())


def latency_percentiles_s(time_s: np.ndarray) -> tuple[float, float]:
    """(p50, p99) of the per-token decode latency."""
    p50, p99 = np.percentile(np.asarray(time_s), [50, 99])
    return float(p50), float(p99)


def rate_over_time(end_s: np.ndarray, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, tokens/s) of tokens finished in bins of `bin_s` seconds of the run's
    clock (for the figure of speed against time)."""
    end_s = np.asarray(end_s)
    if end_s.size == 0:
        return np.zeros(0), np.zeros(0)
    edges = np.arange(0.0, end_s.max() + bin_s, bin_s)
    counts, _ = np.histogram(end_s, bins=edges)
    return (edges[:-1] + edges[1:]) / 2, counts / bin_s
