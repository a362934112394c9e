"""Exact LRU over a whole trace on bit-packed masks, compiled (numba).

Why it is exact. Give column j the key (last use, -j). By induction over tokens, the LRU cache
after token t holds the top-C columns by key among the columns used so far in the sequence:
the token's own columns carry the largest keys, and the best C - |M_t| of the rest are all in
the previous top-C (each has at most C - 1 better columns). So with U(a..t) = OR of masks
a..t and a* = min{a >= sequence start : |U(a..t)| <= C}:
    cache_t = U(a*..t)  +  the r = C - |U(a*..t)| lowest columns of U(a*-1..t) \\ U(a*..t)
(those last used exactly at a* - 1; none when a* is the sequence start). An oversize mask gives
a* = t + 1, an empty window, and its C lowest columns.

Why it is fast. a* never decreases within a sequence, so U(a*..t) is a sliding-window OR,
kept with the two-stack queue: `back` = OR of the masks pushed since the split token b,
`suffix[x]` = OR(M_x..M_b) for x in [a*, b], rebuilt by one backward pass when a* passes b
(amortised O(1) words per token). Each (layer, token) is a few passes over the layer's packed
words in compiled code, writing the counts and the missed words as it goes.
Measured (benchmarks/bench_cache.py, Phi-3-Medium, 256 tokens): see the benchmark's output.
"""
from __future__ import annotations

import numpy as np

from memsim.cache._packed import resolve_lengths
from memsim.cache.base import CacheOutcome
from memsim.core.bitops import popcount
from memsim.core.jit import kernel
from memsim.traces.bits import as_packed

ONE = np.uint64(1)


@kernel
def _popcnt(x: np.uint64) -> np.int64:
    return np.int64(popcount(x))


@kernel
def _keep_lowest(words: np.ndarray, room: int, out: np.ndarray) -> None:
    """out |= the `room` lowest set bits of `words`."""
    for k in range(words.shape[0]):
        if room <= 0:
            return
        x = words[k]
        n = _popcnt(x)
        if n <= room:
            out[k] |= x
            room -= n
        else:
            while room > 0:
                low = x & (~x + ONE)  # the lowest set bit
                out[k] |= low
                x ^= low
                room -= 1
            return


@kernel
def _lru_layer(masks: np.ndarray, layer: int, capacity: int, lengths: np.ndarray,
               hits: np.ndarray, fills: np.ndarray, resident: np.ndarray,
               missed: np.ndarray) -> None:
    """Replay one layer's segment of every sequence; write its counts and missed words."""
    W = masks.shape[2]
    max_len = 0
    for n in lengths:
        max_len = max(max_len, n)
    suffix = np.zeros((max_len + 1, W), np.uint64)  # row x: OR(M_x..M_b); row t + 1: empty
    back, outer = np.zeros(W, np.uint64), np.zeros(W, np.uint64)
    win, state = np.zeros(W, np.uint64), np.zeros(W, np.uint64)
    first = 0
    for n in lengths:
        suffix[:] = 0
        back[:], outer[:], win[:], state[:] = 0, 0, 0, 0
        start, split = 0, -1
        for i in range(n):
            t = first + i
            m = masks[t, layer]
            h = 0
            for k in range(W):  # serve from the cache left by the previous token
                h += _popcnt(m[k] & state[k])
                missed[t, layer, k] = m[k] & ~state[k]
                back[k] |= m[k]
                outer[k] |= m[k]
            hits[t, layer] = h
            count = _window(suffix, back, win, start, W)
            while count > capacity:  # a* moves about one token per token
                outer[:] = win
                start += 1
                if start > i:  # an oversize mask: the window empties (a* = t + 1)
                    win[:] = 0
                    back[:] = 0
                    split = i
                    count = 0
                    break
                if start > split:  # move `back` into the suffix rows
                    _spill(masks, layer, first, start, i, suffix, back)
                    split = i
                count = _window(suffix, back, win, start, W)
            state[:] = win
            for k in range(W):
                outer[k] ^= win[k]  # U(a*-1..t) \ U(a*..t): last used at a* - 1
            _keep_lowest(outer, capacity - count, state)
            for k in range(W):
                outer[k] |= win[k]  # restore U(a*-1..t)
            f, r = 0, 0
            for k in range(W):
                f += _popcnt(missed[t, layer, k] & state[k])
                r += _popcnt(state[k])
            fills[t, layer], resident[t, layer] = f, r
        first += n


@kernel
def _window(suffix: np.ndarray, back: np.ndarray, win: np.ndarray, start: int, W: int) -> int:
    """win = suffix[a*] | back; returns |win|."""
    count = 0
    row = suffix[start]
    for k in range(W):
        win[k] = row[k] | back[k]
        count += _popcnt(win[k])
    return count


@kernel
def _spill(masks: np.ndarray, layer: int, first: int, start: int, i: int,
           suffix: np.ndarray, back: np.ndarray) -> None:
    """Rebuild suffix rows start..i (local tokens) from the masks; empty `back`."""
    suffix[i] = masks[first + i, layer]
    for x in range(i - 1, start - 1, -1):
        row, nxt = suffix[x], suffix[x + 1]
        m = masks[first + x, layer]
        for k in range(row.shape[0]):
            row[k] = m[k] | nxt[k]
    back[:] = 0


@kernel
def _lru_group(masks: np.ndarray, capacity: np.ndarray, lengths: np.ndarray,
               hits: np.ndarray, fills: np.ndarray, resident: np.ndarray,
               missed: np.ndarray) -> None:
    for layer in range(masks.shape[1]):
        _lru_layer(masks, layer, capacity[layer], lengths, hits, fills, resident, missed)


def run_lru_batch(groups: list, capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
    """LRU counts for a whole trace; identical to looping the stepwise LRUPolicy."""
    packed = [as_packed(m) for m in groups]
    T, L = packed[0].words.shape[:2]
    lengths = np.array(resolve_lengths(T, sequence_lengths), np.int64)
    hits, fills, resident = (np.zeros((T, len(packed), L), np.int64) for _ in range(3))
    misses = []
    for g, (group, caps) in enumerate(zip(packed, capacities)):
        capacity = np.minimum(np.asarray(caps, np.int64), group.num_columns)
        counts = [np.zeros((T, L), np.int64) for _ in range(3)]
        missed = np.empty_like(group.words)
        _lru_group(np.ascontiguousarray(group.words), capacity, lengths, *counts, missed)
        hits[:, g], fills[:, g], resident[:, g] = counts
        misses.append(missed)
    return CacheOutcome(hits, fills, resident, tuple(misses))
