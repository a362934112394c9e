"""Flash, DRAM bus and compute units as SimPy-clocked FIFO resources.

Speed shortcut (pinned by tests/test_hardware.py against `simpy.Resource`): a single-server
FIFO resource is kept as a timeline, the time it next falls idle. A transfer asked for at
`earliest_s` starts at max(earliest_s, free_at_s) and holds the resource for its closed-form
duration; the caller then waits on one SimPy timeout. This equals a `simpy.Resource`
request/hold/release whenever requests are made in time order, which the decode process
guarantees (it only reserves at or after `env.now`, in order). It costs no event per
transfer and none per column: column sets are counted, not walked. The timelines live in one
(3, 2) array [free_at_s, busy_s] per resource so the compiled token step (_token_step.py)
can reserve on them directly.
Ignores: arbitration priorities (demand reads do not overtake prefetches), DRAM bank
conflicts and refresh, DVFS.
"""
from __future__ import annotations

import numpy as np
import simpy

from memsim.core.jit import kernel

FLASH, DRAM, COMPUTE = 0, 1, 2
FREE_AT, BUSY = 0, 1


@kernel
def reserve(timelines: np.ndarray, i: int, earliest_s: float,
            duration_s: float) -> tuple[float, float]:
    """Queue one transfer on resource row `i`; return its (start_s, end_s). Nothing to move:
    no wait."""
    if duration_s <= 0.0:
        return earliest_s, earliest_s
    free_at = timelines[i, FREE_AT]
    start = earliest_s if earliest_s > free_at else free_at
    end = start + duration_s
    timelines[i, FREE_AT] = end
    timelines[i, BUSY] += duration_s
    return start, end


class Timeline:
    """One FIFO single-server resource (a view of one row of a Phone's timelines)."""

    def __init__(self, name: str, timelines: np.ndarray | None = None, row: int = 0):
        self.name = name
        self.timelines = np.zeros((1, 2)) if timelines is None else timelines
        self.row = row

    @property
    def free_at_s(self) -> float:
        return float(self.timelines[self.row, FREE_AT])

    @property
    def busy_s(self) -> float:
        return float(self.timelines[self.row, BUSY])

    def reserve(self, earliest_s: float, duration_s: float) -> tuple[float, float]:
        return reserve(self.timelines, self.row, earliest_s, duration_s)


class Phone:
    """The resources of one simulated phone, on one SimPy clock."""

    def __init__(self, env: simpy.Environment, flash_dram_concurrent: bool):
        self.env = env
        self.timelines = np.zeros((3, 2))
        # one shared channel when reads are not concurrent: flash uses the DRAM row (time = sum)
        self.flash_row = FLASH if flash_dram_concurrent else DRAM
        self.flash = Timeline("flash", self.timelines, self.flash_row)
        self.dram = Timeline("dram", self.timelines, DRAM)
        self.compute = Timeline("compute", self.timelines, COMPUTE)

    def wait_until(self, time_s: float) -> simpy.Event:
        """An event that fires at `time_s` (never in the past)."""
        delay = time_s - self.env.now
        return self.env.timeout(delay if delay > 0.0 else 0.0)
