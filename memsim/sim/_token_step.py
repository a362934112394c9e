"""One decode token on the phone's timelines, compiled (numba): the engine's hot loop.

Speed shortcut, pinned by benchmarks/bench_simulator.py: per layer, phases attn -> in -> out,
each phase its load steps (flash || DRAM, a barrier per step) then its kernel; loads known
ahead of a layer are reserved when the previous layer's last kernel starts (prefetch). All
reservations go through `resources.reserve` on the shared timelines, in time order, so the
schedule equals a SimPy process with one event per transfer (tests/test_engine.py checks the
timing laws; tests/test_hardware.py the FIFO equivalence). See engine.py for the model.
"""
from __future__ import annotations

import numpy as np

from memsim.core.jit import kernel
from memsim.sim.resources import COMPUTE, DRAM, reserve


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
        pending[s, 0], pending[s, 1] = reserve(timelines, flash_row, at_s, ahead_t[layer, s])


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
                    f_start, f_end = reserve(timelines, flash_row, now, demand_t[layer, s])
                    if pending[s, 1] > f_end:
                        f_start, f_end = pending[s, 0], pending[s, 1]
                else:
                    f_start, f_end = reserve(timelines, flash_row, now,
                                             demand_t[layer, s] + ahead_t[layer, s])
                d_start, d_end = reserve(timelines, DRAM, now, dram_t[layer, s])
                now = _attribute(now, f_start, f_end, d_start, d_end, split)
            start, end = reserve(timelines, COMPUTE, now, compute_t[layer, phase])
            if phase == 2 and prefetch:  # the next layer's known loads overlap this kernel
                if layer + 1 < L:
                    _issue_ahead(timelines, flash_row, ahead_t, layer + 1, start, pending)
                else:
                    head_pending = reserve(timelines, flash_row, start, head_flash)
            split[2] += end - start
            split[3] += start - now
            now = end
    # the head: embedding row + LM head, then the vocabulary projection
    if prefetch:
        f_start, f_end = head_pending
    else:
        f_start, f_end = reserve(timelines, flash_row, now, head_flash)
    d_start, d_end = reserve(timelines, DRAM, now, head_dram)
    now = _attribute(now, f_start, f_end, d_start, d_end, split)
    start, end = reserve(timelines, COMPUTE, now, head_compute)
    split[2] += end - start
    split[3] += start - now
    return end
