"""Exact flash requests (memsim/sim/flash_reads.py): hand-computed request and page counts.

A one-layer model whose down columns are `H * mlp_bits / 8` bytes lets each case pick the
slot size; up masks are empty so only W_down is read. The cache is off (`none`), so the
misses are the masks, and attention, embedding and LM head are resident: every request in
per_token.csv is a W_down request.
"""
from __future__ import annotations

import numpy as np
import pytest

from memsim.hw.flash.base import request_time, short_units
from memsim.hw.layouts import Layout
from memsim.sim import simulate
from memsim.sim import _count_plan as plans
from memsim.sim.flash_reads import (MAX_GAP_UNITS, ReadGeometry, arrived_columns,
                                    request_stats)
from memsim.traces import ModelShape, Trace
from memsim.traces.bits import pack_words, unpack_words
from tests.helpers import UFS, make_hw

PAGE = 4096


def model_with_down_slot(slot_bytes: int, columns: int = 64) -> ModelShape:
    """H = slot_bytes at 8-bit weights: one W_down column is `slot_bytes` bytes."""
    return ModelShape(name=f"slot{slot_bytes}", num_hidden_layers=1, hidden_size=slot_bytes,
                      intermediate_size=columns, num_attention_heads=1, num_key_value_heads=1,
                      vocab_size=8)


def hw_for(flash: dict | None = None, **cache):
    return make_hw({"flash": {**UFS, **(flash or {})},
                    "precision": {"mlp_bits": 8, "attention_bits": 8, "embedding_bits": 8,
                                  "lm_head_bits": 8, "kv_cache_bits": 8},
                    "dram": {"capacity_GB": 10.0},
                    "cache": {"impl": "none", **cache}})


def down_trace(model: ModelShape, *rows: tuple[int, ...]) -> Trace:
    """One token per row; each row lists the missed W_down columns."""
    down = np.zeros((len(rows), 1, model.intermediate_size), bool)
    for t, columns in enumerate(rows):
        down[t, 0, list(columns)] = True
    up = np.zeros((len(rows), 1, model.hidden_size), bool)
    return Trace(up=up, down=down, model=model, method="dip")


def reads(hw, trace, layout_path=None):
    if layout_path is not None:
        import dataclasses
        hw = dataclasses.replace(hw, flash=dataclasses.replace(hw.flash, layout=str(layout_path)))
    r = simulate(hw, None, trace)
    return (np.array(r.per_token["flash_requests"]), np.array(r.per_token["flash_device_bytes"]),
            np.array(r.per_token["flash_payload_bytes"]), r)


def test_a_run_straddling_a_page_boundary_reads_every_page_it_touches():
    model = model_with_down_slot(3000)
    requests, device, payload, _ = reads(hw_for(), down_trace(model, (1, 2)))
    # bytes 3000..8999 touch pages 0, 1 and 2: one request of three pages
    assert requests[0] == 1 and device[0] == 3 * PAGE and payload[0] == 6000


def test_a_column_larger_than_a_page_is_one_request_of_its_pages():
    model = model_with_down_slot(10000)
    requests, device, _, _ = reads(hw_for(), down_trace(model, (1,), (0,)))
    # column 1: bytes 10000..19999 -> pages 2..4; column 0: bytes 0..9999 -> pages 0..2
    assert requests.tolist() == [1, 1] and device.tolist() == [3 * PAGE, 3 * PAGE]


def test_runs_sharing_a_page_are_one_request_and_the_page_is_read_once():
    model = model_with_down_slot(1000)
    requests, device, _, _ = reads(hw_for(), down_trace(model, (0, 2)))
    # columns 0 (bytes 0..999) and 2 (2000..2999) both sit in page 0
    assert requests[0] == 1 and device[0] == PAGE


def test_a_gap_within_the_merge_gap_is_read_through():
    model = model_with_down_slot(PAGE)
    trace = down_trace(model, (0, 3), (0, 4))
    requests, device, _, _ = reads(hw_for({"merge_gap_KiB": 8}), trace)
    # gap of 2 pages (8 KiB) merges: one request 0..3 (4 pages); gap of 3 pages does not
    assert requests.tolist() == [1, 2] and device.tolist() == [4 * PAGE, 2 * PAGE]
    requests, device, _, _ = reads(hw_for({"merge_gap_KiB": 4}), trace)
    assert requests.tolist() == [2, 2] and device.tolist() == [2 * PAGE, 2 * PAGE]


def test_an_infinite_merge_gap_gives_one_request_per_group_and_token():
    model = model_with_down_slot(PAGE)
    trace = down_trace(model, (0, 10, 63), (5,), (1, 2, 40))
    requests, device, _, _ = reads(hw_for({"merge_gap_KiB": float("inf")}), trace)
    assert requests.tolist() == [1, 1, 1]
    assert device.tolist() == [64 * PAGE, PAGE, 40 * PAGE]


def test_a_permutation_that_joins_two_runs_makes_one_request(tmp_path):
    model = model_with_down_slot(PAGE)
    trace = down_trace(model, (0, 5))
    assert reads(hw_for(), trace)[0][0] == 2
    order = np.arange(64)
    order[1], order[5] = 5, 1  # column 5 stored in slot 1, next to column 0
    up_order = np.arange(model.hidden_size)[None]
    path = Layout(model, {"down": order[None].astype(np.int32),
                          "up_gate": up_order.astype(np.int32)}, "test").save(tmp_path / "l.npz")
    requests, device, _, _ = reads(hw_for(), trace, path)
    assert requests[0] == 1 and device[0] == 2 * PAGE


def test_unbundled_up_and_gate_read_each_run_once_per_matrix():
    model = ModelShape(name="bundle", num_hidden_layers=1, hidden_size=16,
                       intermediate_size=PAGE, num_attention_heads=1, num_key_value_heads=1,
                       vocab_size=8)  # an up/gate column is I = 4096 bytes per matrix
    up = np.zeros((1, 1, 16), bool)
    up[0, 0, [2, 3, 9]] = True
    trace = Trace(up=up, down=np.zeros((1, 1, PAGE), bool), model=model, method="dip")
    bundled = reads(hw_for({"bundle_up_gate": True}), trace)
    apart = reads(hw_for({"bundle_up_gate": False}), trace)
    # bundle: slot = 8 KiB: runs [2, 3] and [9] -> 2 requests, 6 pages
    assert bundled[0][0] == 2 and bundled[1][0] == 6 * PAGE
    # apart: two regions of 4 KiB slots, the same runs in each -> 4 requests, 6 pages
    assert apart[0][0] == 4 and apart[1][0] == 6 * PAGE
    assert bundled[2][0] == apart[2][0] == 3 * 2 * PAGE


def test_identity_layout_with_page_sized_columns_prices_like_the_mean_size_model():
    model = model_with_down_slot(PAGE)
    hw = hw_for()
    trace = down_trace(model, tuple(range(0, 64, 2)))  # 32 single-page runs
    requests, device, payload, result = reads(hw, trace)
    assert requests[0] == 32 and device[0] == payload[0] == 32 * PAGE
    mean_size = hw.flash.read_time_s(32 * PAGE, 32, range_bytes=64 * PAGE)
    assert result.breakdown_s["flash"] == pytest.approx(float(mean_size), rel=1e-12)


def test_device_bytes_are_whole_pages_between_payload_and_region():
    rng = np.random.default_rng(0)
    model = model_with_down_slot(288, columns=1536)
    rows = [tuple(np.flatnonzero(rng.random(1536) < p)) for p in (0.01, 0.2, 0.5, 0.9)]
    requests, device, payload, _ = reads(hw_for(), down_trace(model, *rows))
    region_pages = -(-1536 * 288 // PAGE)
    assert (device % PAGE == 0).all() and (device >= payload).all()
    assert (device <= region_pages * PAGE).all()  # a page is never read twice
    assert (requests >= 1).all() and (requests <= device / PAGE).all()


# ----- the compiled counting against a plain-Python reference ---------------------------------
# The reference works on explicit sets: the bit interval each missed slot occupies, the units
# (pages) those intervals overlap, requests as maximal groups of touched units whose gaps are
# at most the merge gap, arrived columns as the slots whose whole interval lies in read units.
# It shares no code and no formula with memsim/sim/_flash_kernels.py.

def reference_requests(slots, slot_bits: int, unit_bits: int, gap_units: int):
    """[first, last] unit of each request, and the set of units read."""
    touched = set()
    for s in map(int, slots):  # Python integers: no overflow
        start, stop = s * slot_bits, (s + 1) * slot_bits  # bits [start, stop)
        touched.update(range(start // unit_bits, -(-stop // unit_bits)))
    requests = []
    for u in sorted(touched):
        if requests and u - requests[-1][1] - 1 <= gap_units:
            requests[-1][1] = u
        else:
            requests.append([u, u])
    read = {u for first, last in requests for u in range(first, last + 1)}
    return requests, read


def reference_arrived(num_slots: int, slot_bits: int, unit_bits: int, read: set) -> list[int]:
    return [s for s in range(num_slots)
            if all(u in read for u in range(s * slot_bits // unit_bits,
                                            -(-(s + 1) * slot_bits // unit_bits)))]


def random_geometry(rng, num_columns: int, layout: bool) -> ReadGeometry:
    """Slots smaller, equal and larger than a unit, odd sizes, byte-addressable units, every
    kind of merge gap, and a floor/bandwidth crossover (`short_units`) from 0 to 80 units."""
    unit_bits = int(rng.choice([1, 8 * 512, 8 * 4096, 8 * 12288]))
    slot_bits = int(rng.choice([int(rng.integers(1, 300)), 8 * int(rng.integers(1, 4000)),
                                8 * int(rng.choice([288, 1000, 1536, 2560, 4096, 12288, 17920])),
                                8 * int(rng.integers(1, 80000))]))
    if unit_bits == 1:
        slot_bits = int(rng.integers(1, 300))
        gap = int(rng.choice([0, slot_bits - 1, slot_bits, 3 * slot_bits]))
    else:
        gap = int(rng.choice([0, 0, 1, 2, 3, 7, 63, 64, 100, MAX_GAP_UNITS]))
    per_unit = 1e-6
    floor = per_unit * int(rng.choice([0, 1, 2, 3, 4, 5, 17, 63, 64, 80])) \
        + per_unit * rng.uniform(0.0, 0.9)
    pos = np.stack([rng.permutation(num_columns) for _ in range(2)]).astype(np.int32)
    order = np.argsort(pos, axis=1).astype(np.int32)
    empty = np.zeros((0, 0), np.int32)
    return ReadGeometry(num_columns, slot_bits, 1, unit_bits, gap, pos if layout else empty,
                        order if layout else empty, floor, per_unit, 0.0, unit_bits > 1, False)


def check_against_reference(masks: np.ndarray, geom: ReadGeometry) -> None:
    """request_stats, the time they price to and arrived_columns, transfer by transfer."""
    stats = request_stats(pack_words(masks), geom)
    layout = geom.pos.shape[0] > 0
    for t in range(masks.shape[0]):
        arrived = unpack_words(arrived_columns(pack_words(masks[t]), geom), geom.num_columns)
        for layer in range(masks.shape[1]):
            columns = np.flatnonzero(masks[t, layer])
            slots = geom.pos[layer][columns] if layout else columns
            requests, read = reference_requests(slots, geom.slot_bits, geom.unit_bits,
                                                geom.gap_units)
            sizes = np.array([last - first + 1 for first, last in requests], np.float64)
            price = request_time(sizes, geom.floor_s, geom.per_unit_s)
            short = int((price == geom.floor_s).sum())
            expected = [len(requests), int(sizes.sum()), short, int(sizes[price > geom.floor_s].sum())]
            got = stats[t, layer]
            where = (f"slot {geom.slot_bits} bits, unit {geom.unit_bits}, gap {geom.gap_units}, "
                     f"short {geom.short_units}, path {geom.plan.path}, layout {layout}")
            assert got.tolist() == expected, where
            kernel_time = got[2] * geom.floor_s + got[3] * geom.per_unit_s  # what costs charge
            assert kernel_time == pytest.approx(float(price.sum()), rel=1e-12, abs=0), where
            if geom.is_paged:
                inside = reference_arrived(geom.num_columns, geom.slot_bits, geom.unit_bits, read)
                columns = sorted(geom.order[layer][inside]) if layout else inside
                assert np.flatnonzero(arrived[layer]).tolist() == list(columns), where


@pytest.mark.parametrize("seed", range(8))
def test_compiled_counting_equals_the_plain_python_reference(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        num_columns = int(rng.integers(1, 260))
        geom = random_geometry(rng, num_columns, layout=bool(rng.random() < 0.4))
        masks = rng.random((3, 2, num_columns)) < rng.uniform(0.01, 0.95)
        check_against_reference(masks, geom)


@pytest.mark.parametrize("slot_bytes, page_bytes, gap, floor_units, path, reverse", [
    (17920, 4096, 0, 3.5, plans.SLOT, False),  # Phi-3-Medium up/gate bundle: runs of slots
    (2560, 4096, 0, 3.5, plans.PAGE, True),  # Phi-3-Medium W_down column: a page bitmap
    (2560, 4096, 3, 70.5, plans.PAGE, True),  # ... closed gaps, runs longer than a word
    (288, 4096, 1, 3.5, plans.PAGE, True),  # SmolLM2 W_down column: chunks in 16 phases
    (1001, 4096, 70, 3.5, plans.PAGE, False),  # odd size: arrived slot by slot; a wide gap
    (300 * 1024, 4096, 0, 100.5, plans.WALK, False),  # a slot spanning more than 64 pages
    (300 * 1024, 4096, 75, 100.5, plans.WALK, False),  # ... one unread slot is exactly the gap
])
def test_each_counting_path_equals_the_reference(slot_bytes, page_bytes, gap, floor_units,
                                                 path, reverse):
    rng = np.random.default_rng(7)
    num_columns = 1000
    for layout in (False, True):
        pos = np.stack([rng.permutation(num_columns) for _ in range(2)]).astype(np.int32)
        empty = np.zeros((0, 0), np.int32)
        geom = ReadGeometry(num_columns, slot_bytes * 8, 1, page_bytes * 8, gap,
                            pos if layout else empty,
                            np.argsort(pos, axis=1).astype(np.int32) if layout else empty,
                            floor_units * 1e-6, 1e-6, 0.0, True, False)
        assert geom.plan.path == path and (geom.plan.rev_slots > 0) == reverse
        for density in (0.003, 0.05, 0.3, 0.7, 0.99):  # the sparse walk and the bitmap
            check_against_reference(rng.random((2, 2, num_columns)) < density, geom)
        mixed = rng.random((3, 2, num_columns)) < np.array([0.5, 0.05])[None, :, None]
        mixed[:, 1, :num_columns // 2] = False  # a dense row, then one missing only late
        check_against_reference(mixed, geom)


@pytest.mark.parametrize("gap", [1, 5, 15, 16, 40, 63, 64, 100])
def test_a_zero_run_of_exactly_the_merge_gap_closes_and_one_more_does_not(gap):
    """Page-sized slots: misses at 0 and gap + 1 leave `gap` unread pages between them (one
    request of gap + 2 pages); at 0 and gap + 2, gap + 1 pages (two requests of one page).
    A block of misses far behind (its own request) makes the rows dense enough for the page
    bitmap; gaps below 16 close with shifted ANDs, up to 63 with window passes, beyond by a
    walk."""
    empty = np.zeros((0, 0), np.int32)
    N, block = 512, 100
    geom = ReadGeometry(N, 8 * PAGE, 1, 8 * PAGE, gap, empty, empty, 3.5e-6, 1e-6, 0.0,
                        True, False)
    assert geom.short_units == 3
    mask = np.zeros((2, 1, N), bool)
    mask[:, 0, N - block:] = True
    mask[0, 0, [0, gap + 1]] = True
    mask[1, 0, [0, gap + 2]] = True
    stats = request_stats(pack_words(mask), geom)[:, 0]
    pair = gap + 2
    assert stats[0].tolist() == [2, pair + block, int(pair <= 3), block + pair * (pair > 3)]
    assert stats[1].tolist() == [3, 2 + block, 2, block]
    arrived = unpack_words(arrived_columns(pack_words(mask[0]), geom), N)[0]
    assert np.flatnonzero(arrived).tolist() == list(range(pair)) + list(range(N - block, N))


def test_arrived_columns_hand_computed():
    """1000-byte slots in 4 KiB pages: a miss of column 0 reads page 0, which also holds
    columns 1-3 (column 4, bytes 4000-4999, straddles into page 1); with a one-page merge gap,
    misses 0 and 12 (bytes 12000-12999: pages 2-3) read pages 0-3, holding columns 0-15."""
    empty = np.zeros((0, 0), np.int32)
    for gap, missed, expected in ((0, [0], [0, 1, 2, 3]), (1, [0, 12], list(range(16))),
                                  (0, [0, 12], [0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15])):
        geom = ReadGeometry(64, 8000, 1, 8 * PAGE, gap, empty, empty, 3.5e-6, 1e-6, 0.0, True,
                            False)
        mask = np.zeros((1, 64), bool)
        mask[0, missed] = True
        arrived = unpack_words(arrived_columns(pack_words(mask), geom), 64)[0]
        assert np.flatnonzero(arrived).tolist() == expected


@pytest.mark.parametrize("floor_s, per_unit_s", [(4.1e-6, 1.17e-6), (3e-6, 1e-6),
                                                 (1e-6, 1e-6), (0.0, 1e-9), (1e-3, 1e-9)])
def test_short_units_is_the_crossover_of_the_pricing_function(floor_s, per_unit_s):
    n = short_units(floor_s, per_unit_s)
    assert request_time(n, floor_s, per_unit_s) == floor_s
    assert request_time(n + 1, floor_s, per_unit_s) > floor_s
