"""Flash storage models: how long reading `bytes` in `requests` separate reads takes.

Each model is a frozen config dataclass (its YAML keys) that registers itself under its
`impl:` name and computes read times vectorised over numpy arrays. What every model ignores:
FTL garbage collection, thermal throttling, writes (decode only reads weights).
"""
from __future__ import annotations

import numpy as np

from memsim.core.registry import Registry

FLASH_MODELS: Registry[type] = Registry("flash model")


class FlashModel:
    """Mixin for flash config dataclasses: subclasses implement `read_time_s`."""

    impl: str
    read_bandwidth_GBps: float
    read_energy_pJ_per_byte: float | None

    @property
    def read_bandwidth_Bps(self) -> float:
        return self.read_bandwidth_GBps * 1e9

    def read_time_s(self, num_bytes: np.ndarray, num_requests: np.ndarray) -> np.ndarray:
        """Seconds to read `num_bytes` as `num_requests` reads (one transfer, elementwise)."""
        raise NotImplementedError

    def bytes_read(self, num_bytes: np.ndarray, num_requests: np.ndarray) -> np.ndarray:
        """Bytes the device actually reads (page rounding may add some)."""
        return np.asarray(num_bytes, dtype=np.float64)
