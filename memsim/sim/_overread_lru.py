"""LRU with over-read admission over a whole trace, compiled (numba): `cache.admit_overread`.

Why it is exact. The stepwise LRUPolicy gives a token's own columns recency 2t + 1 and the
columns that arrived with its reads (not requested, not resident) recency 2t, then keeps the
top-C columns by (recency, -index) among the resident ones and the newcomers. That is plain
LRU over a sequence with two steps per token, "the arrivals" then "the mask": after each
token the cache is the top-C by key among every column touched so far in the sequence (the
argument of memsim/cache/_lru_batch.py, whose window this kernel steps: cache/lru_step.py). What arrives
depends on the misses, so the steps are made as the replay goes: misses against the cache
left by the previous token, arrived columns from the flash geometry (the request counting's
`arrived_row`), then both steps through the sliding window. tests/test_overread.py checks
it against the stepwise replay (memsim/sim/overread.py).
"""
from __future__ import annotations

import numpy as np

from memsim.cache.lru_step import lru_step
from memsim.core.bitops import popcount
from memsim.core.jit import kernel
from memsim.sim._flash_kernels import I_UNITS, _buffers, arrived_row


@kernel
def _pop(x) -> np.int64:
    return np.int64(popcount(x))


@kernel
def lru_admit_group(masks: np.ndarray, capacity: np.ndarray, lengths: np.ndarray,
                    pos: np.ndarray, order: np.ndarray, num_columns: int, slot_bits: int,
                    unit_bits: int, gap_units: int, ints: np.ndarray, tabs: tuple,
                    hits: np.ndarray, fills: np.ndarray, resident: np.ndarray,
                    missed: np.ndarray) -> None:
    """Replay one mask group (T, L, W) layer by layer; write (T, L) counts and missed words."""
    T, L, W = masks.shape
    max_len = 0
    for n in lengths:
        max_len = max(max_len, n)
    steps = np.zeros((2 * max_len, 1, W), np.uint64)  # arrivals, mask, arrivals, mask, ...
    suffix = np.zeros((2 * max_len + 1, W), np.uint64)
    back, outer, win = _buffers(W)
    state = np.zeros(W, np.uint64)
    arrived = np.zeros(W, np.uint64)
    scratch = np.zeros(W, np.uint64)
    units, zeros, wide = _buffers((ints[I_UNITS] + 63) // 64 + 2)
    for layer in range(L):
        first = 0
        for n in lengths:
            suffix[:] = 0
            back[:], outer[:], win[:], state[:] = 0, 0, 0, 0
            start, split = 0, -1
            for i in range(n):
                t = first + i
                h = 0
                for k in range(W):  # serve from the cache the previous token left
                    m = masks[t, layer, k]
                    h += _pop(m & state[k])
                    missed[t, layer, k] = m & ~state[k]
                hits[t, layer] = h
                arrived_row(missed[t], layer, pos, order, num_columns, slot_bits, unit_bits,
                            gap_units, ints, tabs, scratch, units, zeros, wide, arrived)
                for k in range(W):
                    m = masks[t, layer, k]
                    steps[2 * i, 0, k] = arrived[k] & ~m & ~state[k]
                    steps[2 * i + 1, 0, k] = m
                for step in range(2 * i, 2 * i + 2):
                    start, split = lru_step(steps, step, capacity[layer], start, split,
                                             suffix, back, outer, win, state)
                f, r = 0, 0
                for k in range(W):
                    f += _pop((missed[t, layer, k] | steps[2 * i, 0, k]) & state[k])
                    r += _pop(state[k])
                fills[t, layer], resident[t, layer] = f, r
            first += n
