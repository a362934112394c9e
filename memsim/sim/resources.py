"""Flash, DRAM bus and compute units as SimPy-clocked FIFO resources.

Speed shortcut (pinned by tests/test_hardware.py against `simpy.Resource`): a single-server
FIFO resource is kept as a timeline, the time it next falls idle. A transfer asked for at
`earliest_s` starts at max(earliest_s, free_at_s) and holds the resource for its closed-form
duration; the caller then waits on one SimPy timeout. This equals a `simpy.Resource`
request/hold/release whenever requests are made in time order, which the decode process
guarantees (it only reserves at or after `env.now`, in order). It costs one event per
transfer instead of three, and no event per column: column sets are counted, not walked.
Ignores: arbitration priorities (demand reads do not overtake prefetches), DRAM bank
conflicts and refresh, DVFS.
"""
from __future__ import annotations

import simpy


class Timeline:
    """One FIFO single-server resource: a flash channel, the DRAM bus or a compute unit."""

    __slots__ = ("name", "free_at_s", "busy_s")

    def __init__(self, name: str):
        self.name = name
        self.free_at_s = 0.0  # when the current queue of reservations drains
        self.busy_s = 0.0  # total time held, for utilisation and the timing laws

    def reserve(self, earliest_s: float, duration_s: float) -> tuple[float, float]:
        """Queue one transfer; return its (start_s, end_s). Nothing to move: no wait."""
        if duration_s <= 0.0:
            return earliest_s, earliest_s
        start = earliest_s if earliest_s > self.free_at_s else self.free_at_s
        end = start + duration_s
        self.free_at_s = end
        self.busy_s += duration_s
        return start, end


class Phone:
    """The resources of one simulated phone, on one SimPy clock."""

    def __init__(self, env: simpy.Environment, flash_dram_concurrent: bool):
        self.env = env
        self.flash = Timeline("flash")
        self.dram = Timeline("dram")
        self.compute = Timeline("compute")
        if not flash_dram_concurrent:
            # one shared channel: a flash read and a DRAM read never overlap (time = sum)
            self.flash = self.dram

    def wait_until(self, time_s: float) -> simpy.Event:
        """An event that fires at `time_s` (never in the past)."""
        delay = time_s - self.env.now
        return self.env.timeout(delay if delay > 0.0 else 0.0)
