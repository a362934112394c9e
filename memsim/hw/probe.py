"""`memsim hw probe`: the flash model measured the way fio measures a phone's storage.

For each request size, a long stream of requests (latency amortised, as a benchmark at full
queue depth sees it): random over a large span (8 GiB), random within 128 MiB (the span
PowerInfer-2 reports for its mapping-cache effect), and sequential. Effective bandwidth is
bytes / time, IOPS requests / time. Each stream is priced by `FlashModel.read_time_s`, i.e.
by `request_time_s`, the function the simulator prices its exact requests with
(memsim/hw/flash/base.py). PUBLISHED lists the measurements the presets are held against
(tests/test_probe.py pins them; benchmarks/flash_model_tables.py prints them in
docs/flash_layout.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from memsim.hw.config import HardwareConfig

SIZES_KiB = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
FAR_SPAN_BYTES, NEAR_SPAN_BYTES = 8 * 2**30, 2**27
PATTERNS = {f"random ({FAR_SPAN_BYTES / 2**30:g} GiB span)": (False, FAR_SPAN_BYTES),
            f"random ({NEAR_SPAN_BYTES / 2**20:g} MiB span)": (False, NEAR_SPAN_BYTES),
            "sequential": (True, None)}  # label -> (sequential, span): labels say the span
STREAM_REQUESTS = 10_000
WITHIN = 0.15  # how close a preset's probe must come to a published figure ("~x")
POWERINFER2 = "PowerInfer-2 (Xue et al. 2024), UFS 4.0, Snapdragon 8 Gen 3 (PAPER.md sec. 6)"
UFS31 = "UFS 3.1 figures of PAPER.md section 5"


@dataclass(frozen=True)
class Published:
    """One published storage measurement and the probe that reproduces it."""

    preset: str
    what: str
    size_KiB: float
    sequential: bool
    span_bytes: float | None
    metric: str  # "GB/s" or "K IOPS"
    value: float
    relation: str  # "about" (within WITHIN) or "below"
    source: str

    def measured(self, hw: HardwareConfig) -> float:
        gbps, kiops = probe(hw, self.size_KiB, self.sequential, self.span_bytes)
        return gbps if self.metric == "GB/s" else kiops

    def holds(self, measured: float) -> bool:
        if self.relation == "below":
            return measured < self.value
        return abs(measured - self.value) <= WITHIN * self.value


PUBLISHED = (
    Published("flagship", "512 KiB sequential reads", 512, True, None, "GB/s", 4.0, "about",
              POWERINFER2),
    Published("flagship", "512 KiB random reads", 512, False, 8 * 2**30, "GB/s", 3.5, "about",
              POWERINFER2),
    Published("flagship", "4 KiB random reads, large span", 4, False, 8 * 2**30, "GB/s", 0.45,
              "about", POWERINFER2),
    Published("flagship", "4 KiB random reads, within 128 MB", 4, False, 2**27, "GB/s", 1.0,
              "about", POWERINFER2),
    Published("flagship", "4 KiB random reads, 512 MB span", 4, False, 2**29, "GB/s", 0.85,
              "below", POWERINFER2),
    Published("midrange", "1 MiB sequential reads", 1024, True, None, "GB/s", 2.1, "about",
              UFS31),
    Published("midrange", "4 KiB random reads, large span", 4, False, 8 * 2**30, "K IOPS",
              100.0, "about", UFS31),
)


def probe(hw: HardwareConfig, size_KiB: float, sequential: bool,
          span_bytes: float | None) -> tuple[float, float]:
    """(effective GB/s, K IOPS) of a stream of `size_KiB` requests."""
    size = size_KiB * 1024
    total = size * STREAM_REQUESTS
    time_s = float(hw.flash.read_time_s(total, STREAM_REQUESTS, sequential=sequential,
                                        range_bytes=span_bytes if span_bytes else total))
    return total / time_s / 1e9, STREAM_REQUESTS / time_s / 1e3


def probe_table(hw: HardwareConfig) -> str:
    """A markdown table: request size x pattern -> GB/s (K IOPS)."""
    head = "| request | " + " | ".join(PATTERNS) + " |"
    lines = [f"flash of {hw.name} ({hw.flash.impl}): effective read GB/s (K IOPS)", "",
             head, "|---|" + "---|" * len(PATTERNS)]
    for size in SIZES_KiB:
        cells = []
        for sequential, span in PATTERNS.values():
            gbps, kiops = probe(hw, size, sequential, span)
            cells.append(f"{gbps:.2f} ({kiops:,.1f})")
        lines.append(f"| {size} KiB | " + " | ".join(cells) + " |")
    return "\n".join(lines)
