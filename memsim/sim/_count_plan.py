"""Tables that let the compiled request counting work a word at a time (_flash_kernels.py).

A transfer's requests are a function of which flash slots it reads (memsim/sim/flash_reads.py
says what a request is). Slot a covers units fu(a) = a*slot // unit .. lu(a) =
((a+1)*slot - 1) // unit; both grow by the same amount every `period` slots, so everything
below is a small table repeated along the region. Three ways to count, chosen once per
geometry, all exact (tests/test_flash_reads.py checks each against a plain-Python reference):
  * SLOT: a slot holds a whole unit of its own that no neighbour touches (so two runs of slots
    never share a unit and no gap of one slot is read through) and every single slot is already
    longer than `short_units`: requests are the runs of slots, all of them long, and the units
    a run covers are sums of per-slot increments read off with masks and popcounts
    (Phi-3-Medium up/gate bundles of 17.5 KiB; byte-addressable flash);
  * PAGE: the unit ("page") bitmap is built from the slot bitmap a chunk of slots at a time
    through a lookup table, then short gaps are closed and runs measured with shifts, adds
    and popcounts (slots smaller than a page: W_down columns);
  * WALK: run by run over the slots (any geometry; the reference design, slowest).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

SLOT, PAGE, WALK = 0, 1, 2
MAX_TABLE_ENTRIES = 1 << 17  # chunk tables stay within ~1 MB (fast, cache-resident)
MAX_WINDOW = 64  # E_k windows and closings handle runs up to one word ahead
MAX_SLOT_PHASES = 64
MAX_PERIOD = 1 << 16  # geometries whose pattern repeats less often are walked
MAX_VALUES = 8
REVERSE_WINDOW = 12  # arrived columns: a chunk's units looked up at most 12 bits at a time


def _u64() -> np.ndarray:
    return np.zeros((0, 0), np.uint64)


def _u16() -> np.ndarray:
    return np.zeros((0, 0), np.uint16)


def _i64() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass(frozen=True)
class CountPlan:
    """Which counting path a geometry takes and the tables that path reads."""

    path: int
    num_units: int  # units the region spans (pages, or bits on byte-addressable flash)
    # SLOT: per word phase, masks of slots whose unit increments take each value
    word_phases: int = 1
    inc_base: int = 0  # every set slot adds this many units ...
    inc_values: np.ndarray = field(default_factory=_i64)  # ... plus lu(a) - lu(a-1) - base
    inc_masks: np.ndarray = field(default_factory=_u64)  # (word_phases, len(inc_values))
    start_values: np.ndarray = field(default_factory=_i64)  # lu(a-1) - fu(a) + 1 (a run's first slot)
    start_masks: np.ndarray = field(default_factory=_u64)
    # PAGE: chunk j of `chunk_slots` slots ORs table[j % phases][its bits] in at unit
    # (j // phases) * period_units + chunk_base[j % phases]
    chunk_slots: int = 0
    chunk_phases: int = 1
    period_units: int = 0
    chunk_base: np.ndarray = field(default_factory=_i64)
    chunk_table: np.ndarray = field(default_factory=_u64)
    narrow_table: np.ndarray = field(default_factory=_u16)  # the same, when 16 bits wide
    # PAGE, arrived columns: a chunk of `rev_slots` slots reads `rev_width` units at
    # (j // rev_phases) * rev_period + rev_base[j % rev_phases]; rev_table[phase][those
    # units] = the chunk's slots lying wholly inside read units (rev_slots 0: slot by slot)
    rev_slots: int = 0
    rev_phases: int = 1
    rev_period: int = 0
    rev_base: np.ndarray = field(default_factory=_i64)
    rev_table: np.ndarray = field(default_factory=_u64)
    slot_first: np.ndarray = field(default_factory=_i64)  # (N,) fu(a) for the slot-by-slot fallback
    slot_last: np.ndarray = field(default_factory=_i64)


def _fu(a, slot_bits: int, unit_bits: int):
    return (np.asarray(a, np.int64) * slot_bits) // unit_bits


def _lu(a, slot_bits: int, unit_bits: int):
    return ((np.asarray(a, np.int64) + 1) * slot_bits - 1) // unit_bits


@lru_cache(maxsize=64)
def count_plan(num_columns: int, slot_bits: int, unit_bits: int, gap_units: int,
               short_units: int) -> CountPlan:
    """The fastest exact path for this geometry, with its tables (cached: a sweep asks for the
    same few geometries again and again; callers never modify the tables)."""
    num_units = int(_lu(num_columns - 1, slot_bits, unit_bits)) + 1
    period = unit_bits // math.gcd(slot_bits, unit_bits)  # slots after which the pattern repeats
    if period > MAX_PERIOD:
        return CountPlan(WALK, num_units)
    a = np.arange(period, dtype=np.int64)
    fu, lu, lu_prev = (_fu(a, slot_bits, unit_bits), _lu(a, slot_bits, unit_bits),
                       _lu(a - 1, slot_bits, unit_bits))
    own_unit = _fu(a + 1, slot_bits, unit_bits) - lu_prev - 1  # units no neighbour touches
    if (own_unit > min(gap_units, 1 << 62)).all() and (lu - fu + 1 > short_units).all():
        plan = _slot_plan(num_units, period, lu - lu_prev, lu_prev - fu + 1)
        if plan is not None:
            return plan
    if unit_bits > 1:
        plan = _page_plan(num_columns, num_units, slot_bits, unit_bits)
        if plan is not None:
            return plan
    return CountPlan(WALK, num_units)


def _slot_plan(num_units: int, period: int, inc: np.ndarray, start: np.ndarray):
    """Masks of the slots of a word by increment value, one set per word phase: the least
    value of `inc` goes to `inc_base` (times all set slots), zero `start` values need no mask."""
    word_phases = period // math.gcd(64, period)
    inc_base = int(inc.min())
    values = [np.setdiff1d(np.unique(inc), [inc_base]), np.setdiff1d(np.unique(start), [0])]
    if word_phases > MAX_SLOT_PHASES or max(len(v) for v in values) > MAX_VALUES:
        return None
    masks = []
    for per_slot, vals in zip((inc, start), values):
        m = np.zeros((word_phases, len(vals)), np.uint64)
        for ph in range(word_phases):
            slots = (ph * 64 + np.arange(64)) % period
            for v, val in enumerate(vals):
                bits = np.flatnonzero(per_slot[slots] == val)
                m[ph, v] = np.bitwise_or.reduce(np.left_shift(np.uint64(1), bits.astype(np.uint64)),
                                                initial=np.uint64(0))
        masks.append(m)
    return CountPlan(SLOT, num_units, word_phases, inc_base,
                     (values[0] - inc_base).astype(np.int64), masks[0],
                     values[1].astype(np.int64), masks[1])


def _chunk_geometry(chunk: int, slot_bits: int, unit_bits: int):
    """(phases, period units, base unit and width of each phase's chunk)."""
    phases = unit_bits // math.gcd(chunk * slot_bits, unit_bits)
    j = np.arange(phases, dtype=np.int64)
    base = _fu(j * chunk, slot_bits, unit_bits)
    width = _lu(j * chunk + chunk - 1, slot_bits, unit_bits) - base + 1
    period_units = phases * chunk * slot_bits // unit_bits
    return phases, period_units, base, width


def _page_plan(num_columns: int, num_units: int, slot_bits: int, unit_bits: int):
    """Chunk tables (slots -> units touched) and reverse tables (units read -> slots inside)."""
    for chunk in (16, 8, 4, 2, 1):
        phases, period_units, base, width = _chunk_geometry(chunk, slot_bits, unit_bits)
        if width.max() <= 64 and phases << chunk <= MAX_TABLE_ENTRIES:
            break
    else:
        return None
    table = np.zeros((phases, 1 << chunk), np.uint64)
    for i in range(chunk):  # entries with bit i set = entries below 2**i | slot i's units
        s = np.arange(phases, dtype=np.int64) * chunk + i
        first = _fu(s, slot_bits, unit_bits) - base
        last = _lu(s, slot_bits, unit_bits) - base
        span = np.array([_ones(int(f), int(l)) for f, l in zip(first, last)], np.uint64)
        table[:, 1 << i:2 << i] = table[:, :1 << i] | span[:, None]
    rev = _reverse_plan(slot_bits, unit_bits)
    slot_first = _fu(np.arange(num_columns), slot_bits, unit_bits)
    slot_last = _lu(np.arange(num_columns), slot_bits, unit_bits)
    narrow = table.astype(np.uint16) if width.max() <= 16 else _u16()
    return CountPlan(PAGE, num_units, chunk_slots=chunk, chunk_phases=phases,
                     period_units=period_units, chunk_base=base, chunk_table=table,
                     narrow_table=narrow, **rev,
                     slot_first=slot_first, slot_last=slot_last)


def _reverse_plan(slot_bits: int, unit_bits: int) -> dict:
    """Tables for arrived columns, or rev_slots 0 (slot by slot) where none is small."""
    for chunk in (16, 8, 4, 2, 1):
        phases, period_units, base, width = _chunk_geometry(chunk, slot_bits, unit_bits)
        if width.max() <= REVERSE_WINDOW and phases << REVERSE_WINDOW <= MAX_TABLE_ENTRIES:
            break
    else:
        return {}
    table = np.zeros((phases, 1 << REVERSE_WINDOW), np.uint64)
    window = np.arange(1 << REVERSE_WINDOW, dtype=np.uint64)
    for ph in range(phases):
        for i in range(chunk):
            s = ph * chunk + i
            need = np.uint64(_ones(int(_fu(s, slot_bits, unit_bits) - base[ph]),
                                   int(_lu(s, slot_bits, unit_bits) - base[ph])))
            table[ph] |= np.where(window & need == need, np.uint64(1) << np.uint64(i),
                                  np.uint64(0))
    return {"rev_slots": chunk, "rev_phases": phases, "rev_period": period_units,
            "rev_base": base, "rev_table": table}


def _ones(first: int, last: int) -> int:
    """Bits first..last set."""
    return ((1 << (last - first + 1)) - 1) << first
