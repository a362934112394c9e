"""DRAM cache of MLP weight vectors: the policy contract shared by simulator and workloads.

One cache per (layer, mask group) "segment" (PAPER.md section 4: a cache per masked matrix,
up and gate sharing one). Rules every policy obeys, pinned by tests/test_cache.py:
  * always admit: every requested column that misses is inserted (a fill);
  * columns the current token uses are never evicted;
  * a mask larger than the capacity caches `capacity` of its columns and streams the excess
    (those are misses that are not filled);
  * the cache never holds more than `capacity` columns; it starts empty (cold).
Two views of one policy:
  * `CachePolicy` (stepwise): one segment, one token at a time; `resident()` is the small
    torch-free interface that cache-aware masking (workloads/ DIP-CA) reads before masking;
  * `run_batch` (whole trace, all segments): what the simulator calls. The base version
    loops the stepwise policy; a policy may override it with a vectorised version that must
    give identical counts (tests compare them).
What the model ignores: cache metadata size, fragmentation, the cost of the policy itself.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from memsim.core.registry import Registry
from memsim.traces.bits import as_packed, pack_words

POLICIES: Registry[type["CachePolicy"]] = Registry("cache policy")


@dataclass(frozen=True)
class CacheOutcome:
    """Per (token, group, layer) counts from replaying a trace through caches.

    hits: requested columns found in DRAM; misses are |mask| - hits and come from flash.
    fills: columns inserted into the cache (a DRAM write each): missed ones, plus over-read
      ones where the policy admits them (`cache.admit_overread`).
    resident: columns held after the token (never above capacity).
    miss_words: per group, (T, L, ceil(N/64)) uint64: the missed columns themselves, packed
      (memsim/traces/bits.py), from which the flash requests are counted exactly.
    """

    hits: np.ndarray  # (T, G, L) int64
    fills: np.ndarray  # (T, G, L) int64
    resident: np.ndarray  # (T, G, L) int64
    miss_words: tuple[np.ndarray, ...]  # per group (T, L, W) uint64

    @property
    def miss_runs(self) -> np.ndarray:
        """(T, G, L) maximal runs of consecutive missed column indices (model order)."""
        from memsim.cache._packed import count_runs as count_packed_runs
        return np.stack([count_packed_runs(w) for w in self.miss_words], axis=1)


def count_runs(mask: np.ndarray) -> np.ndarray:
    """Maximal runs of True along the last axis: (..., N) bool -> (...) int64."""
    starts = mask.copy()
    starts[..., 1:] &= ~mask[..., :-1]
    return starts.sum(axis=-1, dtype=np.int64)


class CachePolicy(ABC):
    """One segment's cache, stepped token by token. Subclasses decide what to evict.

    `future` is the segment's whole mask sequence (T, N) for offline policies (Belady) and
    ignored by online ones; `access` must then be called with those masks in order.
    """

    is_offline = False  # True: needs `future` (an oracle; cannot drive cache-aware masking)

    def __init__(self, num_columns: int, capacity_columns: int, future: np.ndarray | None = None):
        if capacity_columns < 0 or num_columns <= 0:
            raise ValueError("need num_columns > 0 and capacity_columns >= 0")
        self.num_columns = int(num_columns)
        self.capacity_columns = int(min(capacity_columns, num_columns))
        self._future = future
        self.reset()

    @classmethod
    def configured(cls, cache_config) -> type["CachePolicy"]:
        """The policy class as `cache_config` (hw.cache) sets it up; a policy with settings
        of its own (window.py: `window_tokens`) returns a subclass holding them."""
        return cls

    @abstractmethod
    def reset(self) -> None:
        """Empty the cache (a new sequence starts cold)."""

    @abstractmethod
    def resident(self) -> np.ndarray:
        """(N,) bool: columns in DRAM now. Callers must not modify it."""

    @abstractmethod
    def access(self, mask: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Serve one token's (N,) bool mask; return the (N,) bool hit mask; update state.

        `extra` (N,) bool: columns that arrived without being requested (they shared a page
        or sat in a merged gap); the policy admits them by its own ranking, below the
        token's requested columns, never evicting those.
        """

    @classmethod
    def run_batch(cls, groups: list, capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
        """Replay every segment of a trace: groups[g] is (T, L, N_g) bool masks or
        PackedMasks, capacities[g] (L,).

        Each sequence starts cold. Reference loop over the stepwise policy; overrides must
        return exactly the same counts.
        """
        groups = [as_packed(m).unpack() for m in groups]
        T, L = groups[0].shape[:2]
        lengths = sequence_lengths or (T,)
        shape = (T, len(groups), L)
        hits, fills, resident = (np.zeros(shape, np.int64) for _ in range(3))
        misses = []
        for g, (masks, caps) in enumerate(zip(groups, capacities)):
            missed = np.zeros(masks.shape, bool)
            for layer in range(L):
                start = 0
                for n in lengths:
                    seq = masks[start:start + n, layer]
                    policy = cls(seq.shape[1], int(caps[layer]), future=seq)
                    for t in range(n):
                        hit = policy.access(seq[t])
                        miss = seq[t] & ~hit
                        hits[start + t, g, layer] = hit.sum()
                        after = policy.resident()
                        fills[start + t, g, layer] = (miss & after).sum()
                        missed[start + t, layer] = miss
                        resident[start + t, g, layer] = after.sum()
                    start += n
            misses.append(pack_words(missed))
        return CacheOutcome(hits, fills, resident, tuple(misses))


def make_policy(name: str, num_columns: int, capacity_columns: int,
                future: np.ndarray | None = None) -> CachePolicy:
    """A stepwise policy by registered name (unknown names list the valid ones)."""
    return POLICIES.get(name, key_path="cache.impl")(num_columns, capacity_columns, future)
