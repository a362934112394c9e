"""The token-step process: decode (and prefill) as a SimPy process over the phone's resources.

Per token and layer, phases attn -> in -> out (see costs.py); each phase is its load steps
(flash || DRAM, a barrier per step, as per masked matrix in the authors' model) and then its
kernel on the compute unit (the compiled step in _token_step.py). Loads known before a layer starts are, with
`timing.prefetch_next_layer`, issued when the previous layer's last kernel starts, so they
overlap compute and the down-projection's critical-path flash reads of the layer before.
No prefetch crosses a token boundary. Time per token is attributed along the critical path
to flash, DRAM, compute, or stall (waiting for a resource busy with other queued work), so
the four add up to the step time exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from memsim.sim._token_step import token_step  # compiled on first call
from memsim.sim.costs import StepCosts
from memsim.sim.resources import Phone


@dataclass
class TokenTimes:
    """Per-token timing records, (T,) arrays filled by the process."""

    time_s: np.ndarray
    flash_s: np.ndarray  # critical-path attribution
    dram_s: np.ndarray
    compute_s: np.ndarray
    stall_s: np.ndarray
    busy_flash_s: np.ndarray  # resource busy time for the token's work
    busy_dram_s: np.ndarray
    busy_compute_s: np.ndarray

    @classmethod
    def empty(cls, T: int) -> "TokenTimes":
        return cls(*(np.zeros(T) for _ in range(8)))


class DecodeRun:
    """Runs tokens through the phone; one SimPy process per sequence, in order, one event per
    token. Each token's layers are reservations on the resources' timelines
    (memsim/sim/_token_step.py, compiled), exact because this process is the only one
    reserving and does so in time order."""

    def __init__(self, costs: StepCosts, prefetch: bool, flash_dram_concurrent: bool):
        self.c = costs
        self.prefetch = prefetch
        self.env = simpy.Environment()
        self.phone = Phone(self.env, flash_dram_concurrent)
        self.times = TokenTimes.empty(costs.flash_ahead_s.shape[0])
        self._step_phase = np.asarray(costs.step_phase, np.int64)

    def run(self, token_slices: list[slice]) -> TokenTimes:
        self.env.process(self._sequences(token_slices))
        self.env.run()
        return self.times

    def _sequences(self, token_slices):
        for sl in token_slices:
            for t in range(sl.start, sl.stop):
                yield from self._token(t)

    def _token(self, t: int):
        """One decode step; records its time and critical-path breakdown."""
        ph, c = self.phone, self.c
        token_start = self.env.now
        busy0 = ph.timelines[:, 1].copy()
        split = np.zeros(4)  # flash, dram, compute, stall
        end = token_step(ph.timelines, ph.flash_row, token_start, c.flash_ahead_s[t],
                         c.flash_demand_s[t], c.dram_s[t], c.compute_s[t], self._step_phase,
                         float(c.head_flash_s[t]), float(c.head_dram_s[t]),
                         float(c.head_compute_s[t]), self.prefetch, split)
        yield ph.wait_until(end)
        self._record(t, self.env.now - token_start, split, busy0)

    def _record(self, t, time_s, split, busy0) -> None:
        ph, tt = self.phone, self.times
        tt.flash_s[t], tt.dram_s[t], tt.compute_s[t], tt.stall_s[t] = split
        tt.time_s[t] = time_s
        busy = ph.timelines[:, 1] - busy0
        tt.busy_flash_s[t] = busy[ph.flash_row]
        tt.busy_dram_s[t] = busy[1]
        tt.busy_compute_s[t] = busy[2]
