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
lowest-r partial sets and the counts are computed in bulk once per chunk of tokens.
Measured (benchmarks/bench_cache.py, Phi-3-Medium, 256 tokens): ~0.25 ms per token.
"""
from __future__ import annotations

import numpy as np

from memsim.cache._packed import (
    CHUNK_TOKENS,
    count_bits,
    count_chunk,
    resolve_lengths,
    token_chunks,
)
from memsim.cache.base import CacheOutcome
from memsim.traces.bits import as_packed, popcount

SPILL_ALL_FRACTION = 0.25  # rebuild every layer's suffix rows once this share of layers spills


class _SlidingWindow:
    """Per layer of one group, the window ORs U(a*..t) and U(a*-1..t), one token at a time.

    Token indices are local to the current sequence (0 = its first token).
    """

    def __init__(self, masks: np.ndarray, capacity: np.ndarray, max_length: int):
        L, w = masks.shape[1:]
        self.all_masks, self.masks, self.capacity = masks, masks, capacity  # (T, L, w), (L,)
        # Row x holds OR(M_x..M_b), or more of M_x..M_t (see _rebuild_all_layers); t + 1 is 0.
        self.suffix = np.zeros((max_length + 1, L, w), np.uint64)
        self.layers = np.arange(L)
        self.start = np.zeros(L, np.int64)  # a*: first token of the window
        self.split = np.zeros(L, np.int64)  # b: last token held by `suffix`
        self.front, self.back, self.outer, self.win = (np.zeros((L, w), np.uint64)
                                                       for _ in range(4))
        self.count = np.zeros(L, np.int64)  # |U(a*..t)|

    def reset(self, first: int, length: int) -> None:
        """Cold start of the sequence of `length` tokens from trace token `first`."""
        self.masks = self.all_masks[first:first + length]
        self.suffix[:length + 1] = 0
        self.start[:], self.split[:] = 0, -1  # empty window, nothing split off
        for words in (self.front, self.back, self.outer, self.win):
            words[:] = 0

    def push(self, t: int, fits_nowhere: bool = False) -> None:
        """Add token t, then move each window start forward until the window fits.

        `fits_nowhere`: the token's mask alone is over capacity in every layer.
        """
        m = self.masks[t]
        if fits_nowhere:
            # Speed shortcut (DIP's up/gate masks at a 50% cache, PAPER.md section 3): every
            # window empties (a* = t + 1), so no round and no suffix rebuild is needed.
            self.start[:], self.split[:] = t + 1, t
            for words in (self.front, self.back, self.win):
                words[:] = 0
            self.outer[:] = m  # U(t..t)
            self.count = np.zeros_like(self.start)
            return
        self.back |= m
        self.outer |= m  # U(a*-1..t) grows with the token too
        np.bitwise_or(self.front, self.back, out=self.win)
        self.count = count_bits(self.win)
        over = self.count > self.capacity
        while over.any():  # a* moves about one token per token: usually 1-2 rounds
            self._advance(over, t)
            over = self.count > self.capacity

    def _advance(self, over: np.ndarray, t: int) -> None:
        """Move a* forward by one token where `over`; other layers are left as they are.

        Speed shortcut: whole-array operations with a per-layer condition cost ~10 numpy
        calls a round, ~2x faster than gathering and scattering the moving layers.
        """
        np.copyto(self.outer, self.win, where=over[:, None])
        self.start += over
        spilled = over & (self.start > self.split)
        if spilled.any():
            self._spill(np.flatnonzero(spilled), t)
        # suffix[a*] | back is the window for every layer (rows above b hold nothing outside
        # M_b+1..M_t, all in back), so re-reading it for layers that did not move is harmless.
        self.front = self.suffix[self.start, self.layers]  # (L, w)
        np.bitwise_or(self.front, self.back, out=self.win)
        self.count = count_bits(self.win)

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
        if live.size >= SPILL_ALL_FRACTION * self.layers.size:
            self._rebuild_all_layers(lo, t)
            return
        block = self.masks[lo:t + 1, live]  # (t + 1 - lo, k, w) copy
        # Speed shortcut: a loop over the (few) rows is ~10x faster than ufunc.accumulate
        # along axis 0 on a reversed view (measured, numpy 2.4).
        for i in range(block.shape[0] - 2, -1, -1):
            np.bitwise_or(block[i], block[i + 1], out=block[i])
        self.suffix[lo:t + 1, live] = block

    def _rebuild_all_layers(self, lo: int, t: int) -> None:
        """Rebuild rows lo..t of `suffix` for every layer, with contiguous operations.

        Speed shortcut: cheaper than gathering many layers' rows. Safe because the window
        only needs OR(M_x..M_b) <= suffix[x] <= OR(M_x..M_t) for x in [a*, t] (back adds
        tokens b+1..t, and OR is idempotent), so the extra rows written for layers that did
        not spill are harmless, and a layer whose whole window lies in lo..t can drop `back`.
        """
        self.suffix[t] = self.masks[t]
        for x in range(t - 1, lo - 1, -1):
            np.bitwise_or(self.masks[x], self.suffix[x + 1], out=self.suffix[x])
        moved = self.start >= lo
        self.split[moved] = t
        self.back[moved] = 0


def _lowest_bits_table() -> np.ndarray:
    """LOWEST[v, j]: byte v with only its j lowest set bits (j in 0..8)."""
    table = np.zeros((256, 9), np.uint8)
    for v in range(256):
        bits = [b for b in range(8) if v >> b & 1]
        for j in range(9):
            table[v, j] = sum(1 << b for b in bits[:j])
    return table


LOWEST = _lowest_bits_table()


def keep_lowest_bits(words: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Each word with only its `keep` lowest set bits (all of them if it has fewer)."""
    # Byte by byte, lowest first: each byte keeps what is still wanted after the lower bytes.
    octets = np.ascontiguousarray(words, dtype="<u8").view(np.uint8).reshape(words.shape + (8,))
    per_byte = popcount(octets)
    below = np.cumsum(per_byte, axis=-1, dtype=np.int64) - per_byte
    wanted = np.clip(np.asarray(keep)[..., None] - below, 0, 8)
    return LOWEST[octets, wanted].view("<u8").reshape(words.shape).astype(np.uint64)


def add_lowest_columns(states: np.ndarray, words: np.ndarray, room: np.ndarray) -> np.ndarray:
    """OR into `states` the `room` (...) lowest set columns of each row of `words` (..., w).

    Returns how many columns each row gained (room, or fewer if the row has fewer).
    """
    w = words.shape[-1]
    per_word = popcount(words)
    # One running count over the whole chunk, so one searchsorted finds every row's cut.
    wide = np.int32 if words.size * 64 < 2**31 else np.int64
    upto = np.cumsum(per_word, dtype=wide).reshape(words.shape)  # bits in words up to here
    target = upto[..., 0] - per_word[..., 0] + room  # (...) the running count to stop at
    np.bitwise_or(states, words, out=states, where=upto <= target[..., None])  # whole words
    # The first word past the target keeps its lowest bits; if none is past it, clip to the
    # last word, which was kept whole and stays so.
    first = np.searchsorted(upto.reshape(-1), target.reshape(-1), side="right")
    cut = np.minimum(first.reshape(room.shape) - np.arange(room.size).reshape(room.shape) * w,
                     w - 1)[..., None]
    before = np.take_along_axis(upto, cut, axis=-1) - np.take_along_axis(per_word, cut, axis=-1)
    part = keep_lowest_bits(np.take_along_axis(words, cut, axis=-1), target[..., None] - before)
    np.put_along_axis(states, cut, np.take_along_axis(states, cut, axis=-1) | part, axis=-1)
    return np.minimum(room, upto[..., -1] - target + room)


def lru_group(masks: np.ndarray, capacity: np.ndarray,
              lengths: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """(hits, fills, resident), each (T, L), and the missed words (T, L, w), for one group's
    packed masks."""
    T, L, w = masks.shape
    out = np.zeros((3, T, L), np.int64)
    missed = np.empty_like(masks)
    states = np.zeros((CHUNK_TOKENS + 1, L, w), np.uint64)  # row 0: state before the chunk
    last_used_before = np.empty((CHUNK_TOKENS, L, w), np.uint64)  # U(a*-1..t) \ U(a*..t)
    window = _SlidingWindow(masks, capacity, max(lengths))
    first_token, n = np.cumsum((0,) + lengths), 0
    for lo, hi, k in token_chunks(lengths):
        states[0] = states[n]  # the previous chunk's last state ...
        if lo == first_token[k]:
            window.reset(lo, lengths[k])
            states[0] = 0  # ... or cold: each sequence starts empty
        n = hi - lo
        requested = count_bits(masks[lo:hi]).astype(np.int64)  # (n, L)
        fits_nowhere = (requested > capacity).all(axis=1)
        for i in range(n):
            window.push(lo + i - first_token[k], fits_nowhere[i])
            states[i + 1] = window.win
            np.bitwise_xor(window.outer, window.win, out=last_used_before[i])  # win <= outer
            out[2, lo + i] = window.count
        out[2, lo:hi] += add_lowest_columns(states[1:n + 1], last_used_before[:n],
                                            capacity - out[2, lo:hi])
        out[0, lo:hi], out[1, lo:hi], missed[lo:hi] = count_chunk(
            masks[lo:hi], states[:n], states[1:n + 1], requested, capacity)
    return out[0], out[1], out[2], missed


def run_lru_batch(groups: list, capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
    """LRU counts for a whole trace; identical to looping the stepwise LRUPolicy."""
    packed = [as_packed(m) for m in groups]
    lengths = resolve_lengths(packed[0].words.shape[0], sequence_lengths)
    per_group = []
    for group, caps in zip(packed, capacities):
        capacity = np.minimum(np.asarray(caps, np.int64), group.num_columns)
        per_group.append(lru_group(group.words, capacity, lengths))
    hits, fills, resident = (np.stack([r[i] for r in per_group], axis=1) for i in range(3))
    return CacheOutcome(hits, fills, resident, tuple(r[3] for r in per_group))
