"""The token-step process: decode (and prefill) as a SimPy process over the phone's resources.

Per token and layer, phases attn -> in -> out (see costs.py); each phase is its load steps
(flash || DRAM, a barrier per step, as per masked matrix in the authors' model) and then its
kernel on the compute unit. Loads known before a layer starts are, with
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


class _Lists:
    """StepCosts as nested Python lists: scalar access in the hot loop is ~10x cheaper."""

    def __init__(self, c: StepCosts):
        self.ahead, self.demand = c.flash_ahead_s.tolist(), c.flash_demand_s.tolist()
        self.dram, self.compute = c.dram_s.tolist(), c.compute_s.tolist()
        self.head_flash, self.head_dram = c.head_flash_s.tolist(), c.head_dram_s.tolist()
        self.head_compute = c.head_compute_s.tolist()
        phases = c.step_phase
        self.steps_of_phase = [[s for s, p in enumerate(phases) if p == q] for q in range(3)]


class DecodeRun:
    """Runs tokens through the phone; one SimPy process per sequence, in order."""

    def __init__(self, costs: StepCosts, prefetch: bool, flash_dram_concurrent: bool):
        self.c = _Lists(costs)
        self.num_layers = costs.flash_ahead_s.shape[1]
        self.prefetch = prefetch
        self.env = simpy.Environment()
        self.phone = Phone(self.env, flash_dram_concurrent)
        self.times = TokenTimes.empty(costs.flash_ahead_s.shape[0])

    def run(self, token_slices: list[slice]) -> TokenTimes:
        self.env.process(self._sequences(token_slices))
        self.env.run()
        return self.times

    def _sequences(self, token_slices):
        for sl in token_slices:
            for t in range(sl.start, sl.stop):
                yield from self._token(t)

    def _token(self, t: int):
        """One decode step; records its time and critical-path breakdown.

        Hot loop (pinned by benchmarks/bench_simulator.py): one SimPy event per layer; the
        transfers inside a layer are reservations on the resources' timelines, exact because
        this process is the only one reserving and does so in time order.
        """
        ph, c, now = self.phone, self.c, self.env.now
        token_start = now
        busy0 = (ph.flash.busy_s, ph.dram.busy_s, ph.compute.busy_s)
        split = [0.0, 0.0, 0.0, 0.0]  # flash, dram, compute, stall
        flash_reserve, dram_reserve = ph.flash.reserve, ph.dram.reserve
        compute_reserve, attribute = ph.compute.reserve, self._attribute
        pending = self._issue_ahead(t, 0, now) if self.prefetch else None
        steps_of_phase = c.steps_of_phase
        for layer in range(self.num_layers):
            ahead, demand = c.ahead[t][layer], c.demand[t][layer]
            dram, compute = c.dram[t][layer], c.compute[t][layer]
            for phase in (0, 1, 2):
                for s in steps_of_phase[phase]:  # load steps: flash || DRAM, then a barrier
                    if pending is None:
                        f_start, f_end = flash_reserve(now, demand[s] + ahead[s])
                    else:
                        f_start, f_end = flash_reserve(now, demand[s])
                        if pending[s][1] > f_end:
                            f_start, f_end = pending[s]
                    d_start, d_end = dram_reserve(now, dram[s])
                    now = attribute(now, f_start, f_end, d_start, d_end, split)
                start, end = compute_reserve(now, compute[phase])
                if phase == 2 and pending is not None:  # next layer's known loads overlap
                    pending = self._issue_ahead(t, layer + 1, start)
                split[2] += end - start
                split[3] += start - now
                now = end
            yield ph.wait_until(now)
        now = self._head(t, now, pending, split)
        yield ph.wait_until(now)
        self._record(t, self.env.now - token_start, split, busy0)

    @staticmethod
    def _attribute(now, f_start, f_end, d_start, d_end, split) -> float:
        """Charge the wait until both transfers end to the later one (queueing = stall)."""
        ready, idx, start = (f_end, 0, f_start) if f_end >= d_end else (d_end, 1, d_start)
        if ready <= now:
            return now
        queued = start - now if start > now else 0.0
        split[3] += queued
        split[idx] += ready - now - queued
        return ready

    def _issue_ahead(self, t, layer, at_s):
        """Reserve the flash reads of `layer` that are known ahead (the head after the last)."""
        ph, c = self.phone, self.c
        if layer == self.num_layers:
            return [ph.flash.reserve(at_s, c.head_flash[t])]
        reserve = ph.flash.reserve
        return [reserve(at_s, seconds) for seconds in c.ahead[t][layer]]

    def _head(self, t, now, pending, split) -> float:
        """Embedding row + LM head: load, then the vocabulary projection."""
        ph, c = self.phone, self.c
        if pending is not None:
            f_start, f_end = pending[0]
        else:
            f_start, f_end = ph.flash.reserve(now, c.head_flash[t])
        d_start, d_end = ph.dram.reserve(now, c.head_dram[t])
        now = self._attribute(now, f_start, f_end, d_start, d_end, split)
        start, end = ph.compute.reserve(now, c.head_compute[t])
        split[2] += end - start
        split[3] += start - now
        return end

    def _record(self, t, time_s, split, busy0) -> None:
        ph, tt = self.phone, self.times
        tt.flash_s[t], tt.dram_s[t], tt.compute_s[t], tt.stall_s[t] = split
        tt.time_s[t] = time_s
        tt.busy_flash_s[t] = ph.flash.busy_s - busy0[0]
        tt.busy_dram_s[t] = ph.dram.busy_s - busy0[1]
        tt.busy_compute_s[t] = ph.compute.busy_s - busy0[2]
