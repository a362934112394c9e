"""Compiled kernels (numba) that turn missed columns into exact flash requests.

Speed shortcut, pinned by benchmarks/bench_simulator.py and checked against a plain-Python
reference (tests/test_flash_reads.py): one pass over a transfer's packed miss words, run by
run, in flash order. Everything here is integer arithmetic on bit offsets, so the counts are
exact whatever the slot (bundle) and page sizes; the module docstring of flash_reads.py says
what a request is.
"""
from __future__ import annotations

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

ONE = np.uint64(1)
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def _close(first: int, last: int, per_unit_s: float, min_s: float, acc: np.ndarray) -> None:
    """Account one request of units [first, last]: acc = requests, units, small, large units."""
    size = last - first + 1
    acc[0] += 1
    acc[1] += size
    if size * per_unit_s <= min_s:  # a short request costs the per-request floor (IOPS)
        acc[2] += 1
    else:
        acc[3] += size


@numba.njit(cache=True, nogil=True)
def _walk_runs(words: np.ndarray, lo: int, hi: int, slot_bits: int, unit_bits: int,
               gap_units: int, per_unit_s: float, min_s: float, acc: np.ndarray) -> None:
    """Requests of the set bits of words[lo:hi] (flash order): runs of slots, mapped to the
    units (pages) they span, joined when they touch, share a unit or lie within gap_units."""
    cur_first, cur_last = -1, -1
    run_start, run_end = -1, -2
    for k in range(lo, hi):
        x = words[k]
        base = k * 64
        while x != 0:
            tz = trailing_zeros(x)
            ones = ~(x >> np.uint64(tz))
            length = 64 - tz if ones == 0 else trailing_zeros(ones)
            start = base + tz
            if start == run_end + 1:  # the run goes on from the previous word
                run_end = start + length - 1
            else:
                if run_end >= 0:
                    cur_first, cur_last = _add_run(run_start, run_end, slot_bits, unit_bits,
                                                   gap_units, cur_first, cur_last, per_unit_s,
                                                   min_s, acc)
                run_start, run_end = start, start + length - 1
            top = tz + length
            x = np.uint64(0) if top >= 64 else x & ~((ONE << np.uint64(top)) - ONE)
    if run_end >= 0:
        cur_first, cur_last = _add_run(run_start, run_end, slot_bits, unit_bits, gap_units,
                                       cur_first, cur_last, per_unit_s, min_s, acc)
    if cur_last >= 0:
        _close(cur_first, cur_last, per_unit_s, min_s, acc)


@numba.njit(cache=True, nogil=True)
def _add_run(a: int, b: int, slot_bits: int, unit_bits: int, gap_units: int, cur_first: int,
             cur_last: int, per_unit_s: float, min_s: float, acc: np.ndarray):
    """Slots a..b join the open request or close it and open a new one."""
    first = (a * slot_bits) // unit_bits
    last = ((b + 1) * slot_bits - 1) // unit_bits
    if cur_last >= 0 and first <= cur_last + 1 + gap_units:
        return cur_first, max(cur_last, last)
    if cur_last >= 0:
        _close(cur_first, cur_last, per_unit_s, min_s, acc)
    return first, last


@numba.njit(cache=True, nogil=True)
def transfer_stats(words: np.ndarray, num_layers: int, pos: np.ndarray, slot_bits: int,
                   unit_bits: int, gap_units: int, per_unit_s: float, min_s: float,
                   out: np.ndarray) -> None:
    """Per row r of `words` (R, W) (token r // L, layer r % L; model-order columns), write
    out[r] = (requests, device units, short requests, units of the other requests).

    `pos` (L, N) gives each column's flash slot; an empty `pos` means model order. Columns are
    scattered into flash order one set bit at a time, so the cost follows the misses.
    """
    R, W = words.shape
    identity = pos.shape[0] == 0
    scratch = np.zeros(W, np.uint64)
    acc = np.zeros(4, np.int64)
    for r in range(R):
        acc[:] = 0
        if identity:
            _walk_runs(words[r], 0, W, slot_bits, unit_bits, gap_units, per_unit_s, min_s, acc)
        else:
            layer_pos = pos[r % num_layers]
            lo, hi = W, 0
            for k in range(W):
                x = words[r, k]
                while x != 0:
                    tz = trailing_zeros(x)
                    p = layer_pos[k * 64 + tz]
                    w = p >> 6
                    scratch[w] |= ONE << np.uint64(p & 63)
                    lo, hi = min(lo, w), max(hi, w + 1)
                    x &= x - ONE
            if hi > lo:
                _walk_runs(scratch, lo, hi, slot_bits, unit_bits, gap_units, per_unit_s, min_s,
                           acc)
                scratch[lo:hi] = 0
        out[r, 0], out[r, 1], out[r, 2], out[r, 3] = acc[0], acc[1], acc[2], acc[3]


@numba.njit(cache=True, nogil=True)
def arrived_slots(words: np.ndarray, pos: np.ndarray, order: np.ndarray, num_columns: int,
                  slot_bits: int, unit_bits: int, gap_units: int, out: np.ndarray) -> None:
    """Per layer l, out[l] (model-order words) = columns whose slots lie wholly inside the
    units read for the misses words[l] (the requests of `transfer_stats`): the misses
    themselves plus what shares their pages or sits in a merged gap.

    `pos` (L, N) column -> slot and `order` (L, N) slot -> column (both empty: model order).
    """
    L, W = words.shape
    identity = pos.shape[0] == 0
    scratch = np.zeros(W, np.uint64)
    for layer in range(L):
        out[layer, :] = 0
        for k in range(W):
            x = words[layer, k]
            while x != 0:
                tz = trailing_zeros(x)
                p = k * 64 + tz if identity else pos[layer, k * 64 + tz]
                scratch[p >> 6] |= ONE << np.uint64(p & 63)
                x &= x - ONE
        cur_first, cur_last = -1, -1
        for k in range(W):
            x = scratch[k]
            scratch[k] = 0
            while x != 0:
                tz = trailing_zeros(x)
                s = k * 64 + tz
                first = (s * slot_bits) // unit_bits
                last = ((s + 1) * slot_bits - 1) // unit_bits
                if cur_last >= 0 and first <= cur_last + 1 + gap_units:
                    cur_last = max(cur_last, last)
                else:
                    if cur_last >= 0:
                        _mark_covered(cur_first, cur_last, slot_bits, unit_bits, num_columns,
                                      layer, identity, order, out)
                    cur_first, cur_last = first, last
                x &= x - ONE
        if cur_last >= 0:
            _mark_covered(cur_first, cur_last, slot_bits, unit_bits, num_columns, layer,
                          identity, order, out)


@numba.njit(cache=True, nogil=True)
def _mark_covered(first: int, last: int, slot_bits: int, unit_bits: int, num_columns: int,
                  layer: int, identity: bool, order: np.ndarray, out: np.ndarray) -> None:
    """Set (in model order) the slots lying wholly inside units first..last."""
    lo = -(-(first * unit_bits) // slot_bits)
    hi = min(((last + 1) * unit_bits) // slot_bits, num_columns)
    for s in range(lo, hi):
        c = s if identity else order[layer, s]
        out[layer, c >> 6] |= ONE << np.uint64(c & 63)
