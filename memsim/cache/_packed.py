"""A whole trace as one bit-packed row per token, and the counts read off packed cache states.

Speed shortcut for the batch policies (memsim/bits.py): every (layer, group) segment of a
token is a contiguous run of uint64 words, all segments of a token side by side in one row,
so one numpy call serves every layer and group at once and 64 columns cost one operation.
Segment s = g * L + l (group-major), so per-segment counts (T, S) reshape to (T, G, L).

Cache states live in a "rows" buffer with one cold (all-zero) row before each sequence:
token t of sequence k has its state after the token at row t + k + 1 and the state it saw
before at row t + k, so the previous state of every token is a plain slice, cold restarts
included.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.bits import num_words, pack_words, popcount
from memsim.cache.base import CacheOutcome

CHUNK_TOKENS = 32  # tokens per bulk step: ~3.7 MB of words at 14,400 words/token stays in L2/L3


@dataclass(frozen=True)
class SegmentLayout:
    """Where each (group, layer) segment sits in a packed token row."""

    num_layers: int
    group_widths: tuple[int, ...]  # columns N_g per group
    capacity: np.ndarray  # (S,) int64 columns, clipped to the segment width
    seg_start: np.ndarray  # (S,) int64 first word of each segment
    seg_words: np.ndarray  # (S,) int64 words per segment
    seg_of_word: np.ndarray  # (W,) intp segment owning each word

    @classmethod
    def of(cls, groups: list[np.ndarray], capacities: list[np.ndarray]) -> "SegmentLayout":
        L = groups[0].shape[1]
        widths = tuple(int(m.shape[2]) for m in groups)
        seg_words = np.repeat([num_words(n) for n in widths], L).astype(np.int64)
        seg_start = np.concatenate([[0], np.cumsum(seg_words)[:-1]]).astype(np.int64)
        caps = np.concatenate([np.minimum(np.asarray(c, np.int64).reshape(L), n)
                               for c, n in zip(capacities, widths)])
        if (caps < 0).any():
            raise ValueError("capacities must be >= 0")
        seg_of_word = np.repeat(np.arange(seg_words.size), seg_words)
        return cls(L, widths, caps, seg_start, seg_words, seg_of_word)

    @property
    def num_segments(self) -> int:
        return int(self.seg_words.size)

    @property
    def num_words(self) -> int:
        return int(self.seg_of_word.size)

    def seg_popcount(self, words: np.ndarray) -> np.ndarray:
        """Set bits per segment: (..., W) uint64 -> (..., S) int32."""
        # int32 accumulation is ~4x faster than int64 in reduceat; a segment holds < 2**31 bits.
        return np.add.reduceat(popcount(words), self.seg_start, axis=-1, dtype=np.int32)

    def per_word(self, per_segment: np.ndarray) -> np.ndarray:
        """Broadcast (..., S) values to (..., W): each word gets its segment's value."""
        return np.repeat(per_segment, self.seg_words, axis=-1)


def pack_trace(groups: list[np.ndarray]) -> np.ndarray:
    """(T, L, N_g) bool masks per group -> (T, W) uint64 rows in the SegmentLayout order."""
    T = groups[0].shape[0]
    return np.concatenate([pack_words(m).reshape(T, -1) for m in groups], axis=1)


def cache_row_index(lengths: tuple[int, ...]) -> np.ndarray:
    """(T,) row of the rows buffer that holds the state after each token (see module doc)."""
    seq_of_token = np.repeat(np.arange(len(lengths)), lengths)
    return np.arange(seq_of_token.size) + seq_of_token + 1


def _run_starts(miss: np.ndarray, layout: SegmentLayout) -> np.ndarray:
    """Bits that start a run of missed columns: set, and the column below is not (same segment)."""
    below = np.left_shift(miss, np.uint64(1))
    # The column below bit 0 of a word is bit 63 of the previous word, except at a segment start.
    np.bitwise_or(below[..., 1:], np.right_shift(miss[..., :-1], np.uint64(63)), out=below[..., 1:])
    below[..., layout.seg_start] &= ~np.uint64(1)
    return np.bitwise_and(miss, np.invert(below, out=below), out=below)


def count_outcome(masks: np.ndarray, rows: np.ndarray, lengths: tuple[int, ...],
                  layout: SegmentLayout) -> CacheOutcome:
    """Hits, fills, miss runs and residency from packed masks (T, W) and cache rows.

    hits = |mask & before|; fills = |after & mask & ~before| (always-admit only inserts
    requested columns); miss runs = run starts of mask & ~before; resident = |after|.
    """
    T = masks.shape[0]
    counts = np.zeros((4, T, layout.num_segments), np.int64)
    start = 0
    for k, n in enumerate(lengths):
        for lo in range(start, start + n, CHUNK_TOKENS):
            hi = min(lo + CHUNK_TOKENS, start + n)
            m, before, after = masks[lo:hi], rows[lo + k:hi + k], rows[lo + k + 1:hi + k + 1]
            miss = np.bitwise_and(m, ~before)
            counts[0, lo:hi] = layout.seg_popcount(m) - layout.seg_popcount(miss)
            counts[1, lo:hi] = layout.seg_popcount(after & miss)
            counts[2, lo:hi] = layout.seg_popcount(_run_starts(miss, layout))
            counts[3, lo:hi] = layout.seg_popcount(after)
        start += n
    G, L = len(layout.group_widths), layout.num_layers
    return CacheOutcome(*(c.reshape(T, G, L) for c in counts))
