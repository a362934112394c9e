"""Exact flash requests (memsim/sim/flash_reads.py): hand-computed request and page counts.

A one-layer model whose down columns are `H * mlp_bits / 8` bytes lets each case pick the
slot size; up masks are empty so only W_down is read. The cache is off (`none`), so the
misses are the masks, and attention, embedding and LM head are resident: every request in
per_token.csv is a W_down request.
"""
from __future__ import annotations

import numpy as np
import pytest

from memsim.hw.layouts import Layout
from memsim.sim import simulate
from memsim.sim.flash_reads import MAX_GAP_UNITS
from memsim.traces import ModelShape, Trace
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


def python_requests(missed_slots, slot_bits, unit_bits, gap_units):
    """Reference: requests and units of sorted missed slots, written the obvious way."""
    spans = []
    for s in sorted(missed_slots):
        first, last = s * slot_bits // unit_bits, ((s + 1) * slot_bits - 1) // unit_bits
        if spans and first <= spans[-1][1] + 1 + gap_units:
            spans[-1][1] = max(spans[-1][1], last)
        else:
            spans.append([first, last])
    return len(spans), sum(b - a + 1 for a, b in spans), [b - a + 1 for a, b in spans]


@pytest.mark.parametrize("seed", range(6))
def test_compiled_kernel_equals_the_python_reference(seed):
    from memsim.sim._flash_kernels import transfer_stats
    from memsim.traces.bits import pack_words

    rng = np.random.default_rng(seed)
    L, N, T = 3, int(rng.integers(50, 400)), 4
    masks = rng.random((T, L, N)) < rng.uniform(0.02, 0.8)
    pos = np.stack([rng.permutation(N) for _ in range(L)]).astype(np.int32)
    slot_bits, unit_bits = int(rng.integers(1, 5000)) * 8, int(rng.choice([8, 4096 * 8]))
    gap_units, per_unit, floor = int(rng.integers(0, 4)), 1e-6, 3.5e-6
    for use_pos in (False, True):
        out = np.zeros((T * L, 4), np.int64)
        transfer_stats(pack_words(masks).reshape(T * L, -1), L,
                       pos if use_pos else np.zeros((0, 0), np.int32), slot_bits, unit_bits,
                       gap_units, per_unit, floor, out)
        for r in range(T * L):
            cols = np.flatnonzero(masks[r // L, r % L])
            slots = pos[r % L][cols] if use_pos else cols
            n, units, sizes = python_requests(slots, slot_bits, unit_bits, gap_units)
            short = sum(1 for s in sizes if s * per_unit <= floor)
            assert out[r].tolist() == [n, units, short, units - sum(s for s in sizes
                                                                     if s * per_unit <= floor)]
