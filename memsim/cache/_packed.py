"""Bit-packed mask groups and the cache counts read off packed cache states.

Speed shortcut for the batch policies (memsim/traces/bits.py): a group's masks (T, L, N) become
words (T, L, ceil(N/64)), so one numpy call serves every layer of a token and 64 columns cost
one operation; each (token, layer) row of words is one cache segment. Batch policies walk the
tokens in chunks of CHUNK_TOKENS so the states of a chunk stay in the CPU cache.
"""
from collections.abc import Iterator

import numpy as np

from memsim.traces.bits import popcount

CHUNK_TOKENS = 16  # tokens per bulk step: ~1.5 MB of words for a 40 x 17920 group (L2/L3)


def count_bits(words: np.ndarray) -> np.ndarray:
    """Set bits per segment: (..., w) uint64 -> (...) uint16 or int64 (see below)."""
    # Speed shortcut: summing the uint8 popcounts in uint16 is ~3x faster than in int64 and
    # exact while a segment has < 2**16 columns (measured, numpy 2.4). Callers store the
    # counts in int64 arrays before any arithmetic.
    small = words.shape[-1] * 64 < 2**16
    return popcount(words).sum(axis=-1, dtype=np.uint16 if small else np.int64)


def count_runs(words: np.ndarray) -> np.ndarray:
    """Maximal runs of set columns per row: (..., w) uint64 -> (...) int64.

    Each run starts with a 0->1 step and, unless it reaches the row's last bit, ends with a
    1->0 step, so runs = (steps + last bit) / 2 (one pass fewer than masking run starts).
    """
    below = np.left_shift(words, np.uint64(1))  # the column below each bit ...
    below[..., 1:] |= np.right_shift(words[..., :-1], np.uint64(63))  # ... across words
    steps = count_bits(np.bitwise_xor(below, words, out=below)).astype(np.int64)
    return (steps + (words[..., -1] >> np.uint64(63)).astype(np.int64)) // 2


def count_chunk(masks: np.ndarray, before: np.ndarray, after: np.ndarray,
                requested: np.ndarray, capacity: np.ndarray) -> tuple[np.ndarray, ...]:
    """(hits, fills) (n, L) and the missed columns (n, L, w), from packed masks and cache
    states (n, L, w).

    `requested` (n, L) is |mask|, `capacity` (L,) the cache size. hits = |mask & before|;
    misses = mask & ~before; fills = |after & mask & ~before| (always-admit only inserts
    requested columns), which is every miss where the mask fits the cache. Residency is
    |after| (`count_bits`), left to the caller, who often knows it already.
    """
    hit = masks & before
    hits = count_bits(hit).astype(np.int64)
    miss = np.bitwise_xor(masks, hit, out=hit)
    oversize = requested > capacity  # only there are misses streamed without a fill
    if oversize.all():
        fills = count_bits(after & miss).astype(np.int64)
    else:
        fills = requested - hits
        if oversize.any():
            fills[oversize] = count_bits(after[oversize] & miss[oversize])
    return hits, fills, miss


def resolve_lengths(num_tokens: int, sequence_lengths: tuple[int, ...] | None) -> tuple[int, ...]:
    """The sequence lengths of a trace (None or () = one sequence), checked to cover it."""
    lengths = tuple(int(n) for n in sequence_lengths or (num_tokens,))
    if sum(lengths) != num_tokens or min(lengths) <= 0:
        raise ValueError(f"sequence_lengths {lengths} must be positive and sum to the "
                         f"{num_tokens} tokens")
    return lengths


def token_chunks(lengths: tuple[int, ...]) -> Iterator[tuple[int, int, int]]:
    """(lo, hi, k): token ranges of at most CHUNK_TOKENS inside sequence k, in order."""
    start = 0
    for k, n in enumerate(lengths):
        for lo in range(start, start + n, CHUNK_TOKENS):
            yield lo, min(lo + CHUNK_TOKENS, start + n), k
        start += n
