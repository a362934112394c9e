"""One access of the sliding-window LRU, compiled: for replays that make their steps as they
go (over-read admission, memsim/sim/_overread_lru.py).

The law and the window are memsim/cache/_lru_batch.py's: after each step the cache holds the
top-C columns by (last step that touched them, -index) among those touched in the sequence.
`steps` holds the sets accessed so far, one row per step; the caller keeps the window state
(`suffix`, `back`, `outer`, `win`) and the cache (`state`) between calls.
"""
from __future__ import annotations

import numpy as np

from memsim.cache._lru_batch import _keep_lowest, _spill, _window
from memsim.core.jit import kernel


@kernel
def lru_step(steps: np.ndarray, i: int, capacity: int, start: int, split: int,
             suffix: np.ndarray, back: np.ndarray, outer: np.ndarray, win: np.ndarray,
             state: np.ndarray) -> tuple:
    """Access step i (the set steps[i, 0]); state = the top-`capacity` columns by (last step,
    -index). Returns (start, split) of the window (memsim/cache/_lru_batch.py)."""
    W = state.shape[0]
    for k in range(W):
        back[k] |= steps[i, 0, k]
        outer[k] |= steps[i, 0, k]
    count = _window(suffix, back, win, start, W)
    while count > capacity:  # the window's first step moves on
        outer[:] = win
        start += 1
        if start > i:  # an oversize step: the window empties
            win[:] = 0
            back[:] = 0
            split = i
            count = 0
            break
        if start > split:
            _spill(steps, 0, 0, start, i, suffix, back)
            split = i
        count = _window(suffix, back, win, start, W)
    state[:] = win
    for k in range(W):
        outer[k] ^= win[k]  # touched last at step start - 1
    _keep_lowest(outer, capacity - count, state)
    for k in range(W):
        outer[k] |= win[k]
    return start, split
