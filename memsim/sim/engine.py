"""The engine: the phone's resources on one SimPy clock, and the processes that use them.

Per token and layer, phases attn -> in -> out (see costs.py); each phase is its load steps
(flash || DRAM, a barrier per step, as per masked matrix in the authors' model) and then its
kernel on the compute unit. Loads known before a layer starts are, with
`timing.prefetch_next_layer`, issued when the previous layer's last kernel starts, so they
overlap compute and the down-projection's critical-path flash reads of the layer before.
No prefetch crosses a token boundary. Time per token is attributed along the critical path
to flash, DRAM, compute, or stall (waiting for a resource busy with other queued work), so
the four add up to the step time exactly.

Two ways to run it, giving the same times where both apply (tests/test_engine.py):
  * `CompiledRun`: the decode stream alone, nothing time-varying: each token's reservations
    are made at once by one compiled call (_token_step.py) and the process waits once per
    token. Every plain `simulate()` uses it.
  * `EventRun`: any number of processes on the same resources: the decode stream (a chat
    session's prefills, decodes and think times, session.py), background apps
    (background.py) and the thermal governor (thermal.py). The stream runs its compiled
    program (_stream.py) up to the next event of any other process (`env.peek()`), then
    yields to it: one SimPy event per interruption, not per transfer, and exact because
    every request still reaches its resource in issue order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from memsim.sim import _stream
from memsim.sim._token_step import token_step  # compiled on first call
from memsim.sim.costs import StepCosts
from memsim.sim.resources import COMPUTE, DRAM, FLASH, Phone

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
    start_s: np.ndarray = field(default=None)  # on the run's clock
    end_s: np.ndarray = field(default=None)
    temperature_C: np.ndarray = field(default=None)  # at the token's start (NaN: no model)
    throttle_level: np.ndarray = field(default=None)  # governor step (0: full speed)
    speed_factor: np.ndarray = field(default=None)  # compute speed at the token's start

    def __post_init__(self) -> None:
        T = self.time_s.shape[0]
        for name, fill in (("start_s", 0.0), ("end_s", 0.0), ("temperature_C", np.nan),
                           ("throttle_level", 0.0), ("speed_factor", 1.0)):
            if getattr(self, name) is None:
                setattr(self, name, np.full(T, fill))

    @classmethod
    def empty(cls, T: int) -> "TokenTimes":
        return cls(*(np.zeros(T) for _ in range(8)))

    def rows(self, rows) -> "TokenTimes":
        """The records of tokens `rows` (a slice or index array)."""
        return TokenTimes(**{n: getattr(self, n)[rows] for n in self.__dataclass_fields__})

    @classmethod
    def from_records(cls, records: np.ndarray) -> "TokenTimes":
        """From the stream's (T, NUM_RECORDS) records (_stream.REC_*)."""
        r = records
        return cls(r[:, _stream.REC_END] - r[:, _stream.REC_START],
                   *(r[:, c].copy() for c in range(_stream.REC_FLASH,
                                                   _stream.REC_BUSY_COMPUTE + 1)),
                   start_s=r[:, _stream.REC_START].copy(), end_s=r[:, _stream.REC_END].copy(),
                   temperature_C=r[:, _stream.REC_TEMPERATURE].copy(),
                   throttle_level=r[:, _stream.REC_LEVEL].copy(),
                   speed_factor=r[:, _stream.REC_SPEED].copy())


class CompiledRun:
    """The decode stream alone on a phone with nothing time-varying: one SimPy process, in
    order, one event per token; each token's layers are reservations made at once
    (memsim/sim/_token_step.py, compiled), exact because this process is the only one
    reserving and does so in time order."""

    def __init__(self, costs: StepCosts, prefetch: bool, flash_dram_concurrent: bool):
        self.c = costs
        self.prefetch = prefetch
        self.env = simpy.Environment()
        self.phone = Phone(flash_dram_concurrent)
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
        delay = end - self.env.now
        yield self.env.timeout(delay if delay > 0.0 else 0.0)
        self._record(t, token_start, self.env.now, split, busy0)

    def _record(self, t, start, end, split, busy0) -> None:
        ph, tt = self.phone, self.times
        tt.flash_s[t], tt.dram_s[t], tt.compute_s[t], tt.stall_s[t] = split
        tt.time_s[t] = end - start
        tt.start_s[t], tt.end_s[t] = start, end
        busy = ph.timelines[:, 1] - busy0
        tt.busy_flash_s[t] = busy[FLASH]
        tt.busy_dram_s[t] = busy[DRAM]
        tt.busy_compute_s[t] = busy[COMPUTE]


def token_power(costs: StepCosts, energy_J: np.ndarray | None) -> np.ndarray:
    """(T, 4): per token, the power (W) each resource draws while it works for the token
    (its energy / its nominal busy time) for flash, DRAM, compute, and in column 3 the
    energy (J) of a resource that has energy but no busy time (charged at the token's
    start). `energy_J` is (T, 3) per-resource energy, None: no energy model (zeros)."""
    T = costs.flash_ahead_s.shape[0]
    out = np.zeros((T, 4))
    if energy_J is None:
        return out
    busy = np.stack([costs.flash_ahead_s.sum(axis=(1, 2)) + costs.flash_demand_s.sum(axis=(1, 2))
                     + costs.head_flash_s,
                     costs.dram_s.sum(axis=(1, 2)) + costs.head_dram_s,
                     costs.compute_s.sum(axis=(1, 2)) + costs.head_compute_s], axis=1)
    has_time = busy > 0
    out[:, :3] = np.where(has_time, energy_J / np.where(has_time, busy, 1.0), 0.0)
    out[:, 3] = np.where(has_time, 0.0, energy_J).sum(axis=1)
    return out


class Stream:
    """One cost table (a decode run's tokens, or one prefill) run by the decode process on
    an EventRun's phone: `run(t0, t1)` is a SimPy process fragment (use `yield from`)."""

    def __init__(self, run: "EventRun", costs: StepCosts, power: np.ndarray):
        self.r, self.c = run, costs
        T, L, S = costs.flash_ahead_s.shape
        self.power = np.ascontiguousarray(power)
        self.program = _stream.token_program(costs.step_phase, L, run.prefetch)
        self.fs = np.zeros(6)
        self.ist = np.zeros(3, np.int64)
        self.pending = np.zeros((S, 2))
        self.split, self.busy = np.zeros(4), np.zeros(3)
        self.records = np.zeros((T, _stream.NUM_RECORDS))

    def run(self, t0: int, t1: int):
        env, ph, c = self.r.env, self.r.phone, self.c
        self.fs[_stream.NOW] = env.now
        self.ist[:] = (t0, 0, t1)
        while True:
            limit = float(env.peek())  # inf when no other process has an event
            status = _stream.advance(
                ph.timelines, ph.flash_row, ph.speed, ph.energy_J, ph.wait_s, ph.state, self.power,
                c.flash_ahead_s, c.flash_demand_s, c.dram_s, c.compute_s, c.head_flash_s,
                c.head_dram_s, c.head_compute_s, *self.program, self.r.prefetch, self.fs,
                self.ist, self.pending, self.split, self.busy, self.records, limit)
            if status == _stream.DONE:
                break
            yield env.timeout(max(0.0, self.fs[_stream.NEXT_ISSUE] - env.now))
        end = self.fs[_stream.NOW]
        if end > env.now:
            yield env.timeout(end - env.now)

    def times(self) -> TokenTimes:
        return TokenTimes.from_records(self.records)


class EventRun:
    """A phone shared by the decode process and any other processes (`others`: callables
    taking the run and returning a SimPy generator: background apps, the thermal governor).
    The run ends when the decode process does."""

    def __init__(self, prefetch: bool, flash_dram_concurrent: bool):
        self.env = simpy.Environment()
        self.phone = Phone(flash_dram_concurrent)
        self.prefetch = prefetch

    def stream(self, costs: StepCosts, power: np.ndarray | None = None) -> Stream:
        T = costs.flash_ahead_s.shape[0]
        return Stream(self, costs, np.zeros((T, 4)) if power is None else power)

    def run(self, decode, others=()) -> None:
        """Run until the `decode` generator (a SimPy process body) returns."""
        for other in others:
            self.env.process(other)
        main = self.env.process(decode)
        self.env.run(until=main)
