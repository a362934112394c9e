"""`frequency`: hot columns first (hot/cold neuron clustering, as PowerInfer-2 and LLM in a
flash keep hot neurons together): slots in decreasing order of how many calibration tokens
used the column; ties keep model order. Ignores which columns fire *together*."""
from __future__ import annotations

import numpy as np

from memsim.hw.layouts.base import LAYOUT_METHODS
from memsim.traces.bits import unpack_words


@LAYOUT_METHODS.register("frequency")
def frequency_order(words: np.ndarray, num_columns: int) -> np.ndarray:
    """(T, W) packed calibration masks of one layer -> (N,) slot -> column."""
    uses = unpack_words(words, num_columns).sum(axis=0, dtype=np.int64)
    return np.argsort(-uses, kind="stable").astype(np.int32)
