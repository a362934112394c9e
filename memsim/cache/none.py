"""No DRAM cache: every requested column streams from flash every token.

The "dense streaming from flash" style baseline of PAPER.md section 3, applied to masks: the
capacity is ignored (treated as 0), so there are no hits, no fills and nothing resident.
"""
from __future__ import annotations

import numpy as np

from memsim.cache._packed import count_runs, resolve_lengths
from memsim.cache.base import POLICIES, CacheOutcome, CachePolicy
from memsim.traces.bits import pack_words


@POLICIES.register("none")
class NoCache(CachePolicy):
    """Caches nothing: all misses, no fills, whatever the capacity."""

    def reset(self) -> None:
        self._resident = np.zeros(self.num_columns, bool)

    def resident(self) -> np.ndarray:
        return self._resident

    def access(self, mask: np.ndarray) -> np.ndarray:
        return np.zeros(self.num_columns, bool)

    @classmethod
    def run_batch(cls, groups: list[np.ndarray], capacities: list[np.ndarray],
                  sequence_lengths: tuple[int, ...] | None = None) -> CacheOutcome:
        """Closed form: hits, fills and resident are 0; every requested run is one miss run.

        Speed shortcut: runs are counted on bit-packed words (memsim/cache/_packed.py).
        """
        T, L = groups[0].shape[:2]
        resolve_lengths(T, sequence_lengths)  # checked for the caller; no state to restart
        zeros = np.zeros((T, len(groups), L), np.int64)
        runs = np.stack([count_runs(pack_words(m)) for m in groups], axis=1)  # (T, G, L)
        return CacheOutcome(zeros, zeros.copy(), runs.astype(np.int64), zeros.copy())
