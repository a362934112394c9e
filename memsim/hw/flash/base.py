"""Flash storage models: what a read request costs.

Each model is a frozen config dataclass (its YAML keys) that registers itself under its
`impl:` name. The simulator (memsim/sim/flash_reads.py) counts the exact requests a token
makes and asks the model two things:
  * `page_bytes`: the read unit (None: byte-addressable, no rounding);
  * `request_cost(range_bytes, sequential)` -> (floor_s, per_unit_s): one request of n units
    (pages, or bytes) takes max(floor_s, n * per_unit_s), requests of one transfer pipeline
    one after the other, and a transfer adds `latency_s` once.
What every model ignores: FTL garbage collection, thermal throttling, writes (decode only
reads weights), and any state carried between transfers (the mapping cache is judged per
transfer, by the span it reads).
"""
from __future__ import annotations

import math

import numpy as np

from memsim.core.registry import Registry

FLASH_MODELS: Registry[type] = Registry("flash model")


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
        """Runs closer than this are read as one request (over-reading the gap)."""
        return 0.0

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

    def contiguous_reads(self, sizes_bytes, sequential: bool = True,
                         range_bytes: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(time_s, device_bytes) of reading each size as one request from a unit boundary
        (a whole weight region: attention, embedding row, LM head); 0 bytes costs nothing."""
        sizes = np.asarray(sizes_bytes, dtype=np.float64)
        unit = self.page_bytes or 1
        units = np.ceil(sizes / unit) if self.page_bytes else sizes
        floor_s, per_unit_s = self.request_cost(sizes if range_bytes is None else range_bytes,
                                                sequential)
        time = np.where(sizes > 0, self.latency_s + np.maximum(floor_s, units * per_unit_s), 0.0)
        return time, units * unit

    def read_time_s(self, num_bytes, num_requests, sequential: bool = False,
                    range_bytes: float | None = None) -> np.ndarray:
        """Seconds for one transfer of `num_requests` equal requests totalling `num_bytes`
        (what `memsim hw probe` measures); the simulator itself prices each request by its
        own exact size."""
        num_bytes = np.asarray(num_bytes, dtype=np.float64)
        n = np.maximum(np.asarray(num_requests, dtype=np.float64), 1.0)
        size = num_bytes / n
        unit = self.page_bytes or 1
        units = np.ceil(size / unit) if self.page_bytes else size
        span = float(np.max(num_bytes)) if range_bytes is None else range_bytes
        floor_s, per_unit_s = self.request_cost(span, sequential)
        per_request = np.maximum(floor_s, units * per_unit_s)
        return np.where(num_bytes > 0, self.latency_s + n * per_request, 0.0)


def log_interpolate(x: float, x0: float, y0: float, x1: float, y1: float) -> float:
    """y at x, linear in log(x) between (x0, y0) and (x1, y1), constant outside."""
    if x <= x0 or x1 <= x0:
        return y0
    if x >= x1:
        return y1
    return y0 + (y1 - y0) * math.log(x / x0) / math.log(x1 / x0)
