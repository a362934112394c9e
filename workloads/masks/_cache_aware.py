"""DIP-CA's token walk compiled for LRU caches: per token, the gamma reweighting, the exact
top-k and the LRU step in one numba loop (speed shortcut for `dip_ca.cache_aware_topk`,
which keeps the stepwise loop as the reference and for other policies; tests compare them).

Top-k: the k-th largest value by bisection on 64-bit keys whose unsigned order is the
values' order (a few vectorised counting passes per token, no sort); the mask keeps every
value above it and, of those equal to it, the lowest indices, as `topk_row` does. The LRU step is
memsim's eviction queue (`memsim.cache.LruQueue`), which steps as `LRUPolicy.access` does.
What it ignores: NaN scores have no order, so a call holding one takes the stepwise loop.
"""
from __future__ import annotations

import numpy as np

from memsim.cache import LruQueue, lru_queue_access
from memsim.core.jit import kernel

_SIGN = np.uint64(1 << 63)
_LAST = np.uint64(0xFFFFFFFFFFFFFFFF)
_SMALL = 48  # keys few enough to insertion-sort


def lru_cache_aware_topk(scores: np.ndarray, low: np.ndarray, k: int,
                         policy) -> tuple[np.ndarray, np.ndarray]:
    """`cache_aware_topk` for an LRUPolicy (LruQueue.supports), scores without NaN, k >= 1."""
    queue = LruQueue.of(policy)
    masks = np.zeros(scores.shape, bool)
    hits = np.zeros(scores.shape[0], np.int64)
    _walk(np.ascontiguousarray(scores), np.ascontiguousarray(low), k, queue, masks, hits)
    queue.close(policy, scores.shape[0])
    return masks, hits


@kernel
def _walk(scores: np.ndarray, low: np.ndarray, k: int, q: LruQueue, masks: np.ndarray,
          hits: np.ndarray) -> None:
    """Fill masks (T, N) and hits (T,) token by token, stepping q."""
    T, N = scores.shape
    values = np.empty(N, np.float64)
    keys = np.empty(N, np.uint64)
    scratch = np.empty(N, np.uint64)
    requested = np.arange(N)  # all of them where k >= N
    for t in range(T):
        for j in range(N):  # cached columns keep their score; + 0.0 turns -0.0 into 0.0
            values[j] = (scores[t, j] if q.resident[j] else low[t, j]) + 0.0
        _order_keys(values.view(np.uint64), keys)
        if k >= N:
            masks[t] = True
            hits[t] = lru_queue_access(q, requested, q.now + t)
            continue
        kth = _kth_smallest(keys, N - k, scratch)
        n = _select(keys, kth, k, masks[t], requested)
        hits[t] = lru_queue_access(q, requested[:n], q.now + t)


@kernel
def _order_keys(bits: np.ndarray, keys: np.ndarray) -> None:
    """float64 bit patterns -> keys in the same order (negatives: all bits flipped)."""
    for j in range(bits.shape[0]):
        b = bits[j]
        keys[j] = ~b if b & _SIGN else b | _SIGN


@kernel
def _kth_smallest(keys: np.ndarray, rank: int, scratch: np.ndarray) -> np.uint64:
    """The key at 0-based position `rank` of keys sorted ascending.

    Bisection of the key range, each probe a branch-free count of the keys below it (the
    compiler vectorises it), until the range holds a value alone or few enough keys to sort:
    at most 64 probes, about 20 on real scores."""
    lo, hi = keys[0], keys[0]
    for i in range(keys.shape[0]):
        lo, hi = min(lo, keys[i]), max(hi, keys[i])
    below, upto = 0, keys.shape[0]  # keys < lo, keys <= hi: rank is in [below, upto)
    while lo < hi:
        if upto - below <= _SMALL:
            return _sorted_rank(keys, lo, hi, rank - below, scratch)
        mid = lo + (hi - lo) // np.uint64(2) + np.uint64(1)  # lo < mid <= hi
        count = _count_below(keys, mid)
        if count <= rank:
            lo, below = mid, count
        else:
            hi, upto = mid - np.uint64(1), count
    return lo


@kernel
def _count_below(keys: np.ndarray, bound: np.uint64) -> int:
    count = 0
    for i in range(keys.shape[0]):
        count += keys[i] < bound
    return count


@kernel
def _sorted_rank(keys: np.ndarray, lo: np.uint64, hi: np.uint64, rank: int,
                 scratch: np.ndarray) -> np.uint64:
    """The rank-th smallest of the (few) keys in [lo, hi]."""
    m = 0
    for i in range(keys.shape[0]):
        scratch[m] = keys[i]  # overwritten unless inside
        m += (keys[i] >= lo) & (keys[i] <= hi)
    _insertion_sort(scratch, m)
    return scratch[rank]


@kernel
def _insertion_sort(a: np.ndarray, m: int) -> None:
    """Sort a[:m] ascending in place (m is small)."""
    for i in range(1, m):
        v, j = a[i], i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@kernel
def _select(keys: np.ndarray, kth: np.uint64, k: int, mask: np.ndarray,
            requested: np.ndarray) -> int:
    """Set mask where key > kth and on the lowest-index ties; list them; return how many.
    Branch-free (a taken/not-taken branch per column mispredicts half the time)."""
    above = 0
    for j in range(keys.shape[0]):
        above += keys[j] > kth
    ties = k - above
    n = 0
    for j in range(keys.shape[0]):
        tie = (keys[j] == kth) & (ties > 0)
        take = (keys[j] > kth) | tie
        ties -= tie
        mask[j] = take
        requested[n] = j  # overwritten unless taken
        n += take
    return n
