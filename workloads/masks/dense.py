"""Dense: every column of every MLP matrix, every token (PAPER.md section 3, the baseline)."""
from __future__ import annotations

from workloads.masks.base import MASKS, MaskGenerator


@MASKS.register("dense")
class Dense(MaskGenerator):
    """Reads everything; the masked forward is then Hugging Face's forward, bit for bit."""

    name = "dense"
