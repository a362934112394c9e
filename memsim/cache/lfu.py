"""Least-frequently-used DRAM cache (PAPER.md section 4, policy "LFU").

"Perfect" LFU: a column's frequency is the number of tokens of the sequence that used it,
counted whether or not it was resident. The lowest frequency is evicted first; ties go to the
least recently used, then to the higher column index. An oversize mask keeps its `capacity`
columns with the highest (frequency, recency, -index).
What the model ignores: frequency ageing (counts never decay within a sequence).
"""
from __future__ import annotations

import numpy as np

from memsim.cache._admit import next_resident
from memsim.cache._rowwise import key_dtype, run_rowwise
from memsim.cache.base import POLICIES, CacheOutcome, CachePolicy


@POLICIES.register("lfu")
class LFUPolicy(CachePolicy):
    """Evicts the least frequently used column (ties: least recent, then higher index)."""

    def reset(self) -> None:
        self._resident = np.zeros(self.num_columns, bool)
        self._uses = np.zeros(self.num_columns, np.int64)  # tokens that used the column
        self._last_use = np.full(self.num_columns, -1, np.int64)  # -1: never used
        self._now = 0

    def resident(self) -> np.ndarray:
        return self._resident

    def access(self, mask: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        mask = np.asarray(mask, bool)
        hit = mask & self._resident
        self._uses[mask] += 1
        self._last_use[mask] = self._now
        self._resident = next_resident(mask, self._resident, self.capacity_columns,
                                       (self._uses, self._last_use), extra)
        self._now += 1
        return hit

    @classmethod
    def run_batch(cls, groups: list[np.ndarray], capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
        """All layers of a group per token at once; same counts as the stepwise loop."""
        return run_rowwise(groups, capacities, sequence_lengths, _FrequencyRanker)


class _FrequencyRanker:
    """Priority (uses, last use, -index) packed into one integer per column."""

    def __init__(self, masks: np.ndarray):
        n, R, N = masks.shape
        self.top = (n + 1) * (n + 1) * N  # uses and last use + 1 are both in [0, n]
        self.dtype = key_dtype(self.top)
        self._uses = np.zeros((R, N), self.dtype)
        self._since = np.zeros((R, N), self.dtype)  # last use + 1; 0 = never
        self._low_index_first = np.arange(N - 1, -1, -1, dtype=self.dtype)
        self._n, self._N = n, N

    def priority(self, t: int, mask: np.ndarray) -> np.ndarray:
        used = mask.view(np.uint8)  # arithmetic with 0/1 beats boolean indexing ~10x
        self._uses += used
        np.maximum(self._since, used * self.dtype(t + 1), out=self._since)  # t + 1 > any since
        key = self._uses * (self._n + 1)
        key += self._since
        key *= self._N
        key += self._low_index_first
        return key
