"""Bit-packed mask groups and the cache counts read off packed cache states.

Speed shortcut for the batch policies (memsim/bits.py): a group's masks (T, L, N) become
words (T, L, ceil(N/64)), so one numpy call serves every layer of a token and 64 columns cost
one operation; each (token, layer) row of words is one cache segment. Batch policies walk the
tokens in chunks of CHUNK_TOKENS so the states of a chunk stay in the CPU cache.
"""
from collections.abc import Iterator

import numpy as np

from memsim.bits import popcount

CHUNK_TOKENS = 32  # tokens per bulk step: ~3.7 MB of words for a 40 x 17920 group (L2/L3)


def count_bits(words: np.ndarray) -> np.ndarray:
    """Set bits per segment: (..., w) uint64 -> (...) uint16 or int64 (see below)."""
    # Speed shortcut: summing the uint8 popcounts in uint16 is ~3x faster than in int64 and
    # exact while a segment has < 2**16 columns (measured, numpy 2.4). Callers store the
    # counts in int64 arrays before any arithmetic.
    small = words.shape[-1] * 64 < 2**16
    return popcount(words).sum(axis=-1, dtype=np.uint16 if small else np.int64)


def run_starts(miss: np.ndarray) -> np.ndarray:
    """Bits that start a run of set columns: set, and the column below is not (same row)."""
    below = np.left_shift(miss, np.uint64(1))
    # The column below bit 0 of a word is bit 63 of the previous word of the row.
    below[..., 1:] |= np.right_shift(miss[..., :-1], np.uint64(63))
    return np.bitwise_and(miss, np.invert(below, out=below), out=below)


def count_chunk(masks: np.ndarray, before: np.ndarray,
                after: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hits, fills, miss_runs), each (n, L), from packed masks and cache states (n, L, w).

    hits = |mask & before|; fills = |after & mask & ~before| (always-admit only inserts
    requested columns); miss runs = run starts of mask & ~before. Residency is |after|
    (`count_bits`), left to the caller, who often knows it already.
    """
    hit = masks & before
    miss = np.bitwise_xor(masks, hit)
    return count_bits(hit), count_bits(after & miss), count_bits(run_starts(miss))


def token_chunks(lengths: tuple[int, ...]) -> Iterator[tuple[int, int, int]]:
    """(lo, hi, k): token ranges of at most CHUNK_TOKENS inside sequence k, in order."""
    start = 0
    for k, n in enumerate(lengths):
        for lo in range(start, start + n, CHUNK_TOKENS):
            yield lo, min(lo + CHUNK_TOKENS, start + n), k
        start += n
