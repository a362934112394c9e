"""Exact LRU over a whole trace, vectorised over every (layer, group) segment at once.

Why it is exact. Give column j the key (last use, -j). By induction over tokens, the LRU cache
after token t holds the top-C columns by key among the columns used so far in the sequence:
the token's own columns carry the largest keys, and the best C - |M_t| of the rest are all in
the previous top-C (each has at most C - 1 better columns). So with U(a..t) = OR of masks
a..t and a* = min{a >= sequence start : |U(a..t)| <= C}:
    cache_t = U(a*..t)  +  the r = C - |U(a*..t)| lowest columns of U(a*-1..t) \\ U(a*..t)
(those last used exactly at a* - 1; none when a* is the sequence start). An oversize mask gives
a* = t + 1, an empty window, and its C lowest columns.

Why it is fast. a* never decreases within a sequence, so U(a*..t) is a sliding-window OR,
kept per segment with the two-stack queue: `back` = OR of the masks pushed since the split
token b, `suffix[x]` = OR(M_x..M_b) for x in [a*, b], rebuilt for a segment by one reversed
accumulate when a* passes b (amortised O(1) per token). Every step runs on bit-packed rows of
all segments at once (memsim/cache/_packed.py); only the tokens are a Python loop, and the
lowest-r partial set and all the counts are done afterwards in bulk.
"""
from __future__ import annotations

import numpy as np

from memsim.bits import popcount
from memsim.cache._packed import (CHUNK_TOKENS, SegmentLayout, cache_row_index, count_outcome,
                                   pack_trace)
from memsim.cache.base import CacheOutcome

ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


class _SlidingWindow:
    """Per segment, the window OR U(a*..t) and U(a*-1..t), advanced one token at a time."""

    def __init__(self, masks: np.ndarray, layout: SegmentLayout):
        T, W = masks.shape
        S = layout.num_segments
        self.masks, self.layout = masks, layout
        self.suffix = np.zeros((T + 1, W), np.uint64)  # row x: OR(M_x..M_b); zero above b
        self.word_ids = np.arange(W)
        self.start = np.zeros(S, np.int64)  # a*: first token of the window
        self.split = np.zeros(S, np.int64)  # b: last token held by `suffix`
        self.front, self.back, self.outer, self.win = (np.zeros(W, np.uint64) for _ in range(4))
        self.count = np.zeros(S, np.int32)  # |U(a*..t)|

    def reset(self, t0: int) -> None:
        """Cold start at token t0: empty window, nothing split off."""
        self.start[:], self.split[:] = t0, t0 - 1
        for words in (self.front, self.back, self.outer, self.win):
            words[:] = 0

    def push(self, t: int) -> None:
        """Add token t, then move each window start forward until the window fits."""
        m, lay = self.masks[t], self.layout
        self.back |= m
        self.outer |= m  # U(a*-1..t) grows with the token too
        np.bitwise_or(self.front, self.back, out=self.win)
        self.count = lay.seg_popcount(self.win)
        over = self.count > lay.capacity
        while over.any():  # usually 1-2 rounds: a* moves about one token per token
            np.copyto(self.outer, self.win, where=lay.per_word(over))
            self.start += over
            spilled = over & (self.start > self.split)
            if spilled.any():
                self._rebuild_suffix(spilled, t)
            # suffix[a*] is OR(M_a*..M_b) where a* <= b, and zero where a* = b + 1.
            rows = lay.per_word(self.start) * self.win.size + self.word_ids
            np.take(self.suffix, rows, out=self.front)
            np.bitwise_or(self.front, self.back, out=self.win)
            self.count = lay.seg_popcount(self.win)
            over = self.count > lay.capacity

    def _rebuild_suffix(self, spilled: np.ndarray, t: int) -> None:
        """Move `back` into `suffix` for segments whose window start passed the split."""
        lay = self.layout
        self.split[spilled] = t
        self.back[lay.per_word(spilled)] = 0
        live = spilled & (self.start <= t)  # a window of a* = t + 1 is empty: nothing to build
        if not live.any():
            return
        lo = int(self.start[live].min())
        cols = np.flatnonzero(lay.per_word(live))
        # Speed shortcut: take + a loop over the few rows + row-wise stores run ~3x faster
        # than 2-D fancy indexing and ufunc.accumulate along axis 0 (measured, numpy 2.4).
        block = np.take(self.masks[lo:t + 1], cols, axis=1)  # (t + 1 - lo, k)
        for i in range(block.shape[0] - 2, -1, -1):
            np.bitwise_or(block[i], block[i + 1], out=block[i])
        for i, row in enumerate(block):
            self.suffix[lo + i, cols] = row


def keep_lowest_bits(words: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Each word with only its `keep` lowest set bits (all of them if it has fewer)."""
    lo = np.zeros(words.shape, np.int64)
    hi = np.full(words.shape, 64, np.int64)
    for _ in range(7):  # binary search for the shortest low mask holding `keep` bits: 65 outcomes
        mid = (lo + hi) // 2
        enough = popcount(words & _low_mask(mid)) >= keep
        hi, lo = np.where(enough, mid, hi), np.where(enough, lo, mid + 1)
    return words & _low_mask(lo)


def _low_mask(num_bits: np.ndarray) -> np.ndarray:
    """Words with bits 0..num_bits-1 set, num_bits in [0, 64] (a shift by 64 is undefined)."""
    shifted = np.left_shift(np.uint64(1), np.minimum(num_bits, 63).astype(np.uint64))
    return np.where(num_bits >= 64, ALL_ONES, shifted - np.uint64(1))


def lowest_columns(words: np.ndarray, room: np.ndarray, layout: SegmentLayout) -> np.ndarray:
    """(c, W) words -> the `room` (c, S) lowest set columns of each segment, as words."""
    per_word = popcount(words)
    upto = np.cumsum(per_word, axis=1, dtype=np.int32)  # bits in words 0..j of the row
    before = upto - per_word
    last_kept = before[:, layout.seg_start] + room  # (c, S): row bit count the segment may reach
    whole = upto <= layout.per_word(last_kept)  # words kept whole: a prefix of each segment
    out = np.where(whole, words, np.uint64(0))
    # The first word not kept whole keeps its lowest bits; if all are whole, clip to the last
    # word, which then keeps all its bits anyway.
    cut = layout.seg_start + np.add.reduceat(whole, layout.seg_start, axis=1, dtype=np.int32)
    cut = np.minimum(cut, layout.seg_start + layout.seg_words - 1)
    token = np.arange(words.shape[0])[:, None]
    out[token, cut] = keep_lowest_bits(words[token, cut], last_kept - before[token, cut])
    return out


def run_lru_batch(groups: list[np.ndarray], capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
    """LRU counts for a whole trace; identical to looping the stepwise LRUPolicy."""
    layout = SegmentLayout.of(groups, capacities)
    masks = pack_trace(groups)  # (T, W)
    T, W = masks.shape
    lengths = tuple(sequence_lengths or (T,))
    rows = np.zeros((T + len(lengths), W), np.uint64)  # cache states, cold row per sequence
    last_used_before = np.empty((T, W), np.uint64)  # U(a*-1..t) \ U(a*..t)
    window_size = np.empty((T, layout.num_segments), np.int64)
    after = cache_row_index(lengths)
    window, start = _SlidingWindow(masks, layout), 0
    for n in lengths:
        window.reset(start)
        for t in range(start, start + n):
            window.push(t)
            rows[after[t]] = window.win
            np.bitwise_xor(window.outer, window.win, out=last_used_before[t])  # win <= outer
            window_size[t] = window.count
        start += n
    for lo in range(0, T, CHUNK_TOKENS):
        hi = min(lo + CHUNK_TOKENS, T)
        room = layout.capacity - window_size[lo:hi]
        rows[after[lo:hi]] |= lowest_columns(last_used_before[lo:hi], room, layout)
    return count_outcome(masks, rows, lengths, layout)
