"""Exact LRU over a whole trace, vectorised over the layers of a mask group.

Why it is exact. Give column j the key (last use, -j). By induction over tokens, the LRU cache
after token t holds the top-C columns by key among the columns used so far in the sequence:
the token's own columns carry the largest keys, and the best C - |M_t| of the rest are all in
the previous top-C (each has at most C - 1 better columns). So with U(a..t) = OR of masks
a..t and a* = min{a >= sequence start : |U(a..t)| <= C}:
    cache_t = U(a*..t)  +  the r = C - |U(a*..t)| lowest columns of U(a*-1..t) \\ U(a*..t)
(those last used exactly at a* - 1; none when a* is the sequence start). An oversize mask gives
a* = t + 1, an empty window, and its C lowest columns.

Why it is fast. a* never decreases within a sequence, so U(a*..t) is a sliding-window OR,
kept per segment (layer) with the two-stack queue: `back` = OR of the masks pushed since the
split token b, `suffix[x]` = OR(M_x..M_b) for x in [a*, b], rebuilt for a segment by one
backward pass when a* passes b (amortised O(1) per token). All steps run on bit-packed words
of every layer at once (memsim/cache/_packed.py); only the tokens are a Python loop, and the
lowest-r partial sets and the counts are computed afterwards in bulk.
"""
from __future__ import annotations

import numpy as np

from memsim.bits import pack_words, popcount
from memsim.cache._packed import count_bits, count_group, token_chunks
from memsim.cache.base import CacheOutcome

ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


class _SlidingWindow:
    """Per layer of one group, the window ORs U(a*..t) and U(a*-1..t), one token at a time."""

    def __init__(self, masks: np.ndarray, capacity: np.ndarray):
        T, L, w = masks.shape
        self.masks, self.capacity = masks, capacity  # (T, L, w) uint64, (L,) int64
        self.suffix = np.zeros((T + 1, L, w), np.uint64)  # row x: OR(M_x..M_b); zero above b
        self.layers = np.arange(L)
        self.start = np.zeros(L, np.int64)  # a*: first token of the window
        self.split = np.zeros(L, np.int64)  # b: last token held by `suffix`
        self.front, self.back, self.outer, self.win = (np.zeros((L, w), np.uint64)
                                                       for _ in range(4))
        self.count = np.zeros(L, np.int64)  # |U(a*..t)|

    def reset(self, t0: int) -> None:
        """Cold start at token t0: empty window, nothing split off."""
        self.start[:], self.split[:] = t0, t0 - 1
        for words in (self.front, self.back, self.outer, self.win):
            words[:] = 0

    def push(self, t: int) -> None:
        """Add token t, then move each window start forward until the window fits."""
        m = self.masks[t]
        self.back |= m
        self.outer |= m  # U(a*-1..t) grows with the token too
        np.bitwise_or(self.front, self.back, out=self.win)
        self.count = count_bits(self.win)
        over = np.flatnonzero(self.count > self.capacity)
        while over.size:  # a* moves about one token per token: usually 1-2 rounds
            self._advance(over, t)
            over = over[self.count[over] > self.capacity[over]]

    def _advance(self, layers: np.ndarray, t: int) -> None:
        """Move a* forward by one token for `layers` (whole rows of words: block copies)."""
        self.outer[layers] = self.win[layers]
        self.start[layers] += 1
        self._spill(layers[self.start[layers] > self.split[layers]], t)
        # suffix[a*] is OR(M_a*..M_b) where a* <= b, and zero where a* = b + 1.
        front = self.suffix[self.start[layers], layers]  # (k, w)
        self.front[layers] = front
        win = np.bitwise_or(front, self.back[layers], out=front)
        self.win[layers] = win
        self.count[layers] = count_bits(win)

    def _spill(self, layers: np.ndarray, t: int) -> None:
        """Move `back` into `suffix` for layers whose window start passed the split b."""
        if not layers.size:
            return
        self.split[layers] = t
        self.back[layers] = 0
        live = layers[self.start[layers] <= t]  # a window with a* = t + 1 is empty
        if not live.size:
            return
        lo = int(self.start[live].min())
        block = self.masks[lo:t + 1, live]  # (t + 1 - lo, k, w) copy
        # Speed shortcut: a loop over the (few) rows is ~10x faster than ufunc.accumulate
        # along axis 0 on a reversed view (measured, numpy 2.4).
        for i in range(block.shape[0] - 2, -1, -1):
            np.bitwise_or(block[i], block[i + 1], out=block[i])
        self.suffix[lo:t + 1, live] = block


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


def lowest_columns(words: np.ndarray, room: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., w) words -> the `room` (...) lowest set columns of each row, and how many."""
    per_word = popcount(words)
    upto = np.cumsum(per_word, axis=-1, dtype=np.int32)  # bits in words 0..j of the row
    whole = upto <= room[..., None]  # words kept whole: a prefix of the row
    out = np.where(whole, words, np.uint64(0))
    # The first word not kept whole keeps its lowest bits; if every word is whole, clip to
    # the last word, which then keeps all its bits anyway.
    cut = np.minimum(whole.sum(axis=-1), words.shape[-1] - 1)[..., None]
    before = np.take_along_axis(upto - per_word, cut, axis=-1)
    part = keep_lowest_bits(np.take_along_axis(words, cut, axis=-1), room[..., None] - before)
    np.put_along_axis(out, cut, part, axis=-1)
    return out, np.minimum(room, upto[..., -1])


def lru_group(masks: np.ndarray, capacity: np.ndarray,
              lengths: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """(hits, fills, miss_runs, resident), each (T, L), for one group's packed masks."""
    T, L, w = masks.shape
    rows = np.zeros((T + len(lengths), L, w), np.uint64)  # cache states, cold row per sequence
    last_used_before = np.empty((T, L, w), np.uint64)  # U(a*-1..t) \ U(a*..t)
    resident = np.empty((T, L), np.int64)  # |U(a*..t)| here, plus the partial set below
    window = _SlidingWindow(masks, capacity)
    first_token = np.cumsum((0,) + lengths)
    for lo, hi, k in token_chunks(lengths):
        if lo == first_token[k]:
            window.reset(lo)  # each sequence starts cold
        for t in range(lo, hi):
            window.push(t)
            rows[t + k + 1] = window.win
            np.bitwise_xor(window.outer, window.win, out=last_used_before[t])  # win <= outer
            resident[t] = window.count
        partial, kept = lowest_columns(last_used_before[lo:hi], capacity - resident[lo:hi])
        rows[lo + k + 1:hi + k + 1] |= partial
        resident[lo:hi] += kept
    return count_group(masks, rows, lengths) + (resident,)


def run_lru_batch(groups: list[np.ndarray], capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
    """LRU counts for a whole trace; identical to looping the stepwise LRUPolicy."""
    T = groups[0].shape[0]
    lengths = tuple(sequence_lengths or (T,))
    per_group = []
    for masks, caps in zip(groups, capacities):
        capacity = np.minimum(np.asarray(caps, np.int64), masks.shape[2])
        per_group.append(lru_group(pack_words(masks), capacity, lengths))
    return CacheOutcome(*(np.stack(field, axis=1) for field in zip(*per_group)))
