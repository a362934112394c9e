"""`simple` flash: one bandwidth and one latency per transfer (the authors' analytic model
with latency 0). Ignores read size entirely: 1,000 scattered 2 KB reads cost the same as one
2 MB read, which real UFS does not (see `ufs`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.core.schema import spec
from memsim.hw.flash.base import FLASH_MODELS, FlashModel


@FLASH_MODELS.register("simple")
@dataclass(frozen=True, kw_only=True)
class SimpleFlash(FlashModel):
    """time = latency (if anything is read) + bytes / bandwidth."""

    impl: str = spec("flash model", choices=("simple",))
    read_bandwidth_GBps: float = spec("sequential read bandwidth", unit="GB/s", gt=0)
    latency_us: float = spec("fixed latency per transfer", default=0.0, unit="us", ge=0)
    read_energy_pJ_per_byte: float | None = spec("read energy", default=None, unit="pJ/B", ge=0)

    def read_time_s(self, num_bytes, num_requests):
        num_bytes = np.asarray(num_bytes, dtype=np.float64)
        latency_s = np.where(num_bytes > 0, self.latency_us * 1e-6, 0.0)
        return latency_s + num_bytes / self.read_bandwidth_Bps
