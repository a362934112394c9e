"""`identity`: columns in model order (what every simulation assumes without a layout)."""
from __future__ import annotations

import numpy as np

from memsim.hw.layouts.base import LAYOUT_METHODS


@LAYOUT_METHODS.register("identity")
def identity_order(words: np.ndarray, num_columns: int) -> np.ndarray:
    """(N,) slot -> column: 0, 1, ..., N-1."""
    return np.arange(num_columns, dtype=np.int32)
