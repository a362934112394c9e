"""Compiled kernels (numba) that turn missed columns into exact flash requests.

Speed shortcut, pinned by benchmarks/bench_simulator.py and checked against a plain-Python
reference (tests/test_flash_reads.py): one pass over a transfer's packed miss words, run by
run, in flash order. Everything here is integer arithmetic on bit offsets, so the counts are
exact whatever the slot (bundle) and page sizes; the module docstring of flash_reads.py says
what a request is.
"""
from __future__ import annotations

import numpy as np

from memsim.core.bitops import trailing_zeros
from memsim.core.jit import kernel

ONE = np.uint64(1)
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@kernel
def _walk_runs(words: np.ndarray, lo: int, hi: int, first_unit: np.ndarray,
               last_unit: np.ndarray, gap_units: int, short_units: int,
               out: np.ndarray) -> None:
    """Requests of the set bits of words[lo:hi] (flash order): runs of slots, mapped to the
    units (pages) they span, joined when they touch, share a unit or lie within gap_units.
    out = (requests, units, short requests (<= short_units), units of the other requests).

    Speed shortcut: one pass, counters in registers (a tuple the helpers below return; numba
    inlines them), a run found with two trailing-zero counts; a request is closed when the
    next run cannot join it."""
    zero = np.int64(0)
    counts = (zero, zero, zero, zero)
    cur_first, cur_last = -1, -1
    run_start, run_end = -1, -2
    for k in range(lo, hi):
        x = words[k]
        base = k * 64
        while x != 0:
            tz = np.int64(trailing_zeros(x))
            ones = ~(x >> np.uint64(tz))
            length = 64 - tz if ones == 0 else np.int64(trailing_zeros(ones))
            start = base + tz
            top = tz + length
            x = np.uint64(0) if top >= 64 else x & (ALL << np.uint64(top))
            if start == run_end + 1:  # the run goes on from the previous word
                run_end = start + length - 1
                continue
            if run_end >= 0:
                cur_first, cur_last, counts = _add_run(
                    first_unit[run_start], last_unit[run_end], cur_first, cur_last,
                    gap_units, short_units, counts)
            run_start, run_end = start, start + length - 1
    if run_end >= 0:
        cur_first, cur_last, counts = _add_run(first_unit[run_start], last_unit[run_end],
                                               cur_first, cur_last, gap_units, short_units,
                                               counts)
    out[0], out[1], out[2], out[3] = _close(cur_first, cur_last, short_units, counts)


@kernel
def _add_run(first: int, last: int, cur_first: int, cur_last: int, gap_units: int,
             short_units: int, counts: tuple) -> tuple:
    """Join the run of units first..last to the open request cur_first..cur_last (none when
    cur_last < 0), or close that request and open one: (cur_first, cur_last, counts)."""
    if cur_last >= 0 and first <= cur_last + 1 + gap_units:
        return cur_first, max(cur_last, last), counts
    return first, last, _close(cur_first, cur_last, short_units, counts)


@kernel
def _close(cur_first: int, cur_last: int, short_units: int, counts: tuple) -> tuple:
    """`counts` with the request cur_first..cur_last added (unchanged when cur_last < 0)."""
    n_req, n_units, n_short, long_units = counts
    if cur_last < 0:
        return counts
    size = cur_last - cur_first + 1
    if size <= short_units:
        return n_req + 1, n_units + size, n_short + 1, long_units
    return n_req + 1, n_units + size, n_short, long_units + size


@kernel
def transfer_stats(words: np.ndarray, num_layers: int, pos: np.ndarray, slot_bits: int,
                   unit_bits: int, gap_units: int, short_units: int, out: np.ndarray) -> None:
    """Per row r of `words` (R, W) (token r // L, layer r % L; model-order columns), write
    out[r] = (requests, device units, requests of at most `short_units` units (they cost the
    per-request floor), units of the other requests).

    `pos` (L, N) gives each column's flash slot; an empty `pos` means model order. Columns are
    scattered into flash order one set bit at a time, so the cost follows the misses.
    """
    R, W = words.shape
    identity = pos.shape[0] == 0
    scratch = np.zeros(W, np.uint64)
    # Speed shortcut: each slot's first and last unit, looked up instead of two integer
    # divisions per run (exact: the same floor divisions, done once per slot).
    slots = np.arange(W * 64, dtype=np.int64)
    first_unit = (slots * slot_bits) // unit_bits
    last_unit = ((slots + 1) * slot_bits - 1) // unit_bits
    for r in range(R):
        if identity:
            _walk_runs(words[r], 0, W, first_unit, last_unit, gap_units, short_units, out[r])
        else:
            layer_pos = pos[r % num_layers]
            lo, hi = W, 0
            for k in range(W):
                x = words[r, k]
                while x != 0:
                    tz = np.int64(trailing_zeros(x))
                    p = layer_pos[k * 64 + tz]
                    w = p >> 6
                    scratch[w] |= ONE << np.uint64(p & 63)
                    lo, hi = min(lo, w), max(hi, w + 1)
                    x &= x - ONE
            _walk_runs(scratch, lo, hi, first_unit, last_unit, gap_units, short_units, out[r])
            if hi > lo:
                scratch[lo:hi] = 0


@kernel
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
                tz = np.int64(trailing_zeros(x))
                p = k * 64 + tz if identity else pos[layer, k * 64 + tz]
                scratch[p >> 6] |= ONE << np.uint64(p & 63)
                x &= x - ONE
        cur_first, cur_last = -1, -1
        for k in range(W):
            x = scratch[k]
            scratch[k] = 0
            while x != 0:
                tz = np.int64(trailing_zeros(x))
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


@kernel
def _mark_covered(first: int, last: int, slot_bits: int, unit_bits: int, num_columns: int,
                  layer: int, identity: bool, order: np.ndarray, out: np.ndarray) -> None:
    """Set (in model order) the slots lying wholly inside units first..last."""
    lo = -(-(first * unit_bits) // slot_bits)
    hi = min(((last + 1) * unit_bits) // slot_bits, num_columns)
    for s in range(lo, hi):
        c = s if identity else order[layer, s]
        out[layer, c >> 6] |= ONE << np.uint64(c & 63)
