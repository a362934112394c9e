"""`coactivation`: columns that fire together placed side by side (Ripple / Neuralink, Wang
et al., arXiv 2410.19274): a deterministic greedy path over the co-activation graph.

Start at the most used column; repeatedly append the unplaced column that shared the most
calibration tokens with the last placed one (ties: the more used, then the lower index).
A run breaks between adjacent slots exactly in the tokens that use one but not the other, so
maximising co-activation along the path is maximising joins; greedy nearest-neighbour is the
usual heuristic for that Hamiltonian path. Cost: O(N^2 T / 64) per layer, on packed token
bitsets (compiled). Ignores co-activation across layers and groups.
"""
from __future__ import annotations

import numba
import numpy as np

from memsim.hw.layouts.base import LAYOUT_METHODS
from memsim.traces.bits import pack_words, unpack_words


@LAYOUT_METHODS.register("coactivation")
def coactivation_order(words: np.ndarray, num_columns: int) -> np.ndarray:
    """(T, W) packed calibration masks of one layer -> (N,) slot -> column."""
    used = unpack_words(words, num_columns)  # (T, N)
    by_column = pack_words(np.ascontiguousarray(used.T))  # (N, ceil(T/64)): tokens per column
    uses = used.sum(axis=0, dtype=np.int64)
    return _greedy_path(by_column, uses)


M1, M2, M4, H01 = (np.uint64(0x5555555555555555), np.uint64(0x3333333333333333),
                   np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(0x0101010101010101))


@numba.njit(cache=True, nogil=True)
def _popcount(x: np.uint64) -> int:
    """Set bits of a word (SWAR; LLVM turns it into one popcnt instruction)."""
    x = x - ((x >> np.uint64(1)) & M1)
    x = (x & M2) + ((x >> np.uint64(2)) & M2)
    x = (x + (x >> np.uint64(4))) & M4
    return int((x * H01) >> np.uint64(56))


@numba.njit(cache=True, nogil=True)
def _count(a: np.ndarray, b: np.ndarray) -> int:
    total = 0
    for k in range(a.shape[0]):
        total += _popcount(a[k] & b[k])
    return total


@numba.njit(cache=True, nogil=True)
def _greedy_path(by_column: np.ndarray, uses: np.ndarray) -> np.ndarray:
    N = by_column.shape[0]
    order = np.empty(N, np.int32)
    placed = np.zeros(N, np.bool_)
    current = 0
    for c in range(N):  # the most used column, lowest index on ties
        if uses[c] > uses[current]:
            current = c
    for s in range(N):
        order[s] = current
        placed[current] = True
        best, best_shared = -1, -1
        for c in range(N):
            if placed[c]:
                continue
            shared = _count(by_column[current], by_column[c])
            if shared > best_shared or (shared == best_shared and uses[c] > uses[best]):
                best, best_shared = c, shared
        current = best
    return order
