"""Speed over time, from per-token records: burst and sustained tokens/s, latency percentiles.

Both are decode tokens / the decode time of those tokens (each token's `time_s`: prefills,
think time and idle gaps do not count):

  * burst: tokens BURST_WARMUP_TOKENS + 1 .. BURST_WARMUP_TOKENS + BURST_TOKENS of the run:
    the phone's speed before it heats, once the first tokens have filled the DRAM cache from
    cold (a cold cache reads the first tokens' columns from flash; counted in the burst, it
    made sustained look faster than burst). A run shorter than the two uses its last
    BURST_TOKENS tokens (all of them when shorter still).
  * sustained: the last tokens whose decode times add up to SUSTAINED_WINDOW_S (the token
    that crosses it included), or all tokens when the run decoded for less.

What they ignore: the warm-up is a count of tokens, not a check of the cache (a cache that
takes longer to fill than BURST_WARMUP_TOKENS leaves some cold misses in the burst;
benchmarks/sustained.py checks its rows), and the time the burst's tokens ran at (heat that
builds within the warm-up and the burst is in the burst).
"""
from __future__ import annotations

import numpy as np

BURST_WARMUP_TOKENS = 32
BURST_TOKENS = 32
SUSTAINED_WINDOW_S = 60.0


def burst_window(num_tokens: int, warmup: int = BURST_WARMUP_TOKENS,
                 tokens: int = BURST_TOKENS) -> slice:
    """The decode tokens the burst covers (see the module docstring)."""
    first = min(warmup, max(0, num_tokens - tokens))
    return slice(first, min(num_tokens, first + tokens))


def burst_tokens_per_s(time_s: np.ndarray, warmup: int = BURST_WARMUP_TOKENS,
                       tokens: int = BURST_TOKENS) -> float:
    time_s = np.asarray(time_s)
    head = time_s[burst_window(time_s.shape[0], warmup, tokens)]
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
