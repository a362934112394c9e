"""LLM in a flash's sliding window (Alizadeh et al. 2023, section 3.1), as a cache policy.

A column (or neuron bundle) stays in DRAM while any of the last `window_tokens` tokens of the
sequence used it; each token loads only what its own mask needs and the window lacks, and
what no token of the window used leaves. Uncapped, the resident set after token t is exactly
the union of the masks of tokens t-k+1 .. t, so the DRAM it holds is a property of the trace
alone (the plan measures its peak, memsim/sim/plan.py, and refuses or caps a window that does
not fit: `cache.window_fit`). When the window holds more than the capacity, the most recently
used columns stay (LRU inside the window; ties go to the lower index, as in lru.py), and the
rules of base.py hold as for every policy (the token's own columns are never evicted).

Columns that arrive only because they share a page with a miss (`cache.admit_overread`) count
as used by the current token, below its own columns, and leave with it.
What the model ignores: LLM in a flash's memory-management cost (their preallocated matrix
and row swaps, ~58 ms per token on OPT-6.7B: not a flash or DRAM transfer).
"""
from __future__ import annotations

import numpy as np

from memsim.cache._packed import resolve_lengths
from memsim.cache.base import POLICIES, CacheOutcome
from memsim.cache.lru import LRUPolicy
from memsim.traces.bits import as_packed, pack_words, popcount

DEFAULT_WINDOW_TOKENS = 5  # LLM in a flash's main setting (k = 5, their Table 2)


@POLICIES.register("window")
class WindowPolicy(LRUPolicy):
    """Keeps what any of the last `window_tokens` tokens used (capped by the capacity): LRU's
    step (recency, admission, eviction order) over only the window's residents."""

    window_tokens: int = DEFAULT_WINDOW_TOKENS

    @classmethod
    def configured(cls, cache_config) -> type["WindowPolicy"]:
        """This policy with the window of `cache_config.window_tokens` tokens."""
        return cls.with_window(cache_config.window_tokens)

    @classmethod
    def with_window(cls, window_tokens: int) -> type["WindowPolicy"]:
        """A subclass whose window is `window_tokens` tokens (1: only the current token)."""
        if not isinstance(window_tokens, int) or window_tokens < 1:
            raise ValueError(f"window_tokens must be an integer >= 1, got {window_tokens!r}")
        return type(f"WindowPolicy{window_tokens}", (WindowPolicy,),
                    {"window_tokens": window_tokens})

    def _kept(self) -> np.ndarray:
        oldest = 2 * (self._now - self.window_tokens + 1)  # token now-k+1, arrived or used
        return self._resident & (self._last_use >= oldest)

    @classmethod
    def run_batch(cls, groups: list, capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
        """Speed shortcut: a segment whose window never exceeds its capacity is the closed
        form (resident = OR of the last k packed masks, every miss filled); a segment where
        it does is replayed by the stepwise loop. Same counts as the loop (tests compare)."""
        packed = [as_packed(m) for m in groups]
        T, L = packed[0].words.shape[:2]
        lengths = resolve_lengths(T, sequence_lengths)
        shape = (T, len(packed), L)
        hits, fills, resident = (np.zeros(shape, np.int64) for _ in range(3))
        misses = []
        for g, (bits, caps) in enumerate(zip(packed, capacities)):
            union = window_union(bits.words, lengths, cls.window_tokens)  # (T, L, W)
            before = _shifted(union, lengths)  # resident before each token
            missed = bits.words & ~before
            hits[:, g] = popcount(bits.words & before).sum(axis=2)
            fills[:, g] = popcount(missed).sum(axis=2)
            resident[:, g] = popcount(union).sum(axis=2)
            over = np.flatnonzero((resident[:, g] > np.asarray(caps)[None, :]).any(axis=0))
            if over.size:  # capped layers: the exact stepwise replay
                missed = missed.copy()
                _replay_layers(cls, bits, caps, lengths, over, g, hits, fills, resident, missed)
            misses.append(np.ascontiguousarray(missed))
        return CacheOutcome(hits, fills, resident, tuple(misses))


def window_union(words: np.ndarray, lengths: tuple[int, ...], window_tokens: int) -> np.ndarray:
    """(T, L, W) packed: the OR of each token's mask and the k-1 before it, in its sequence."""
    out = words.copy()
    start = 0
    for n in lengths:
        seq = words[start:start + n]
        for back in range(1, min(window_tokens, n)):
            out[start + back:start + n] |= seq[:n - back]
        start += n
    return out


def window_peak_columns(words: np.ndarray, lengths: tuple[int, ...],
                        window_tokens: int) -> np.ndarray:
    """(L,) the most columns an uncapped window holds at once, per layer."""
    return popcount(window_union(words, lengths, window_tokens)).sum(axis=2).max(axis=0)


def _shifted(union: np.ndarray, lengths: tuple[int, ...]) -> np.ndarray:
    """(T, L, W): the window after the previous token of the same sequence (empty first)."""
    out = np.zeros_like(union)
    start = 0
    for n in lengths:
        out[start + 1:start + n] = union[start:start + n - 1]
        start += n
    return out


def _replay_layers(cls, bits, caps, lengths, layers, g, hits, fills, resident, missed) -> None:
    """The stepwise policy over `layers` of one group, writing its counts in place."""
    masks = bits.unpack()  # (T, L, N)
    for layer in layers:
        start = 0
        seg_missed = np.zeros((masks.shape[0], masks.shape[2]), bool)
        for n in lengths:
            policy = cls(masks.shape[2], int(caps[layer]))
            for t in range(start, start + n):
                hit = policy.access(masks[t, layer])
                miss = masks[t, layer] & ~hit
                after = policy.resident()
                hits[t, g, layer], fills[t, g, layer] = hit.sum(), (miss & after).sum()
                resident[t, g, layer] = after.sum()
                seg_missed[t] = miss
            start += n
        missed[:, layer] = pack_words(seg_missed[:, None, :])[:, 0]
