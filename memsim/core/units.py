"""Byte units for what people read (tables, figures, the CLI): one system everywhere.

Decimal, as the hardware configs are (1 GB = 10^9 bytes, 1 MB = 10^6 bytes): MB below 1 GB,
GB from 1 GB up. A set of values shown together (a table column, a figure axis) takes the
unit of its largest value, so one sweep's DRAM sizes share one unit and say which.
"""
from __future__ import annotations

import math
from typing import Iterable, NamedTuple


class ByteUnit(NamedTuple):
    """A display unit: its name and how many bytes it holds."""

    name: str
    num_bytes: float

    def of(self, num_bytes: float) -> float:
        """`num_bytes` expressed in this unit."""
        return num_bytes / self.num_bytes


MB = ByteUnit("MB", 1e6)
GB = ByteUnit("GB", 1e9)


def byte_unit(values_bytes: float | Iterable[float]) -> ByteUnit:
    """MB when the largest finite value is below 1 GB, else GB (MB when there is none)."""
    values = [values_bytes] if isinstance(values_bytes, (int, float)) else list(values_bytes)
    finite = [abs(float(v)) for v in values if math.isfinite(float(v))]
    return GB if finite and max(finite) >= GB.num_bytes else MB


def format_bytes(num_bytes: float, digits: int = 3) -> str:
    """`num_bytes` in its own unit with `digits` decimals, e.g. "35.975 MB", "6.000 GB"."""
    unit = byte_unit(num_bytes)
    return f"{unit.of(num_bytes):.{digits}f} {unit.name}"
