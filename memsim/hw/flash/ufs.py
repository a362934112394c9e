"""`ufs` flash: a UFS/NVMe-like device whose cost depends on how many requests are made and
how large they are (PAPER.md sections 5 and 6).

A request reads whole pages. Within one transfer requests pipeline, each taking
    max(1 / IOPS(span), host overhead, pages * page / bandwidth),
and the transfer adds `latency_us` once (the first request's turnaround). So 4 KiB random
reads are IOPS-bound and 512 KiB reads bandwidth-bound. What the model distinguishes:
  * random vs sequential: masked column reads land at data-dependent offsets and stream at
    `random_read_bandwidth_GBps`; whole-region reads (dense or streamed weights) walk the file
    in order at `read_bandwidth_GBps` (PowerInfer-2, UFS 4.0: ~3.5 vs ~4 GB/s at 512 KiB);
  * locality: the device's mapping-table cache makes random reads within a small span
    faster. IOPS(span) is `local_read_iops_K` up to `local_range_MiB`, `max_read_iops_K`
    from `far_range_GiB` on, linear in log(span) between (PowerInfer-2: 4 KiB random reads
    ~1 GB/s within 128 MB, below 0.85 GB/s at 512 MB, ~0.45 GB/s over a large range). Which
    span a masked read is judged by is `locality` (docs/flash_layout.md, "Locality"):
    `region` (the default: the one layer's region the transfer reads), `token` (every
    layer's MLP regions, which one token's reads visit) or `file` (the whole weight file);
  * the issuing core: `host_request_overhead_us` per request (interrupt and queue work; a
    little core is slower: ~0.76 vs ~1 GB/s at 4 KiB in PowerInfer-2), a floor like IOPS;
  * queue depth: at most `queue_depth` requests in flight, so IOPS <= depth / latency.
Ignores: FTL/GC, read disturb, thermal throttling, mapping-cache state between transfers,
the single command queue's interaction with other I/O, and write traffic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.core.schema import spec
from memsim.hw.flash.base import (
    FLASH_MODELS,
    MIN_IOPS_K,
    FlashModel,
    MIN_FLASH_GBps,
    log_interpolate,
)


LOCALITIES = ("region", "token", "file")


@FLASH_MODELS.register("ufs")
@dataclass(frozen=True, kw_only=True)
class UfsFlash(FlashModel):
    """Page-granular, IOPS-limited flash; random vs sequential, span-dependent IOPS."""

    impl: str = spec("flash model", choices=("ufs",))
    read_bandwidth_GBps: float = spec("sequential read bandwidth", unit="GB/s",
                                      ge=MIN_FLASH_GBps, le=10_000)
    random_read_bandwidth_GBps: float | None = spec(
        "bandwidth of large random reads (default: the sequential one)", default=None,
        unit="GB/s", ge=MIN_FLASH_GBps, le=10_000)
    latency_us: float = spec("latency of one read request", unit="us", ge=0, le=1e6)
    page_size_KiB: float = spec("read unit: requests are rounded up to whole pages",
                                unit="KiB", ge=0.5, le=1 << 20)
    queue_depth: int = spec("requests in flight", default=32, ge=1, le=1 << 16)
    max_read_iops_K: float = spec("random-read IOPS over a large span (>= far_range_GiB)",
                                  unit="K requests/s", ge=MIN_IOPS_K, le=1e6)
    local_read_iops_K: float | None = spec(
        "random-read IOPS within local_range_MiB (default: max_read_iops_K)", default=None,
        unit="K requests/s", ge=MIN_IOPS_K, le=1e6)
    local_range_MiB: float = spec("span up to which local_read_iops_K applies", default=128.0,
                                  unit="MiB", ge=1e-3, le=1 << 30)
    far_range_GiB: float = spec("span from which max_read_iops_K applies", default=4.0,
                                unit="GiB", ge=1e-6, le=1 << 20)
    host_request_overhead_us: float = spec("CPU time to issue and complete one request on the "
                                           "I/O core (a floor per request)", default=0.0,
                                           unit="us", ge=0, le=1e6)
    merge_gap_KiB: float = spec("runs of needed columns whose gap is at most this are read as "
                                "one request, over-reading the gap (.inf: one request per "
                                "transfer)", default=0.0, unit="KiB", ge=0, allow_inf=True)
    locality: str = spec("the span a masked read's random-read IOPS is judged by (the "
                         "device's mapping cache): `region` = the one layer's weight region the "
                         "transfer reads, `token` = every layer's MLP regions (what one token's "
                         "reads visit), `file` = the whole weight file",
                         default="region", choices=LOCALITIES)
    bundle_up_gate: bool = spec("vectors of one index in several matrices (W_up and W_gate "
                                "column j; a neuron's up/gate rows and down column) stored "
                                "together, read as one (LLM in a flash bundling)", default=True)
    read_energy_pJ_per_byte: float | None = spec("read energy", default=None, unit="pJ/B", ge=0,
                                                 le=1e6)
    layout: str | None = spec("column placement file (`memsim layout build`; default: model "
                              "order)", default=None)

    @property
    def page_bytes(self) -> int:
        return int(round(self.page_size_KiB * 1024))

    @property
    def merge_gap_bytes(self) -> float:
        return self.merge_gap_KiB * 1024

    @property
    def latency_s(self) -> float:
        return self.latency_us * 1e-6

    @property
    def bundles_matrices(self) -> bool:
        return self.bundle_up_gate

    def iops(self, range_bytes: float, sequential: bool = False) -> float:
        """Requests per second within a span of `range_bytes` (capped by depth / latency)."""
        local = (self.local_read_iops_K or self.max_read_iops_K) * 1e3
        if sequential:
            by_span = local
        else:
            by_span = log_interpolate(float(range_bytes), self.local_range_MiB * 2**20, local,
                                      self.far_range_GiB * 2**30, self.max_read_iops_K * 1e3)
        by_queue = self.queue_depth / self.latency_s if self.latency_s > 0 else np.inf
        return min(by_span, by_queue)

    def request_cost(self, range_bytes, sequential):
        bandwidth = self.read_bandwidth_GBps if sequential else (
            self.random_read_bandwidth_GBps or self.read_bandwidth_GBps)
        span = float(np.max(range_bytes)) if np.ndim(range_bytes) else float(range_bytes)
        floor_s = max(1.0 / self.iops(span, sequential), self.host_request_overhead_us * 1e-6)
        return floor_s, self.page_bytes / (bandwidth * 1e9)
