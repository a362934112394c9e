"""`ufs` flash: UFS/NVMe-like device whose throughput depends on read size (PAPER.md section 5).

Each request reads whole pages; the device serves at most `iops` requests per second, where
iops = min(max_read_iops_K * 1e3, queue_depth / latency) (Little's law: `queue_depth`
requests in flight, each taking `latency`). One transfer of n requests of mean size s takes
    latency + n * max(pages(s) * page / bandwidth, 1 / iops)
so 4 KiB random reads are IOPS-bound (UFS 4.0: ~110 K IOPS -> ~0.45 GB/s) and 512 KiB reads
bandwidth-bound (~4 GB/s). Approximation: requests of one transfer are taken to have the mean
size (we keep counts, not run lengths). Ignores: FTL/GC, read disturb, thermal throttling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.core.schema import spec
from memsim.hw.flash.base import FLASH_MODELS, FlashModel


@FLASH_MODELS.register("ufs")
@dataclass(frozen=True, kw_only=True)
class UfsFlash(FlashModel):
    """Page-granular, IOPS-limited flash with a per-request latency hidden by queue depth."""

    impl: str = spec("flash model", choices=("ufs",))
    read_bandwidth_GBps: float = spec("sequential read bandwidth", unit="GB/s", gt=0)
    latency_us: float = spec("latency of one read request", unit="us", ge=0)
    page_size_KiB: float = spec("read unit: requests are rounded up to whole pages",
                                unit="KiB", gt=0)
    queue_depth: int = spec("requests in flight", default=32, ge=1)
    max_read_iops_K: float = spec("random-read IOPS limit", unit="K requests/s", gt=0)
    bundle_up_gate: bool = spec("a column of W_up and W_gate stored together: one request "
                                "for both (LLM in a flash bundling)", default=True)
    read_energy_pJ_per_byte: float | None = spec("read energy", default=None, unit="pJ/B", ge=0)

    @property
    def iops(self) -> float:
        latency_s = self.latency_us * 1e-6
        by_queue = self.queue_depth / latency_s if latency_s > 0 else np.inf
        return min(self.max_read_iops_K * 1e3, by_queue)

    def bytes_read(self, num_bytes, num_requests):
        num_bytes = np.asarray(num_bytes, dtype=np.float64)
        n = np.maximum(np.asarray(num_requests, dtype=np.float64), 1.0)
        page_bytes = self.page_size_KiB * 1024
        pages_per_request = np.ceil(num_bytes / n / page_bytes)
        return np.where(num_bytes > 0, n * pages_per_request * page_bytes, 0.0)

    def read_time_s(self, num_bytes, num_requests):
        read = self.bytes_read(num_bytes, num_requests)
        n = np.asarray(num_requests, dtype=np.float64)
        per_request_s = np.maximum(read / np.maximum(n, 1.0) / self.read_bandwidth_Bps,
                                   1.0 / self.iops)
        return np.where(read > 0, self.latency_us * 1e-6 + n * per_request_s, 0.0)
