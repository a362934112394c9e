"""No DRAM cache: every requested column streams from flash every token.

The "dense streaming from flash" style baseline of PAPER.md section 3, applied to masks: the
capacity is ignored (treated as 0), so there are no hits, no fills and nothing resident.
"""
from __future__ import annotations

import numpy as np

from memsim.cache._packed import resolve_lengths
from memsim.cache.base import POLICIES, CacheOutcome, CachePolicy
from memsim.traces.bits import as_packed


@POLICIES.register("none")
class NoCache(CachePolicy):
    """Caches nothing: all misses, no fills, whatever the capacity."""

    def reset(self) -> None:
        self._resident = np.zeros(self.num_columns, bool)

    def resident(self) -> np.ndarray:
        return self._resident

    def access(self, mask: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        return np.zeros(self.num_columns, bool)

    @classmethod
    def run_batch(cls, groups: list, capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
        """Closed form: hits, fills and resident are 0; every requested column is a miss."""
        packed = [as_packed(m) for m in groups]
        T, L = packed[0].words.shape[:2]
        resolve_lengths(T, sequence_lengths)  # checked for the caller; no state to restart
        zeros = np.zeros((T, len(packed), L), np.int64)
        return CacheOutcome(zeros, zeros.copy(), zeros.copy(), tuple(p.words for p in packed))
