"""Flash, DRAM bus and compute unit as FIFO resources on one SimPy clock.

A single-server FIFO resource is kept as a timeline: the time it next falls idle. A request
issued at `earliest_s` starts at max(earliest_s, free_at_s) and holds the resource for its
duration; the issuer then waits for its end. This *is* a `simpy.Resource` request / hold /
release whenever requests reach the resource in the order they are issued, which the engine
guarantees: every process reserves only at `env.now`, and the decode stream's compiled steps
reserve ahead only up to the next event of any other process (engine.py). It costs no SimPy
event per transfer and none per column (tests/test_hardware.py checks the equivalence with
`simpy.Resource`, with several processes).

The timelines live in one (3, 2) array [free_at_s, busy_s] per resource, so compiled code
(_token_step.py, _stream.py) can reserve on them directly. Which row a request *queues* on
and which row its busy time is *counted* on are separate: with
`timing.flash_dram_concurrent: false` flash reads queue on the DRAM row (one shared channel:
a load step takes flash + DRAM time), but their busy time is still flash time.
Flash is one server: UFS has one command queue, so transfers of different processes are
served one after the other; a transfer's own requests pipeline at the device's queue depth
inside its closed-form duration (memsim/hw/flash/).
Ignores: arbitration priorities (demand reads do not overtake prefetches; no process
preempts another), DRAM bank conflicts and refresh, a request queued across a thermal
governor step keeps the speed it was issued at (_stream.py; `Phone.wait_s` and the governor's
`ThermalLog.repricing_bound_s` say how much that can matter in a run).
"""
from __future__ import annotations

import numpy as np

from memsim.core.jit import kernel

FLASH, DRAM, COMPUTE = 0, 1, 2
FREE_AT, BUSY = 0, 1


@kernel
def reserve(timelines: np.ndarray, i: int, earliest_s: float,
            duration_s: float) -> tuple[float, float]:
    """Queue one transfer on resource row `i` and count its busy time there; return its
    (start_s, end_s). Nothing to move: no wait."""
    return reserve_on(timelines, i, i, earliest_s, duration_s)


@kernel
def reserve_on(timelines: np.ndarray, queue_row: int, busy_row: int, earliest_s: float,
               duration_s: float) -> tuple[float, float]:
    """Queue one transfer on row `queue_row`, count its busy time on `busy_row` (the shared
    channel: flash reads queue with DRAM reads but are flash work)."""
    if duration_s <= 0.0:
        return earliest_s, earliest_s
    free_at = timelines[queue_row, FREE_AT]
    start = earliest_s if earliest_s > free_at else free_at
    end = start + duration_s
    timelines[queue_row, FREE_AT] = end
    timelines[busy_row, BUSY] += duration_s
    return start, end


class Timeline:
    """One FIFO single-server resource (a view of one row of a Phone's timelines)."""

    def __init__(self, name: str, timelines: np.ndarray | None = None, row: int = 0,
                 busy_row: int | None = None):
        self.name = name
        self.timelines = np.zeros((3, 2)) if timelines is None else timelines
        self.row = row
        self.busy_row = row if busy_row is None else busy_row

    @property
    def free_at_s(self) -> float:
        return float(self.timelines[self.row, FREE_AT])

    @property
    def busy_s(self) -> float:
        return float(self.timelines[self.busy_row, BUSY])

    def reserve(self, earliest_s: float, duration_s: float) -> tuple[float, float]:
        return reserve_on(self.timelines, self.row, self.busy_row, earliest_s, duration_s)


class Phone:
    """The resources of one simulated phone: its timelines and the speed each runs at.

    `speed` (flash, DRAM, compute) scales durations of work issued from now on (1 = the
    preset's figures; the thermal governor lowers them); `energy_J` is the dynamic energy
    of the work issued so far (the thermal model reads and clears it); `state` is what the
    thermal governor last decided (temperature, throttle level), recorded per token;
    `wait_s` the longest time a request of any process waited between its issue and its
    start, per resource (flash, DRAM, compute): how stale a speed read at issue can be."""

    def __init__(self, flash_dram_concurrent: bool):
        self.timelines = np.zeros((3, 2))
        # one shared channel when reads are not concurrent: flash queues on the DRAM row
        self.flash_row = FLASH if flash_dram_concurrent else DRAM
        self.flash = Timeline("flash", self.timelines, self.flash_row, FLASH)
        self.dram = Timeline("dram", self.timelines, DRAM)
        self.compute = Timeline("compute", self.timelines, COMPUTE)
        self.speed = np.ones(3)
        self.energy_J = np.zeros(1)
        self.wait_s = np.zeros(3)
        self.state = np.array([np.nan, 0.0])  # temperature (C; NaN: no model), level

    def timeline(self, resource: int) -> Timeline:
        return (self.flash, self.dram, self.compute)[resource]

    def timelines_reserve(self, queue_row: int, busy_row: int, earliest_s: float,
                          duration_s: float) -> tuple[float, float]:
        return reserve_on(self.timelines, queue_row, busy_row, earliest_s, duration_s)
