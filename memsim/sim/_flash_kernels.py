"""Compiled kernels (numba) that turn missed columns into exact flash requests.

Speed shortcut, pinned by benchmarks/bench_simulator.py and checked against a plain-Python
reference over explicit unit sets (tests/test_flash_reads.py). Per transfer (one row of
packed miss words, model order) the columns are put in flash order (one set bit at a time,
only with a layout), then counted by the path memsim/sim/_count_plan.py chose:
  * SLOT: requests are runs of slots; popcounts of the run starts and of per-slot unit
    increments (masks by value) give requests and units a word at a time;
  * PAGE: a unit ("page") bitmap is ORed together from chunk tables, gaps of at most
    `gap_units` between touched units are closed (zero runs found with shifted ANDs, filled
    with one add per word), and runs of more than `short_units` units are found the same way;
  * WALK: run by run, in flash order (any geometry).
Everything is integer arithmetic on bit offsets, so the counts are exact whatever the slot
(bundle) and page sizes; the module docstring of flash_reads.py says what a request is.
"""
from __future__ import annotations

import numpy as np

from memsim.core.bitops import popcount, trailing_zeros
from memsim.core.jit import kernel

ONE = np.uint64(1)
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
SLOT, PAGE, WALK = 0, 1, 2  # memsim/sim/_count_plan.py
SMALL_WINDOW = 16  # windows up to this many bits: shifted ANDs per word, no extra pass
SPARSE_SAMPLE_WORDS = 16  # words a row's density is estimated from
# ints: the plan's integers, in this order (flash_reads.py packs them)
I_PATH, I_UNITS, I_WORD_PHASES, I_CHUNK, I_CHUNK_PHASES, I_PERIOD, I_REV, I_REV_PHASES, \
    I_REV_PERIOD, I_INC_BASE = range(10)


@kernel
def _pop(x) -> np.int64:
    return np.int64(popcount(x))


# ----- WALK: run by run ---------------------------------------------------------------------

@kernel
def _walk_runs(words: np.ndarray, lo: int, hi: int, first_unit: np.ndarray,
               last_unit: np.ndarray, gap_units: int, short_units: int,
               out: np.ndarray) -> None:
    """Requests of the set bits of words[lo:hi] (flash order): runs of slots, mapped to the
    units (pages) they span, joined when they touch, share a unit or lie within gap_units.
    out = (requests, units, short requests (<= short_units), units of the other requests)."""
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


# ----- SLOT: runs of slots, a word at a time ------------------------------------------------

@kernel
def _slot_counts(x: np.ndarray, lo: int, hi: int, word_phases: int, inc_base: int,
                 inc_values: np.ndarray, inc_masks: np.ndarray, start_values: np.ndarray,
                 start_masks: np.ndarray, out: np.ndarray) -> None:
    """Requests (runs of slots, all long) and their units: a run a..b covers
    sum(lu(i) - lu(i-1), i = a..b) + lu(a-1) - fu(a) + 1 units, each term a per-slot value
    read off with one mask per value (past `inc_base`). Word lo-1 is empty (a row, or a
    scattered range)."""
    prev_top = np.uint64(0)
    requests, units = np.int64(0), np.int64(0)
    ph = lo % word_phases
    for k in range(lo, hi):
        v = x[k]
        if v != 0:
            starts = v & ~((v << ONE) | prev_top)
            requests += _pop(starts)
            units += inc_base * _pop(v)
            for d in range(inc_values.shape[0]):
                units += inc_values[d] * _pop(v & inc_masks[ph, d])
            for d in range(start_values.shape[0]):
                units += start_values[d] * _pop(starts & start_masks[ph, d])
        prev_top = v >> np.uint64(63)
        ph += 1
        if ph == word_phases:
            ph = 0
    out[0], out[1], out[2], out[3] = requests, units, 0, units


# ----- PAGE: a unit bitmap, closed and measured a word at a time ----------------------------

@kernel
def _or_at(bits: np.ndarray, offset: int, mask: np.uint64) -> None:
    """bits |= mask << offset (mask at most 64 bits wide)."""
    k, sh = offset >> 6, np.uint64(offset & 63)
    bits[k] |= mask << sh
    if sh != 0:
        bits[k + 1] |= mask >> (np.uint64(64) - sh)


@kernel
def _build_units(x: np.ndarray, lo: int, hi: int, num_columns: int, ints: np.ndarray,
                 chunk_base: np.ndarray, chunk_table: np.ndarray, narrow_table: np.ndarray,
                 units: np.ndarray) -> None:
    """units (zeroed) |= every unit the set slots of x[lo:hi] touch, one table entry per
    chunk of `chunk` slots.

    Speed shortcut: chunks come in increasing unit order, so the two words a chunk's entry
    can touch stay in registers (`low` = word k, `high` = word k + 1) until the chunks move
    past them; one table lookup, two shifts and two ORs per chunk."""
    chunk, phases, period = ints[I_CHUNK], ints[I_CHUNK_PHASES], ints[I_PERIOD]
    if phases == 1 and narrow_table.shape[0] == 1:  # 2-byte entries: a quarter of the cache
        _append_units(x, lo, hi, num_columns, chunk, period, narrow_table, units)
        return
    if phases == 1:
        _append_units(x, lo, hi, num_columns, chunk, period, chunk_table, units)
        return
    per_word = 64 // chunk
    cmask = (ONE << np.uint64(chunk)) - ONE
    j = lo * per_word
    ph, rep = j % phases, j // phases
    o = rep * period + chunk_base[ph]
    k, low, high = o >> 6, np.uint64(0), np.uint64(0)
    last = (num_columns - 1) // chunk + 1  # chunks past the region hold no set bit: their
    # units would lie past the buffer
    for w in range(lo, hi):
        v = x[w]
        for q in range(min(per_word, last - (w * per_word))):
            while (o >> 6) > k:
                units[k] = low
                low, high = high, np.uint64(0)
                k += 1
            m = chunk_table[ph, (v >> np.uint64(q * chunk)) & cmask]
            sh = np.uint64(o & 63)
            low |= m << sh
            high |= (m >> ONE) >> (np.uint64(63) - sh)  # sh = 0: nothing spills
            if phases == 1:
                o += period
            else:
                ph += 1
                if ph == phases:
                    ph = 0
                    rep += 1
                o = rep * period + chunk_base[ph]
    units[k] = low
    units[k + 1] = high


@kernel
def _append_units(x: np.ndarray, lo: int, hi: int, num_columns: int, chunk: int, period: int,
                  table: np.ndarray, units: np.ndarray) -> None:
    """_build_units where every chunk spans exactly `period` whole units (one phase): the
    entries are appended one after the other."""
    per_word = 64 // chunk
    cmask = (ONE << np.uint64(chunk)) - ONE
    last = (num_columns - 1) // chunk + 1
    o = lo * per_word * period
    k, fill, acc = o >> 6, o & 63, np.uint64(0)
    # Speed shortcut: a slot word's four entries joined (independent lookups) and appended at
    # once. The append is written out twice on purpose: as a helper returning (k, fill, acc)
    # numba made the whole build ~4x slower (measured, benchmarks/bench_simulator.py).
    if chunk == 16 and 4 * period <= 64:
        wide_hi = hi if hi * per_word <= last else hi - 1
        width = 4 * period
        p1, p2, p3 = np.uint64(period), np.uint64(2 * period), np.uint64(3 * period)
        m16 = np.uint64(0xFFFF)
        for w in range(lo, wide_hi):
            v = x[w]
            m = (np.uint64(table[0, v & m16])
                 | (np.uint64(table[0, (v >> np.uint64(16)) & m16]) << p1)
                 | (np.uint64(table[0, (v >> np.uint64(32)) & m16]) << p2)
                 | (np.uint64(table[0, v >> np.uint64(48)]) << p3))
            acc |= m << np.uint64(fill)
            fill += width
            if fill >= 64:
                units[k] = acc
                k += 1
                fill -= 64
                acc = m >> np.uint64(width - fill) if fill > 0 else np.uint64(0)
        lo = wide_hi
    for w in range(lo, hi):
        v = x[w]
        for q in range(min(per_word, last - w * per_word)):
            m = np.uint64(table[0, (v >> np.uint64(q * chunk)) & cmask])
            acc |= m << np.uint64(fill)
            fill += period
            if fill >= 64:
                units[k] = acc
                k += 1
                fill -= 64
                acc = m >> np.uint64(period - fill) if fill > 0 else np.uint64(0)
    units[k] = acc


@kernel
def _shifted(cur: np.uint64, nxt: np.uint64, d: int) -> np.uint64:
    """Bits d.. of the two-word value (cur, nxt), 1 <= d <= 63."""
    return (cur >> np.uint64(d)) | (nxt << np.uint64(64 - d))


@kernel
def _windows(src: np.ndarray, dst: np.ndarray, a: int, n: int, k: int) -> None:
    """dst[i] bit b = bits b..b+k-1 of src all set (1 <= k <= 64), for words a <= i < n - 1;
    word n - 1 is padding and copied (all-zero or all-one padding gives the right answer)."""
    for i in range(a, n):
        dst[i] = src[i]
    have = 1
    while have * 2 <= k:  # in place, low word first: dst[i + 1] is still the shorter window
        for i in range(a, n - 1):
            dst[i] &= _shifted(dst[i], dst[i + 1], have)
        have *= 2
    if k > have:
        for i in range(a, n - 1):
            dst[i] &= _shifted(dst[i], dst[i + 1], k - have)


@kernel
def _window_at(cur: np.uint64, nxt: np.uint64, k: int) -> np.uint64:
    """Bit b = bits b..b+k-1 of the two-word value (cur, nxt) all set (1 <= k <= 64)."""
    out = cur
    for d in range(1, k):
        out &= _shifted(cur, nxt, d)
    return out


@kernel
def _close_gaps(units: np.ndarray, a: int, n: int, gap: int, zeros: np.ndarray,
                wide: np.ndarray) -> None:
    """Fill every run of at most `gap` (1..63) zero units lying between two set units
    (words a..n-1 in use, word a - 1 empty, word n - 1 padding)."""
    fused = gap < SMALL_WINDOW
    if not fused:
        for i in range(a, n):
            zeros[i] = ~units[i]
        _windows(zeros, wide, a, n, gap + 1)  # wide: a zero run of more than `gap` starts
    prev_top, carry = np.uint64(0), np.uint64(0)
    for i in range(a, n - 1):
        c, z = units[i], ~units[i]
        far = _window_at(z, ~units[i + 1], gap + 1) if fused else wide[i]
        gap_starts = z & ((c << ONE) | prev_top) & ~far
        prev_top = c >> np.uint64(63)
        s1 = z + gap_starts  # the add runs through each chosen zero run and stops after it
        s2 = s1 + carry
        carry = ONE if (s1 < z) or (s2 < s1) else np.uint64(0)
        units[i] = c | (z & ~s2)


@kernel
def _close_walk(units: np.ndarray, a: int, n: int, gap: int) -> None:
    """As _close_gaps for any gap (64 units or more, or 'merge everything')."""
    last = -1
    for k in range(a, n):
        x = units[k]
        while x != 0:
            tz = np.int64(trailing_zeros(x))
            start = k * 64 + tz
            ones = ~(x >> np.uint64(tz))
            length = 64 - tz if ones == 0 else np.int64(trailing_zeros(ones))
            top = tz + length
            x = np.uint64(0) if top >= 64 else x & (ALL << np.uint64(top))
            if last >= 0 and start > last + 1 and start - last - 1 <= gap:
                for b in range(last + 1, start):
                    units[b >> 6] |= ONE << np.uint64(b & 63)
            last = start + length - 1


@kernel
def _measure(units: np.ndarray, a: int, n: int, short_units: int, wide: np.ndarray,
             out: np.ndarray) -> None:
    """(requests, units, short requests, units of long ones) of the runs of set units."""
    k = short_units + 1
    fused = k <= SMALL_WINDOW
    if not fused:
        _windows(units, wide, a, n, k)  # wide: a run of more than short_units starts here
    prev_top, carry = np.uint64(0), np.uint64(0)
    requests, total, long_requests, long_units = 0, 0, 0, 0
    for i in range(a, n - 1):
        c = units[i]
        starts = c & ~((c << ONE) | prev_top)
        prev_top = c >> np.uint64(63)
        requests += _pop(starts)
        total += _pop(c)
        long_starts = starts & (_window_at(c, units[i + 1], k) if fused else wide[i])
        long_requests += _pop(long_starts)
        s1 = c + long_starts  # clears each long run
        s2 = s1 + carry
        carry = ONE if (s1 < c) or (s2 < s1) else np.uint64(0)
        long_units += _pop(c & ~s2)
    out[0], out[1], out[2], out[3] = requests, total, requests - long_requests, long_units


@kernel
def _read_units(x: np.ndarray, lo: int, hi: int, num_columns: int, ints: np.ndarray,
                tabs: tuple, gap_units: int, units: np.ndarray, zeros: np.ndarray,
                wide: np.ndarray) -> tuple:
    """units = the units the requests of x[lo:hi] read (touched, gaps closed); returns the
    words (a, n) in use: the units of slots lo*64.. and one padding word (n - 1)."""
    first_slot, last_slot = tabs[8], tabs[9]
    a = first_slot[lo * 64] >> 6
    n = (last_slot[min(hi * 64, num_columns) - 1] >> 6) + 3
    units[a:n] = 0
    _build_units(x, lo, hi, num_columns, ints, tabs[4], tabs[5], tabs[10], units)
    if 1 <= gap_units <= 63:
        _close_gaps(units, a, n, gap_units, zeros, wide)
    elif gap_units > 63:
        _close_walk(units, a, n, gap_units)
    return a, n


# ----- per transfer ------------------------------------------------------------------------

@kernel
def _flash_order(words: np.ndarray, r: int, pos: np.ndarray, scratch: np.ndarray) -> tuple:
    """Scatter row r's columns into their flash slots: (lo, hi) words of scratch in use."""
    W = words.shape[1]
    lo, hi = W, 0
    for k in range(W):
        x = words[r, k]
        while x != 0:
            p = pos[k * 64 + np.int64(trailing_zeros(x))]
            w = p >> 6
            scratch[w] |= ONE << np.uint64(p & 63)
            lo, hi = min(lo, w), max(hi, w + 1)
            x &= x - ONE
    return lo, hi


@kernel
def _trim(x: np.ndarray, lo: int, hi: int) -> tuple:
    """(lo, hi) narrowed to the first and last non-empty words (hi <= lo: none)."""
    while lo < hi and x[lo] == 0:
        lo += 1
    while hi > lo and x[hi - 1] == 0:
        hi -= 1
    return lo, hi


@kernel
def _sparse(x: np.ndarray, lo: int, hi: int, first_slot: np.ndarray,
            last_slot: np.ndarray) -> bool:
    """Fewer set slots than about twice the unit words they span, estimated from the first
    words (tuned on Phi-3-Medium rows: below that, walking the runs is faster than building
    and scanning the unit bitmap; both are exact, so the estimate only decides the speed)."""
    span = (last_slot[min(hi * 64, first_slot.shape[0]) - 1] >> 6) - (first_slot[lo * 64] >> 6)
    sample = min(hi - lo, SPARSE_SAMPLE_WORDS)
    bits = 0
    for k in range(lo, lo + sample):
        bits += _pop(x[k])
    return bits * (hi - lo) <= 2 * (span + 1) * sample


@kernel
def _count_units(x: np.ndarray, lo: int, hi: int, num_columns: int, short_units: int,
                 gap_units: int, ints: np.ndarray, tabs: tuple, first_unit: np.ndarray,
                 last_unit: np.ndarray, units: np.ndarray, zeros: np.ndarray,
                 wide: np.ndarray, out: np.ndarray) -> None:
    """PAGE: the unit bitmap of x[lo:hi], closed, then measured."""
    a, n = _read_units(x, lo, hi, num_columns, ints, tabs, gap_units, units, zeros, wide)
    if short_units < 64:
        _measure(units, a, n, short_units, wide, out)
    else:
        _walk_runs(units, a, n, first_unit, last_unit, 0, short_units, out)


@kernel
def transfer_stats(words: np.ndarray, num_layers: int, pos: np.ndarray, num_columns: int,
                   slot_bits: int, unit_bits: int, gap_units: int, short_units: int,
                   ints: np.ndarray, tabs: tuple, out: np.ndarray) -> None:
    """Per row r of `words` (R, W) (token r // L, layer r % L; model-order columns), write
    out[r] = (requests, device units, requests of at most `short_units` units (they cost the
    per-request floor), units of the other requests).

    `pos` (L, N) gives each column's flash slot; an empty `pos` means model order.
    `ints`/`tabs`: the counting plan (flash_reads.plan_arrays).
    """
    R, W = words.shape
    identity = pos.shape[0] == 0
    scratch = np.zeros(W, np.uint64)
    path = ints[I_PATH]
    n_units = (ints[I_UNITS] + 63) // 64 + 2
    units, zeros, wide = _buffers(n_units)
    first_unit, last_unit = _walk_tables(path, W, n_units, slot_bits, unit_bits)
    # Speed shortcut: the path is chosen in this loop and the tables unpacked once, so a row
    # walked run by run costs what it cost before the other paths existed (a call taking
    # the whole plan costs ~0.2 us per row: numba passes every array field by field).
    word_phases, inc_base = ints[I_WORD_PHASES], ints[I_INC_BASE]
    inc_values, inc_masks, start_values, start_masks = tabs[0], tabs[1], tabs[2], tabs[3]
    slot_first, slot_last = tabs[8], tabs[9]
    for r in range(R):
        if identity:
            x, lo, hi = words[r], 0, W
        else:
            lo, hi = _flash_order(words, r, pos[r % num_layers], scratch)
            x = scratch
        row = out[r]
        if path == WALK:
            _walk_runs(x, lo, hi, first_unit, last_unit, gap_units, short_units, row)
        elif path == SLOT:
            _slot_counts(x, lo, hi, word_phases, inc_base, inc_values, inc_masks, start_values,
                         start_masks, row)
        else:
            a, b = _trim(x, lo, hi)
            if b <= a:
                row[:] = 0
            elif _sparse(x, a, b, slot_first, slot_last):  # few misses: walking their runs
                _walk_runs(x, a, b, slot_first, slot_last, gap_units, short_units, row)
            else:  # beats building the unit bitmap
                _count_units(x, a, b, num_columns, short_units, gap_units, ints, tabs,
                             first_unit, last_unit, units, zeros, wide, row)
        if not identity and hi > lo:
            scratch[lo:hi] = 0


@kernel
def _buffers(n: int) -> tuple:
    return np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.zeros(n, np.uint64)


@kernel
def _walk_tables(path: int, W: int, n_units: int, slot_bits: int, unit_bits: int) -> tuple:
    """Each slot's first and last unit for the run walk: of a slot (WALK) or of a unit
    (PAGE, measuring runs longer than a word); looked up instead of divided per run."""
    if path == WALK:
        slots = np.arange(W * 64, dtype=np.int64)
        return (slots * slot_bits) // unit_bits, ((slots + 1) * slot_bits - 1) // unit_bits
    if path == PAGE:
        same = np.arange(n_units * 64, dtype=np.int64)
        return same, same
    return np.zeros(0, np.int64), np.zeros(0, np.int64)


# ----- columns that arrive with a transfer (over-read admission) -----------------------------

@kernel
def arrived_row(words: np.ndarray, layer: int, pos: np.ndarray, order: np.ndarray,
                num_columns: int, slot_bits: int, unit_bits: int, gap_units: int,
                ints: np.ndarray, tabs: tuple, scratch: np.ndarray, units: np.ndarray,
                zeros: np.ndarray, wide: np.ndarray, out: np.ndarray) -> None:
    """out (model-order words, zeroed here) = columns whose slots lie wholly inside the units
    read for the misses words[layer] (the requests of `transfer_stats`): the misses themselves
    plus what shares their units or sits in a closed gap. `scratch` is left zeroed."""
    identity = pos.shape[0] == 0
    out[:] = 0
    path = ints[I_PATH]
    if path == SLOT:  # every slot owns a unit read only when the slot is: nothing extra
        out[:] = words[layer]
        return
    if identity:
        x, lo, hi = words[layer], 0, words.shape[1]
    else:
        lo, hi = _flash_order(words, layer, pos[layer], scratch)
        x = scratch
    lo2, hi2 = _trim(x, lo, hi)
    if hi2 <= lo2:
        return
    if path == PAGE and not _sparse(x, lo2, hi2, tabs[8], tabs[9]):
        units[:] = 0  # every chunk is looked up below, not only those near the misses
        _read_units(x, lo2, hi2, num_columns, ints, tabs, gap_units, units, zeros, wide)
        if not identity:
            scratch[lo:hi] = 0
        _slots_inside(units, layer, identity, order, num_columns, ints, tabs, out)
        return
    _arrived_walk(x, lo2, hi2, layer, identity, order, num_columns, slot_bits, unit_bits,
                  gap_units, out)
    if not identity:
        scratch[lo:hi] = 0


@kernel
def _mark(out: np.ndarray, layer: int, identity: bool, order: np.ndarray, slot: int) -> None:
    c = slot if identity else order[layer, slot]
    out[c >> 6] |= ONE << np.uint64(c & 63)


@kernel
def _slots_inside(units: np.ndarray, layer: int, identity: bool, order: np.ndarray,
                  num_columns: int, ints: np.ndarray, tabs: tuple, out: np.ndarray) -> None:
    """Mark the slots all of whose units are set: per chunk one table lookup on its units
    (rev_slots > 0), else slot by slot."""
    chunk, phases, period = ints[I_REV], ints[I_REV_PHASES], ints[I_REV_PERIOD]
    if chunk == 0:
        first, last = tabs[8], tabs[9]
        for s in range(num_columns):
            inside = True
            for b in range(first[s], last[s] + 1):
                if (units[b >> 6] >> np.uint64(b & 63)) & ONE == 0:
                    inside = False
                    break
            if inside:
                _mark(out, layer, identity, order, s)
        return
    base, table = tabs[6], tabs[7]
    window_mask = (ONE << np.uint64(12)) - ONE
    ph, rep = 0, 0
    for j in range((num_columns + chunk - 1) // chunk):
        o = rep * period + base[ph]
        k, sh = o >> 6, np.uint64(o & 63)
        window = units[k] >> sh
        if sh != 0:
            window |= units[k + 1] << (np.uint64(64) - sh)
        inside = table[ph, window & window_mask]
        first_slot = j * chunk
        if inside != 0:
            if first_slot + chunk > num_columns:  # the last chunk: slots past the region
                inside &= (ONE << np.uint64(num_columns - first_slot)) - ONE
            if identity:
                out[first_slot >> 6] |= inside << np.uint64(first_slot & 63)
            else:
                while inside != 0:
                    _mark(out, layer, identity, order,
                          first_slot + np.int64(trailing_zeros(inside)))
                    inside &= inside - ONE
        ph += 1
        if ph == phases:
            ph = 0
            rep += 1


@kernel
def _arrived_walk(x: np.ndarray, lo: int, hi: int, layer: int, identity: bool,
                  order: np.ndarray, num_columns: int, slot_bits: int, unit_bits: int,
                  gap_units: int, out: np.ndarray) -> None:
    """WALK geometries: requests joined run by run, then the slots inside each marked."""
    cur_first, cur_last = -1, -1
    for k in range(lo, hi):
        v = x[k]
        while v != 0:
            s = k * 64 + np.int64(trailing_zeros(v))
            first = (s * slot_bits) // unit_bits
            last = ((s + 1) * slot_bits - 1) // unit_bits
            if cur_last >= 0 and first <= cur_last + 1 + gap_units:
                cur_last = max(cur_last, last)
            else:
                if cur_last >= 0:
                    _mark_covered(cur_first, cur_last, slot_bits, unit_bits, num_columns,
                                  layer, identity, order, out)
                cur_first, cur_last = first, last
            v &= v - ONE
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
        _mark(out, layer, identity, order, s)


@kernel
def arrived_slots(words: np.ndarray, pos: np.ndarray, order: np.ndarray, num_columns: int,
                  slot_bits: int, unit_bits: int, gap_units: int, ints: np.ndarray,
                  tabs: tuple, out: np.ndarray) -> None:
    """Per layer l, out[l] = arrived_row of words[l] (one token's misses, (L, W))."""
    L, W = words.shape
    scratch = np.zeros(W, np.uint64)
    n_units = (ints[I_UNITS] + 63) // 64 + 2
    units, zeros, wide = _buffers(n_units)
    for layer in range(L):
        arrived_row(words, layer, pos, order, num_columns, slot_bits, unit_bits, gap_units,
                    ints, tabs, scratch, units, zeros, wide, out[layer])
