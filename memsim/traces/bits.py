"""Bit-packing of boolean column masks into uint64 words (little-endian bit order).

Bit j of word k of a row is column 64*k + j; rows are padded with zeros to whole words so
each (token, layer) row of a mask is a fixed number of words and 64 columns cost one
machine operation. Speed shortcut used by the batch cache policies and trace storage.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

WORD_BITS = 64


def num_words(num_columns: int) -> int:
    return -(-num_columns // WORD_BITS)


def pack_words(mask: np.ndarray) -> np.ndarray:
    """(..., N) bool -> (..., ceil(N/64)) uint64, padded with zero bits."""
    mask = np.asarray(mask, dtype=bool)
    n = mask.shape[-1]
    pad = num_words(n) * WORD_BITS - n
    if pad:
        mask = np.concatenate([mask, np.zeros(mask.shape[:-1] + (pad,), bool)], axis=-1)
    packed = np.packbits(mask, axis=-1, bitorder="little")  # (..., 8*words) uint8
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack_words(words: np.ndarray, num_columns: int) -> np.ndarray:
    """Inverse of pack_words: (..., W) uint64 -> (..., num_columns) bool."""
    as_bytes = np.ascontiguousarray(words.astype("<u8", copy=False)).view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, count=num_columns, bitorder="little").astype(bool)


def popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per word (numpy >= 2.0 has a vectorised popcount)."""
    return np.bitwise_count(words)


class PackedMasks(NamedTuple):
    """(T, L, N) boolean masks held as (T, L, ceil(N/64)) uint64 words, with N."""

    words: np.ndarray
    num_columns: int

    @classmethod
    def pack(cls, mask: np.ndarray) -> "PackedMasks":
        mask = np.asarray(mask, dtype=bool)
        return cls(pack_words(mask), int(mask.shape[-1]))

    def unpack(self) -> np.ndarray:
        return unpack_words(self.words, self.num_columns)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The unpacked (T, L, N)."""
        return self.words.shape[:-1] + (self.num_columns,)

    def counts(self) -> np.ndarray:
        """(T, L) int64 set columns."""
        return popcount(self.words).sum(axis=-1, dtype=np.int64)


def as_packed(masks) -> PackedMasks:
    """Boolean (..., N) masks or PackedMasks -> PackedMasks (packing booleans once)."""
    if isinstance(masks, PackedMasks):
        return masks
    if hasattr(masks, "bits") and isinstance(masks.bits, PackedMasks):  # a MaskGroup
        return masks.bits
    return PackedMasks.pack(masks)
