"""`memsim hw probe`: the flash model measured the way fio measures a phone's storage.

For each request size, a long stream of requests (latency amortised, as a benchmark at full
queue depth sees it): random over a large span (8 GiB), random within 128 MiB (the span
PowerInfer-2 reports for its mapping-cache effect), and sequential. Effective bandwidth is
bytes / time, IOPS requests / time. These are the figures a preset is checked against
(tests/test_probe.py, docs/flash_layout.md).
"""
from __future__ import annotations

from memsim.hw.config import HardwareConfig

SIZES_KiB = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
PATTERNS = {"random (8 GiB span)": (False, 8 * 2**30), "random (128 MiB span)": (False, 2**27),
            "sequential": (True, None)}
STREAM_REQUESTS = 10_000


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
