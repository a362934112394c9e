"""Flash storage models: what a read request costs.

Each model is a frozen config dataclass (its YAML keys) that registers itself under its
`impl:` name. The simulator (memsim/sim/flash_reads.py) counts the exact requests a token
makes and asks the model two things:
  * `page_bytes`: the read unit (None: byte-addressable, no rounding);
  * `request_cost(range_bytes, sequential)` -> (floor_s, per_unit_s) within a span.
Every price of a read is `request_time_s`: one request of n units (pages, or bytes) takes
max(floor_s, n * per_unit_s); requests of one transfer pipeline one after the other and a
transfer adds `latency_s` once (`transfer_time_s`). `memsim hw probe`, whole-region reads
(`contiguous_reads`, `read_time_s`) and the simulator's exact requests all price through it;
the compiled request counting inlines it as "a request of at most `short_units(...)` units
costs the floor, a longer one its units" (tests/test_flash_reads.py checks the two agree).
What every model ignores: FTL garbage collection, thermal throttling, writes (decode only
reads weights), and any state carried between transfers (the mapping cache is judged per
transfer, by the span it reads).
"""
from __future__ import annotations

import math

import numpy as np

from memsim.core.registry import Registry

FLASH_MODELS: Registry[type] = Registry("flash model")
# Lower bounds that keep every duration finite (a bandwidth of 5e-324 GB/s would make one
# page take inf seconds): 1 kB/s and one request per second are far below any real device.
MIN_FLASH_GBps = 1e-6
MIN_IOPS_K = 1e-3


class FlashModel:
    """Mixin for flash config dataclasses; subclasses define the cost of one request."""

    impl: str
    read_bandwidth_GBps: float
    read_energy_pJ_per_byte: float | None
    layout: str | None

    @property
    def read_bandwidth_Bps(self) -> float:
        return self.read_bandwidth_GBps * 1e9

    @property
    def page_bytes(self) -> int | None:
        return None

    @property
    def merge_gap_bytes(self) -> float:
        """Runs whose gap is at most this are read as one request (over-reading the gap)."""
        return 0.0

    @property
    def locality(self) -> str:
        """The span a masked read's IOPS is judged by (`ufs`: the `locality` key); models
        whose cost does not depend on the span answer `region`."""
        return "region"

    @property
    def latency_s(self) -> float:
        return 0.0

    @property
    def bundles_matrices(self) -> bool:
        """Vectors of one index in several matrices (W_up and W_gate column j) are stored
        together and read as one (LLM in a flash bundling)."""
        return True

    def request_cost(self, range_bytes: float, sequential: bool) -> tuple[float, float]:
        """(floor_s, per_unit_s) of one request within a span of `range_bytes`."""
        raise NotImplementedError

    def units_of(self, size_bytes) -> np.ndarray:
        """Read units of a request of `size_bytes` from a unit boundary (pages, or bytes)."""
        size = np.asarray(size_bytes, dtype=np.float64)
        return np.ceil(size / self.page_bytes) if self.page_bytes else size

    def request_time_s(self, units, range_bytes, sequential: bool) -> np.ndarray:
        """Seconds of one request of `units` read units (> 0) within a span of `range_bytes`,
        inside a transfer (its share of the pipeline; the latency is the transfer's)."""
        floor_s, per_unit_s = self.request_cost(range_bytes, sequential)
        return request_time(units, floor_s, per_unit_s)

    def transfer_time_s(self, request_units, range_bytes, sequential: bool) -> float:
        """Seconds of one transfer of requests of `request_units` units each (0 if none)."""
        units = np.asarray(request_units, dtype=np.float64)
        if units.size == 0:
            return 0.0
        return self.latency_s + float(self.request_time_s(units, range_bytes, sequential).sum())

    def contiguous_reads(self, sizes_bytes, sequential: bool = True,
                         range_bytes: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(time_s, device_bytes) of reading each size as one request from a unit boundary
        (a whole weight region: attention, embedding row, LM head); 0 bytes costs nothing."""
        sizes = np.asarray(sizes_bytes, dtype=np.float64)
        units = self.units_of(sizes)
        request = self.request_time_s(units, sizes if range_bytes is None else range_bytes,
                                      sequential)
        time = np.where(sizes > 0, self.latency_s + request, 0.0)
        return time, units * (self.page_bytes or 1)

    def read_time_s(self, num_bytes, num_requests, sequential: bool = False,
                    range_bytes: float | None = None) -> np.ndarray:
        """Seconds for one transfer of `num_requests` equal requests totalling `num_bytes`
        (what `memsim hw probe` measures): `num_requests` times `request_time_s` of one
        request's units, plus the latency."""
        num_bytes = np.asarray(num_bytes, dtype=np.float64)
        n = np.maximum(np.asarray(num_requests, dtype=np.float64), 1.0)
        span = float(np.max(num_bytes)) if range_bytes is None else range_bytes
        per_request = self.request_time_s(self.units_of(num_bytes / n), span, sequential)
        return np.where(num_bytes > 0, self.latency_s + n * per_request, 0.0)


def request_time(units, floor_s: float, per_unit_s: float) -> np.ndarray:
    """The price of one request of `units` read units: max(floor_s, units * per_unit_s)."""
    return np.maximum(floor_s, np.asarray(units, dtype=np.float64) * per_unit_s)


MAX_SHORT_UNITS = 1 << 60


def short_units(floor_s: float, per_unit_s: float) -> int:
    """The longest request (in units) that costs the floor: request_time(n) == floor_s, by
    the same float test as `request_time` (so a kernel that charges the floor to requests of
    at most this many units and units * per_unit_s to longer ones prices exactly as it)."""
    if per_unit_s <= 0:
        return MAX_SHORT_UNITS
    n = min(int(floor_s / per_unit_s), MAX_SHORT_UNITS)
    while n > 0 and n * per_unit_s > floor_s:
        n -= 1
    while (n + 1) * per_unit_s <= floor_s and n < MAX_SHORT_UNITS:
        n += 1
    return n


def log_interpolate(x: float, x0: float, y0: float, x1: float, y1: float) -> float:
    """y at x, linear in log(x) between (x0, y0) and (x1, y1), constant outside."""
    if x <= x0 or x1 <= x0:
        return y0
    if x >= x1:
        return y1
    return y0 + (y1 - y0) * math.log(x / x0) / math.log(x1 / x0)
