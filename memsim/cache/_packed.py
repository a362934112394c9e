"""Counts read off packed masks (memsim/traces/bits.py: 64 columns per uint64 word, one row
of words per (token, layer)), and the sequence lengths every policy checks.
"""
import numpy as np

from memsim.traces.bits import popcount


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


def resolve_lengths(num_tokens: int, sequence_lengths: tuple[int, ...] | None) -> tuple[int, ...]:
    """The sequence lengths of a trace (None or () = one sequence), checked to cover it."""
    lengths = tuple(int(n) for n in sequence_lengths or (num_tokens,))
    if sum(lengths) != num_tokens or min(lengths) <= 0:
        raise ValueError(f"sequence_lengths {lengths} must be positive and sum to the "
                         f"{num_tokens} tokens")
    return lengths
