"""Least-recently-used DRAM cache (PAPER.md section 4, policy "LRU").

Recency is the index of the last token that used a column; all columns of one token share it.
The least recent column is evicted first; among equally recent ones the higher column index
goes first, so an oversize mask keeps its `capacity` lowest-index columns. Equivalently, after
each token the cache holds the top-C columns by (last use, -index) among those used so far in
the sequence, the law the vectorised `run_batch` (memsim/cache/_lru_batch.py) is built on.
"""
from __future__ import annotations

import numpy as np

from memsim.cache._admit import next_resident
from memsim.cache._lru_batch import run_lru_batch
from memsim.cache.base import POLICIES, CacheOutcome, CachePolicy


@POLICIES.register("lru")
class LRUPolicy(CachePolicy):
    """Evicts the column whose last use is oldest (ties: higher index first)."""

    def reset(self) -> None:
        self._resident = np.zeros(self.num_columns, bool)
        self._last_use = np.full(self.num_columns, -1, np.int64)  # -1: never used
        self._now = 0  # index of the next token in the sequence

    def resident(self) -> np.ndarray:
        return self._resident

    def access(self, mask: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        mask = np.asarray(mask, bool)
        hit = mask & self._resident
        # Recency 2t + 1 for the token's columns, 2t for what arrived with them: newer than
        # anything older, below what the token asked for.
        if extra is not None:
            self._last_use[extra & ~mask] = 2 * self._now
        self._last_use[mask] = 2 * self._now + 1
        self._resident = next_resident(mask, self._kept(), self.capacity_columns,
                                       (self._last_use,), extra)
        self._now += 1
        return hit

    def _kept(self) -> np.ndarray:
        """Residents that may stay after this token (recency already updated): all of them;
        a subclass narrows it (window.py: those the last k tokens used)."""
        return self._resident

    @classmethod
    def run_batch(cls, groups: list[np.ndarray], capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
        """Speed shortcut: the sliding-window LRU on packed words; same counts as the loop."""
        return run_lru_batch(groups, capacities, sequence_lengths)
