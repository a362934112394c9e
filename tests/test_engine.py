"""Timing laws of the simulator, checked against closed forms (PAPER.md section 4)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memsim.sim.footprint import Footprint
from memsim.sim.plan import plan_dram
from memsim.sim.simulator import simulate
from memsim.traces.trace import Trace
from tests.helpers import REFERENCE, TINY, UFS, capacity_for, make_hw, random_trace


def _static_s(hw, model, kv_len):
    """Attention (+KV at kv_len) and head read from DRAM: the analytic static time."""
    fp = Footprint.of(model, hw)
    per_layer = fp.attention_bytes_per_layer + kv_len * fp.kv_bytes_per_token_per_layer
    head = fp.embedding_row_bytes + fp.lm_head_bytes
    return (model.num_hidden_layers * per_layer + head) / hw.dram.read_bandwidth_Bps


@pytest.mark.parametrize("concurrent", [True, False])
@pytest.mark.parametrize("capacity", [0.0, 0.3, 0.7, 2.0])
def test_reference_mode_engine_equals_closed_form(concurrent, capacity):
    hw = make_hw(REFERENCE, capacity_for(capacity),
                 {"timing": {"flash_dram_concurrent": concurrent}})
    trace = random_trace(T=16, seed=3, sequence_lengths=(10, 6), prompt_len=5)
    event = simulate(hw, TINY, trace, mode="event")
    analytic = simulate(hw, TINY, trace, mode="analytic")
    np.testing.assert_allclose(event.per_token["time_s"], analytic.per_token["time_s"],
                               rtol=1e-9, atol=0)
    assert event.tokens_per_s == pytest.approx(analytic.tokens_per_s, rel=1e-9)


def test_first_token_mlp_time_is_columns_times_column_bytes_over_flash_bandwidth():
    hw = make_hw(REFERENCE, capacity_for(2.0))  # everything fits: second token all hits
    rng = np.random.default_rng(0)
    up = np.repeat(rng.random((1, 2, 64)) < 0.5, 2, axis=0)  # token 2 repeats token 1
    down = np.repeat(rng.random((1, 2, 160)) < 0.4, 2, axis=0)
    trace = Trace(up=up, down=down, model=TINY)
    times = simulate(hw, TINY, trace).per_token["time_s"]
    mlp_bytes = (up[0].sum() * 2 * 160 + down[0].sum() * 64) * 4 / 8  # up+gate share a mask
    static = _static_s(hw, TINY, kv_len=1.5)  # KV priced at the average length (2+1)/2
    assert times[0] == pytest.approx(max(mlp_bytes / 1e9, 0) + static, rel=1e-12)
    assert times[1] == pytest.approx(mlp_bytes / 60e9 + static, rel=1e-12)


def test_concurrent_reads_take_max_and_serial_reads_take_sum():
    trace = random_trace(T=8, seed=1)
    hw_max = make_hw(REFERENCE, capacity_for(0.4))
    hw_sum = make_hw(REFERENCE, capacity_for(0.4), {"timing": {"flash_dram_concurrent": False}})
    plan = plan_dram(hw_max, TINY, trace.groups(), 0.0)
    from memsim.sim.costs import cache_outcome
    hits = cache_outcome(hw_max, trace, plan).hits
    t_max = simulate(hw_max, TINY, trace).per_token["time_s"]
    t_sum = simulate(hw_sum, TINY, trace).per_token["time_s"]
    assert np.all(np.asarray(t_sum) >= np.asarray(t_max))
    assert hits[1:].sum() > 0 and np.any(np.asarray(t_sum) > np.asarray(t_max))


EVENT_CONFIGS = {
    "simple": [],
    "ufs": [{"flash": UFS}],
    "ufs-serial": [{"flash": UFS, "timing": {"flash_dram_concurrent": False}}],
    "no-prefetch": [{"flash": UFS, "timing": {"prefetch_next_layer": False}}],
    "streamed-attn": [{"flash": UFS, "placement": {"attention": "streamed",
                                                   "lm_head": "streamed"}}],
    "glu-like": [{"flash": UFS}],
}


@pytest.mark.parametrize("name", sorted(EVENT_CONFIGS))
@pytest.mark.parametrize("capacity", [0.0, 0.5])
def test_step_time_between_largest_busy_resource_and_sum_of_all(name, capacity):
    hw = make_hw(*EVENT_CONFIGS[name], capacity_for(capacity))
    trace = random_trace(T=10, seed=2, prompt_len=3)
    if name == "glu-like":  # up/gate read densely: known ahead, prefetched
        trace = dataclasses.replace(trace, up=np.ones_like(trace.up))
    r = simulate(hw, TINY, trace)
    busy = np.array([r.busy_s[k] for k in ("flash", "dram", "compute")])
    assert busy.max() <= r.time_per_token_s * (1 + 1e-12)
    assert r.time_per_token_s <= busy.sum() * (1 + 1e-12) or busy.sum() == 0
    if not hw.timing.flash_dram_concurrent:  # one channel: its two kinds of work add up
        assert busy[0] + busy[1] <= r.time_per_token_s * (1 + 1e-12)


def test_shared_channel_busy_times_are_flash_and_dram_work_each_once():
    """timing.flash_dram_concurrent false: one channel, so a step takes flash + DRAM time;
    each resource's busy time is its own work (hand-computed: bytes / bandwidth), and the
    effective flash bandwidth is the flash's own 1 GB/s."""
    hw = make_hw(REFERENCE, {"timing": {"flash_dram_concurrent": False},
                             "placement": {"mlp": "streamed"}})
    trace = random_trace(T=6, seed=8)
    r = simulate(hw, TINY, trace)
    mlp = (trace.up.sum(axis=(1, 2)) * 2 * 160 + trace.down.sum(axis=(1, 2)) * 64) * 0.5
    busy_flash = mlp / 1e9  # streamed: every column from flash
    busy_dram = _static_s(hw, TINY, kv_len=(6 + 1) / 2)
    assert r.hit_rate == 0
    assert r.busy_s["flash"] == pytest.approx(busy_flash.mean(), rel=1e-12)
    assert r.busy_s["dram"] == pytest.approx(busy_dram, rel=1e-12)
    np.testing.assert_allclose(r.per_token["time_s"], busy_flash + busy_dram, rtol=1e-12)
    assert r.effective_flash_bandwidth_Bps == pytest.approx(1e9, rel=1e-12)


def test_breakdown_adds_up_to_step_time():
    r = simulate(make_hw({"flash": UFS}, capacity_for(0.3)), TINY, random_trace(T=10))
    parts = sum(np.asarray(r.per_token[f"{k}_s"]) for k in ("flash", "dram", "compute",
                                                            "stall"))
    np.testing.assert_allclose(parts, r.per_token["time_s"], rtol=1e-12)


def test_bytes_conserved_flash_plus_dram_equals_what_masks_need():
    hw = make_hw(REFERENCE, capacity_for(0.4))
    trace = random_trace(T=10, seed=4)
    r = simulate(hw, TINY, trace)
    fp = Footprint.of(TINY, hw)
    mlp = (trace.up.sum(axis=(1, 2)) * 2 * 160 + trace.down.sum(axis=(1, 2)) * 64) * 0.5
    kv = np.concatenate([np.full(10, (10 + 1) / 2)]) * fp.kv_bytes_per_token_per_layer * 2
    static = 2 * fp.attention_bytes_per_layer + kv + fp.embedding_row_bytes + fp.lm_head_bytes
    needed = (mlp + static).mean()
    assert r.flash_bytes_per_token + r.dram_read_bytes_per_token == pytest.approx(needed,
                                                                                  rel=1e-12)


def test_cache_never_holds_more_than_its_budget():
    hw = make_hw({"flash": UFS}, capacity_for(0.3))
    trace = random_trace(T=20, seed=5)
    r = simulate(hw, TINY, trace)
    assert r.dram_used_breakdown_bytes["cache"] <= make_hw().dram.capacity_bytes
    assert r.dram_used_bytes <= hw.dram.capacity_bytes * (1 + 1e-12)
    plan = plan_dram(hw, TINY, trace.groups(), 20)
    assert r.dram_used_breakdown_bytes["cache"] <= plan.cache_budget_bytes


def test_dense_with_whole_model_in_dram_is_dram_bound():
    hw = make_hw({"flash": UFS, "placement": {"mlp": "resident"}}, capacity_for(2.0))
    trace = random_trace(T=6, density=1.0)
    r = simulate(hw, TINY, trace)
    assert r.flash_bytes_per_token == 0
    assert r.breakdown_s["dram"] > 0.9 * r.time_per_token_s
    # closed form: DRAM bytes / bandwidth, plus the (small) compute it cannot hide
    lower = r.dram_read_bytes_per_token / hw.dram.read_bandwidth_Bps
    assert lower <= r.time_per_token_s <= lower + r.busy_s["compute"] + r.busy_s["dram"] * 0.05


def test_dense_streaming_with_no_cache_is_flash_bound():
    hw = make_hw({"placement": {"mlp": "streamed"}}, capacity_for(2.0))
    r = simulate(hw, TINY, random_trace(T=6, density=1.0))
    assert r.hit_rate == 0
    assert r.breakdown_s["flash"] > 0.9 * r.time_per_token_s
    flash_bound = r.flash_bytes_per_token / hw.flash.read_bandwidth_Bps
    assert r.time_per_token_s == pytest.approx(flash_bound, rel=0.1)
    assert r.time_per_token_s >= flash_bound


def test_same_input_gives_identical_output():
    hw = make_hw({"flash": UFS}, capacity_for(0.5))
    a = simulate(hw, TINY, random_trace(T=10, seed=9)).to_dict()
    b = simulate(hw, TINY, random_trace(T=10, seed=9)).to_dict()
    assert a == b


def test_ufs_many_small_reads_are_slower_than_one_large_read():
    flash = make_hw({"flash": UFS}).flash
    one = flash.read_time_s(np.array([4e6]), np.array([1.0]))[0]
    scattered = flash.read_time_s(np.array([4e6]), np.array([1000.0]))[0]
    assert scattered > 5 * one
    assert one == pytest.approx(100e-6 + 4e6 / 4e9, rel=1e-3)


# Prefill: everything streamed from a 1 GB/s byte-addressable flash with no latency, writes
# free and no context, so DRAM moves nothing and every duration is bytes / 1e9 or ops / 5e12.
PREFILL_HW = ({"timing": {"dram_writes": "free"},
               "placement": {"attention": "streamed", "embedding": "streamed",
                             "lm_head": "streamed", "mlp": "streamed"}},
              capacity_for(2.0, kv_tokens=4096 + 16))  # room for the longest prompt


def _prefill_parts(P: int):
    """Hand-computed prefill durations of TINY on PREFILL_HW: P embedding rows e, one
    layer's weights f, one layer's compute c, LM head h and its compute c_h (seconds)."""
    m, bw, rate = TINY, 1e9, 10e12 * 0.5
    e = P * m.hidden_size * 0.5 / bw
    f = (m.attention_params_per_layer + m.mlp_params_per_layer) * 0.5 / bw
    heads_x_dim = m.num_attention_heads * m.head_dim
    c = (2 * P * (m.attention_params_per_layer + m.mlp_params_per_layer)
         + 4 * heads_x_dim * P * (P + 1) / 2) / rate
    h = m.vocab_size * m.hidden_size * 0.5 / bw
    return e, f, c, h, 2 * m.vocab_size * m.hidden_size / rate


@pytest.mark.parametrize("P", [8, 512, 4096])
def test_prefill_time_to_first_token_overlaps_loads_with_compute(P):
    """With prefetch, layer l+1's weights load while layer l computes: per layer the larger
    of the two, not their sum; without prefetch, the sum."""
    e, f, c, h, c_h = _prefill_parts(P)
    L = TINY.num_hidden_layers
    overlapped = e + f + (L - 1) * max(c, f) + max(c, h) + c_h
    serial = e + L * (f + c) + h + c_h
    trace = random_trace(T=2, prompt_len=P)
    on = simulate(make_hw(*PREFILL_HW), TINY, trace)
    off = simulate(make_hw(*PREFILL_HW, {"timing": {"prefetch_next_layer": False}}), TINY, trace)
    assert on.ttft_s == pytest.approx(overlapped, rel=1e-12)
    assert off.ttft_s == pytest.approx(serial, rel=1e-12)
    assert on.ttft_s < off.ttft_s


def test_prefill_of_three_unit_layers_takes_four_with_overlap_and_six_without():
    """The issue's example: loads of 1 and compute of 1 per layer, three layers."""
    from memsim.sim.costs import StepCosts
    from memsim.sim.engine import CompiledRun, EventRun

    flash = np.ones((1, 3, 1))
    compute = np.zeros((1, 3, 3))
    compute[:, :, 2] = 1.0
    zero = np.zeros(1)
    costs = StepCosts(flash, np.zeros_like(flash), np.zeros_like(flash), compute, (0,), zero,
                      zero, zero, zero, zero, zero, zero, zero, zero)
    for prefetch, expected in ((True, 4.0), (False, 6.0)):
        assert CompiledRun(costs, prefetch, True).run([slice(0, 1)]).time_s[0] == expected
        run = EventRun(prefetch, True)
        stream = run.stream(costs)
        run.run(stream.run(0, 1))
        assert stream.times().time_s[0] == expected


def test_prefill_reads_embedding_rows_adapters_predictor_and_overflow():
    """Prefill reads every layer's weights once, the adapters and predictor, P embedding
    rows and the LM head; resident weights that do not fit come from flash (overflow)."""
    from memsim.sim.costs import build_prefill_costs

    P, adapter, predictor = 100, 20_000, 6_000
    hw = make_hw({"dram": {"capacity_GB": 6e-5}})  # too small: half the resident reads overflow
    plan = plan_dram(hw, TINY, random_trace(T=2).groups(), P, adapter, predictor)
    assert 0.5 < plan.overflow_fraction < 1
    c = build_prefill_costs(hw, TINY, P, plan, adapter_params=adapter,
                            predictor_params=predictor)
    L, o, m = TINY.num_hidden_layers, plan.overflow_fraction, TINY
    attention, mlp = L * m.attention_params_per_layer * 0.5, L * m.mlp_params_per_layer * 0.5
    extras, row, head = (adapter + predictor) * 2.0, m.hidden_size * 0.5, m.embedding_params * 0.5
    flash = (attention + extras + P * row + head) * o + mlp  # the MLP is read from flash
    assert c.flash_bytes[0] == pytest.approx(flash, rel=1e-12)
    kv_write = P * L * m.kv_values_per_token_per_layer * 2  # 16-bit KV
    assert c.dram_read_bytes[0] + c.flash_bytes[0] == pytest.approx(
        attention + mlp + extras + P * row + head, rel=1e-12)
    assert c.dram_write_bytes[0] == pytest.approx(kv_write, rel=1e-12)
    heads_x_dim = m.num_attention_heads * m.head_dim
    ops = (2 * P * (L * (m.attention_params_per_layer + m.mlp_params_per_layer) + adapter
                    + predictor) + L * 4 * heads_x_dim * P * (P + 1) / 2 + 2 * m.embedding_params)
    assert c.ops[0] == pytest.approx(ops, rel=1e-12)


def test_energy_reported_only_when_all_figures_given():
    trace = random_trace(T=4)
    assert simulate(make_hw(), TINY, trace).energy_per_token_J is None
    hw = make_hw({"flash": {**make_hw().flash.__dict__, "read_energy_pJ_per_byte": 100.0},
                  "dram": {"read_energy_pJ_per_byte": 20.0, "write_energy_pJ_per_byte": 25.0}})
    r = simulate(hw, TINY, trace)
    expected = (r.flash_device_bytes_per_token * 100 + r.dram_read_bytes_per_token * 20
                + r.dram_write_bytes_per_token * 25) * 1e-12
    assert r.energy_per_token_J == pytest.approx(expected, rel=1e-9)


def test_analytic_model_ignores_what_the_event_engine_adds():
    """Latency, read size and compute only slow the event engine down."""
    trace = random_trace(T=10, seed=6)
    hw = make_hw({"flash": UFS}, capacity_for(0.4))
    event, analytic = simulate(hw, TINY, trace), simulate(hw, TINY, trace, mode="analytic")
    assert event.tokens_per_s < analytic.tokens_per_s
    assert event.hit_rate == analytic.hit_rate


def test_adapters_are_resident_and_read_every_token():
    adapter_bytes = 20_000 * 16 / 8
    hw = make_hw(REFERENCE, capacity_for(0.5, extra_GB=adapter_bytes / 1e9))  # no overflow
    plain = random_trace(T=6, seed=7)
    adapted = dataclasses.replace(plain, adapter_params=20_000)
    a, b = simulate(hw, TINY, plain), simulate(hw, TINY, adapted)
    assert b.dram_used_breakdown_bytes["resident_weights"] == pytest.approx(
        a.dram_used_breakdown_bytes["resident_weights"] + adapter_bytes)
    assert b.dram_read_bytes_per_token + b.flash_bytes_per_token == pytest.approx(
        a.dram_read_bytes_per_token + a.flash_bytes_per_token + adapter_bytes)
    event, analytic = simulate(hw, TINY, adapted), simulate(hw, TINY, adapted, mode="analytic")
    np.testing.assert_allclose(event.per_token["time_s"], analytic.per_token["time_s"],
                               rtol=1e-9)
