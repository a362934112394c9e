"""The always-admit step shared by the stepwise policies (memsim/cache/base.py rules).

A policy only supplies a ranking of columns ("which to keep first"); this module turns it into
the next resident set so no policy can break the common rules: every missed column is
inserted, the current token's columns are never evicted, an oversize mask keeps `capacity`
of its columns and streams the rest, and the cache never exceeds its capacity.
"""
from __future__ import annotations

import numpy as np


def best_columns(columns: np.ndarray, keys: tuple[np.ndarray, ...], count: int) -> np.ndarray:
    """The `count` columns ranked first by `keys` (primary key first, larger is better).

    Ties on every key go to the lower column index, so the ranking is total and the result
    does not depend on the sort's stability.
    """
    if count >= columns.size:
        return columns
    # np.lexsort sorts ascending by its LAST key first: negate to rank larger keys first and
    # put the column index (ascending = lower index first) as the least significant key.
    order = np.lexsort((columns,) + tuple(-k for k in reversed(keys)))
    return columns[order[:count]]


def next_resident(mask: np.ndarray, resident: np.ndarray, capacity: int,
                  keys: tuple[np.ndarray, ...], extra: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool resident set after serving `mask`; `keys` rank columns (each an (N,) array).

    Fits (|mask| <= capacity): the mask plus the best-ranked of the old residents and the
    `extra` candidates (columns that arrived without being requested) that still fit.
    Oversize (|mask| > capacity): the `capacity` best-ranked columns of the mask only.
    """
    new = np.zeros_like(resident)
    num_requested = int(mask.sum())
    if num_requested > capacity:
        pool, room = np.flatnonzero(mask), capacity
    else:
        new |= mask
        candidates = resident if extra is None else resident | extra
        pool, room = np.flatnonzero(candidates & ~mask), capacity - num_requested
    kept = best_columns(pool, tuple(k[pool] for k in keys), room)
    new[kept] = True
    return new
