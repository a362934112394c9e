"""`coactivation`: columns that fire together placed side by side (Ripple / Neuralink, Wang
et al., arXiv 2410.19274): a deterministic greedy path over the co-activation graph.

Start at the most used column; repeatedly append the unplaced column that shared the most
calibration tokens with the last placed one (ties: the more used, then the lower index).
A run breaks between adjacent slots exactly in the tokens that use one but not the other, so
maximising co-activation along the path is maximising joins; greedy nearest-neighbour is the
usual heuristic for that Hamiltonian path. Ignores co-activation across layers and groups.

`greedy_path_reference` states the rule as a plain scan, O(N^2 T/64) per layer on packed
token bitsets. Speed shortcut (`greedy_path`, the one used; the same order, tests and
benchmarks/bench_layouts.py compare them): candidates are held in order of (uses descending,
index ascending) in chunks of CHUNK columns. Two columns share at most min(their uses)
tokens, so a step stops at the first chunk whose most used column cannot beat the best found,
and the scan of a chunk is branch-free (AND + popcount, vectorised by the compiler). Within
a chunk the candidates are unordered (a placed one is swapped out); each carries its rank, and
the largest (shared << 32 | ~rank) picks the first in (uses, index) order among the best.
"""
from __future__ import annotations

import numpy as np

from memsim.core.bitops import popcount
from memsim.core.jit import kernel
from memsim.hw.layouts.base import LAYOUT_METHODS
from memsim.traces.bits import pack_words, unpack_words

CHUNK = 256  # candidates per chunk: long enough to vectorise, short enough to stop early
_RANK_BITS = np.uint64(32)  # a key is shared << 32 | (2^32 - 1 - rank): ranks below 2^32
_RANK_MASK = np.uint64(0xFFFFFFFF)


@LAYOUT_METHODS.register("coactivation")
def coactivation_order(words: np.ndarray, num_columns: int) -> np.ndarray:
    """(T, W) packed calibration masks of one layer -> (N,) slot -> column."""
    by_column, uses = _column_bits(words, num_columns)
    rank = np.argsort(-uses, kind="stable")  # uses descending, ties by lower index
    return _greedy_path(by_column[rank], uses[rank], rank.astype(np.int64))


def coactivation_order_reference(words: np.ndarray, num_columns: int) -> np.ndarray:
    """The same order by the plain scan (the rule's definition, for tests and benchmarks)."""
    by_column, uses = _column_bits(words, num_columns)
    return greedy_path_reference(by_column, uses)


def _column_bits(words: np.ndarray, num_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, W) token-major words -> ((N, ceil(T/64)) tokens per column, (N,) int64 uses)."""
    used = unpack_words(words, num_columns)  # (T, N)
    by_column = pack_words(np.ascontiguousarray(used.T))  # (N, ceil(T/64))
    return by_column, used.sum(axis=0, dtype=np.int64)


@kernel
def _count(a: np.ndarray, b: np.ndarray) -> int:
    total = 0
    for k in range(a.shape[0]):
        total += popcount(a[k] & b[k])
    return total


@kernel
def greedy_path_reference(by_column: np.ndarray, uses: np.ndarray) -> np.ndarray:
    """(N, W) tokens per column, (N,) uses -> (N,) int32 slot -> column, by the plain scan."""
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


@kernel
def _chunked(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, W) bits in rank order -> chunk bits (C, W, CHUNK), tags (C, CHUNK) = ~rank,
    live counts (C,), slot of each rank in its chunk (N,)."""
    N, W = bits.shape
    num_chunks = (N + CHUNK - 1) // CHUNK
    chunk_bits = np.zeros((num_chunks, W, CHUNK), np.uint64)
    tags = np.zeros((num_chunks, CHUNK), np.uint64)
    counts = np.zeros(num_chunks, np.int64)
    slot = np.empty(N, np.int64)
    for r in range(N):
        c, j = r // CHUNK, r % CHUNK
        chunk_bits[c, :, j] = bits[r]
        tags[c, j] = _RANK_MASK - np.uint64(r)
        slot[r] = j
        counts[c] += 1
    return chunk_bits, tags, counts, slot


@kernel
def _take(r: int, chunk_bits, tags, counts, slot, out: np.ndarray) -> None:
    """Copy rank r's bits to `out` and swap it out of its chunk (the chunk's last moves in)."""
    c, j = r // CHUNK, slot[r]
    out[:] = chunk_bits[c, :, j]
    last = counts[c] - 1
    chunk_bits[c, :, j] = chunk_bits[c, :, last]
    tags[c, j] = tags[c, last]
    slot[np.int64(_RANK_MASK - tags[c, j])] = j
    counts[c] = last


@kernel
def _best_key(current: np.ndarray, chunk_bits: np.ndarray, tags: np.ndarray, count: int,
              acc: np.ndarray) -> np.uint64:
    """Largest (shared << 32 | ~rank) over one chunk's live candidates (0 if none)."""
    acc[:count] = 0
    for k in range(current.shape[0]):
        bit, row = current[k], chunk_bits[k]
        for i in range(count):  # branch-free: the compiler vectorises AND + popcount
            acc[i] += popcount(bit & row[i])
    top = np.uint64(0)
    for i in range(count):
        top = max(top, (acc[i] << _RANK_BITS) | tags[i])
    return top


@kernel
def _greedy_path(bits: np.ndarray, uses: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """(N, W) bits, (N,) uses in rank order, rank -> column: the reference's order."""
    N, W = bits.shape
    chunk_bits, tags, counts, slot = _chunked(bits)
    order = np.empty(N, np.int32)
    current = np.empty(W, np.uint64)
    acc = np.empty(CHUNK, np.uint64)
    r = 0  # rank 0: the most used column, lowest index on ties
    for s in range(N):
        order[s] = rank[r]
        _take(r, chunk_bits, tags, counts, slot, current)
        best_key, best_shared, cap = np.uint64(0), -1, uses[r]
        for c in range(counts.shape[0]):
            # sharing is at most either column's uses: no later chunk can do better
            if best_shared >= cap or uses[c * CHUNK] <= best_shared:
                break
            key = _best_key(current, chunk_bits[c], tags[c], counts[c], acc)
            if key > best_key:
                best_key, best_shared = key, np.int64(key >> _RANK_BITS)
        r = np.int64(_RANK_MASK - (best_key & _RANK_MASK))
    return order
