"""One token on the phone's timelines, compiled (numba): the compiled path.

Used when the decode stream is the only process and nothing changes with time (no thermal
model, no background app, no session): then the whole token can be reserved at once. Per
layer, phases attn -> in -> out, each phase its load steps (flash || DRAM, a barrier per step)
then its kernel; loads known ahead of a layer are reserved when the previous layer's last
kernel starts (prefetch). The event path (_stream.py) runs the same program op by op,
stoppable at any other process's event; tests/test_engine.py checks that both give the same
per-token times on every preset, method and timing option. Flash reads queue on `flash_row`
(the DRAM row on a shared channel) and count their busy time as flash time.
"""
from __future__ import annotations

import numpy as np

from memsim.core.jit import kernel
from memsim.sim.resources import COMPUTE, DRAM, FLASH, reserve, reserve_on


@kernel
def _attribute(now: float, f_start: float, f_end: float, d_start: float, d_end: float,
               split: np.ndarray) -> float:
    """Charge the wait until both transfers end to the later one (queueing = stall)."""
    if f_end >= d_end:
        ready, idx, start = f_end, 0, f_start
    else:
        ready, idx, start = d_end, 1, d_start
    if ready <= now:
        return now
    queued = start - now if start > now else 0.0
    split[3] += queued
    split[idx] += ready - now - queued
    return ready


@kernel
def _issue_ahead(timelines, flash_row, ahead_t, layer, at_s, pending) -> None:
    """Reserve the flash reads of `layer` that are known ahead, into pending (S, 2)."""
    for s in range(ahead_t.shape[1]):
        pending[s, 0], pending[s, 1] = reserve_on(timelines, flash_row, FLASH, at_s,
                                                  ahead_t[layer, s])


@kernel
def token_step(timelines: np.ndarray, flash_row: int, now: float, ahead_t: np.ndarray,
               demand_t: np.ndarray, dram_t: np.ndarray, compute_t: np.ndarray,
               step_phase: np.ndarray, head_flash: float, head_dram: float,
               head_compute: float, prefetch: bool, split: np.ndarray) -> float:
    """Run one token from `now`; returns its end time, adds its critical path to `split`
    (flash, dram, compute, stall). `*_t` are the token's (L, S) or (L, 3) cost rows."""
    L, S = ahead_t.shape
    pending = np.zeros((S, 2))
    head_pending = (0.0, 0.0)
    if prefetch:
        _issue_ahead(timelines, flash_row, ahead_t, 0, now, pending)
    for layer in range(L):
        for phase in range(3):
            for s in range(S):
                if step_phase[s] != phase:
                    continue
                if prefetch:
                    f_start, f_end = reserve_on(timelines, flash_row, FLASH, now,
                                                demand_t[layer, s])
                    if pending[s, 1] > f_end:
                        f_start, f_end = pending[s, 0], pending[s, 1]
                else:
                    f_start, f_end = reserve_on(timelines, flash_row, FLASH, now,
                                                demand_t[layer, s] + ahead_t[layer, s])
                d_start, d_end = reserve(timelines, DRAM, now, dram_t[layer, s])
                now = _attribute(now, f_start, f_end, d_start, d_end, split)
            start, end = reserve(timelines, COMPUTE, now, compute_t[layer, phase])
            if phase == 2 and prefetch:  # the next layer's known loads overlap this kernel
                if layer + 1 < L:
                    _issue_ahead(timelines, flash_row, ahead_t, layer + 1, start, pending)
                else:
                    head_pending = reserve_on(timelines, flash_row, FLASH, start, head_flash)
            split[2] += end - start
            split[3] += start - now
            now = end
    # the head: embedding row + LM head, then the vocabulary projection
    if prefetch:
        f_start, f_end = head_pending
    else:
        f_start, f_end = reserve_on(timelines, flash_row, FLASH, now, head_flash)
    d_start, d_end = reserve(timelines, DRAM, now, head_dram)
    now = _attribute(now, f_start, f_end, d_start, d_end, split)
    start, end = reserve(timelines, COMPUTE, now, head_compute)
    split[2] += end - start
    split[3] += start - now
    return end
