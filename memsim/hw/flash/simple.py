"""`simple` flash: one bandwidth and one latency per transfer (the authors' analytic model
with latency 0). Byte-addressable and free of per-request cost: 1,000 scattered 2 KB reads
cost the same as one 2 MB read, which real UFS does not (see `ufs`)."""
from __future__ import annotations

from dataclasses import dataclass

from memsim.core.schema import spec
from memsim.hw.flash.base import FLASH_MODELS, FlashModel


@FLASH_MODELS.register("simple")
@dataclass(frozen=True, kw_only=True)
class SimpleFlash(FlashModel):
    """time = latency (if anything is read) + bytes / bandwidth."""

    impl: str = spec("flash model", choices=("simple",))
    read_bandwidth_GBps: float = spec("sequential read bandwidth", unit="GB/s", gt=0,
                                      le=10_000)
    latency_us: float = spec("fixed latency per transfer", default=0.0, unit="us", ge=0,
                             le=1e6)
    read_energy_pJ_per_byte: float | None = spec("read energy", default=None, unit="pJ/B", ge=0,
                                                 le=1e6)
    layout: str | None = spec("column placement file (`memsim layout build`; default: model "
                              "order)", default=None)

    @property
    def latency_s(self) -> float:
        return self.latency_us * 1e-6

    def request_cost(self, range_bytes, sequential):
        return 0.0, 1.0 / self.read_bandwidth_Bps  # per byte, no floor
