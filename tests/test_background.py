"""Other apps as processes (memsim/sim/background.py): a fixed stream of requests delays the
decode by exactly its queueing delay; presets load; bad profiles name the key."""
from __future__ import annotations

import numpy as np
import pytest

from memsim.core.errors import ConfigError
from memsim.core.schema import to_plain
from memsim.hw.background import BackgroundApp, background_presets
from memsim.hw.config import hw_from_dict, load_hw
from memsim.sim.background import AppLoad
from memsim.sim.costs import StepCosts
from memsim.sim.engine import EventRun
from memsim.sim.simulator import simulate
from tests.helpers import TINY, UFS, capacity_for, make_hw, random_trace


def _one_load_one_kernel(T: int, load_s: float, kernel_s: float) -> StepCosts:
    """T tokens of one layer: a DRAM load of `load_s`, then a kernel of `kernel_s`."""
    dram = np.full((T, 1, 1), load_s)
    compute = np.zeros((T, 1, 3))
    compute[:, 0, 2] = kernel_s
    zero = np.zeros(T)
    return StepCosts(np.zeros_like(dram), np.zeros_like(dram), dram, compute, (0,), zero, zero,
                     zero, zero, zero, zero, zero, zero, zero)


def _run(costs: StepCosts, apps: list[BackgroundApp], hw, phone_out: list | None = None):
    run = EventRun(prefetch=True, flash_dram_concurrent=True)
    stream = run.stream(costs)
    loads = [AppLoad(hw, app) for app in apps]
    run.run(stream.run(0, costs.flash_ahead_s.shape[0]),
            [load.run(run.env, run.phone) for load in loads])
    if phone_out is not None:
        phone_out.append(run.phone)
    return stream.times(), loads


def test_fixed_dram_bursts_at_a_fixed_rate_delay_decode_by_the_queueing_delay():
    """Each token: DRAM load 1 s, kernel 1 s. A 0.5 s DRAM burst every 2.25 s from 1.75 s
    lands while the token computes and still holds the bus when the next token's load is
    issued: that load waits the burst's remaining time, 0.25 s, every token after the first.
    Hand-computed: token k >= 1 starts at 2 + 2.25 (k - 1); its load waits until the burst
    issued 0.25 s before it ends."""
    hw = make_hw({"dram": {"read_bandwidth_GBps": 1.0}})
    app = BackgroundApp(name="bursts", period_s=2.25, start_s=1.75, dram_MB=500.0)
    times, (load,) = _run(_one_load_one_kernel(6, 1.0, 1.0), [app], hw)
    np.testing.assert_allclose(times.time_s, [2.0] + [2.25] * 5, rtol=1e-12)
    np.testing.assert_allclose(times.start_s, [0.0, 2.0, 4.25, 6.5, 8.75, 11.0], rtol=1e-12)
    np.testing.assert_allclose(times.stall_s, [0.0] + [0.25] * 5, rtol=1e-12)
    assert load.bursts == 6  # 1.75, 4.0, 6.25, 8.5, 10.75, 13.0: all before the end, 13.25


def test_the_longest_wait_is_the_decode_loads_queue_behind_the_bursts():
    """The case above: every token's DRAM load waits 0.25 s between its issue (when its speed
    is read) and its start; the bursts themselves find the bus idle; nothing waits on
    flash or compute."""
    hw = make_hw({"dram": {"read_bandwidth_GBps": 1.0}})
    app = BackgroundApp(name="bursts", period_s=2.25, start_s=1.75, dram_MB=500.0)
    phones: list = []
    _run(_one_load_one_kernel(6, 1.0, 1.0), [app], hw, phones)
    np.testing.assert_allclose(phones[0].wait_s, [0.0, 0.25, 0.0], rtol=1e-12, atol=1e-15)


def test_an_app_burst_that_queues_behind_the_decode_counts_in_the_longest_wait():
    """A 0.3 s DRAM burst issued at 0.5 s, while the token's 1 s load holds the bus, starts
    at 1 s: it waited 0.5 s. The token's kernel, issued at 1 s, finds the unit idle."""
    hw = make_hw({"dram": {"read_bandwidth_GBps": 1.0}})
    app = BackgroundApp(name="late", period_s=100.0, start_s=0.5, dram_MB=300.0)
    phones: list = []
    times, _ = _run(_one_load_one_kernel(1, 1.0, 1.0), [app], hw, phones)
    np.testing.assert_allclose(phones[0].wait_s, [0.0, 0.5, 0.0], rtol=1e-12, atol=1e-15)
    assert times.time_s[0] == pytest.approx(2.0, rel=1e-12)  # the burst came after the load


def test_bursts_that_end_before_the_next_load_cost_nothing():
    """The same bursts 0.3 s earlier end before the next token's load is issued."""
    hw = make_hw({"dram": {"read_bandwidth_GBps": 1.0}})
    app = BackgroundApp(name="bursts", period_s=2.0, start_s=1.2, dram_MB=500.0)
    times, _ = _run(_one_load_one_kernel(5, 1.0, 1.0), [app], hw)
    np.testing.assert_allclose(times.time_s, [2.0] * 5, rtol=1e-12)


def test_a_compute_share_queues_on_the_compute_unit():
    """An app's 0.7 s kernel issued at 0.5 s (while the token's load runs) holds the compute
    unit until 1.2 s; the token's kernel, issued at 1 s, waits 0.2 s."""
    hw = make_hw({"compute": {"units": {"npu": {"peak_TOPS": 1e-3, "efficiency": 1.0}}}})
    app = BackgroundApp(name="npu", period_s=100.0, start_s=0.5, compute_Gops=0.7)
    costs = _one_load_one_kernel(1, 1.0, 1.0)
    times, _ = _run(costs, [app], hw)
    assert times.time_s[0] == pytest.approx(2.2, rel=1e-12)
    assert times.stall_s[0] == pytest.approx(0.2, rel=1e-12)


def test_flash_reads_of_an_app_slow_a_flash_bound_decode():
    """An app reading flash (one command queue) makes a flash-bound DIP run slower, and a
    DRAM-only app leaves its flash time alone."""
    base = to_plain(make_hw({"flash": UFS}, capacity_for(0.3)))
    trace = random_trace(T=30, seed=2)
    alone = simulate(hw_from_dict(base), TINY, trace)
    reader = {"name": "reader", "period_s": 1e-3, "flash_read_KiB": 64, "flash_requests": 16}
    busy = simulate(hw_from_dict({**base, "background": [reader]}), TINY, trace)
    assert busy.time_per_token_s > alone.time_per_token_s
    assert busy.background == ["reader"]


def test_an_app_that_needs_more_than_a_resource_is_refused():
    """Bursts that take longer than their period on a resource would queue without end."""
    data = to_plain(make_hw({"flash": UFS}))
    data["background"] = [{"name": "flood", "period_s": 1e-4, "flash_read_KiB": 64,
                           "flash_requests": 16}]
    with pytest.raises(ConfigError, match="flash") as err:
        simulate(hw_from_dict(data), TINY, random_trace(T=4))
    assert err.value.key_path == "background[0].period_s"


@pytest.mark.parametrize("name", background_presets())
def test_presets_load_and_run(name):
    data = to_plain(load_hw("flagship"))
    data["dram"]["capacity_GB"] = 1e-3
    data["background"] = [name]
    hw = hw_from_dict(data, source="phone.yaml")
    assert hw.background[0].name == name
    r = simulate(hw, TINY, random_trace(T=6, seed=1))
    assert r.background == [name] and r.num_tokens == 6


@pytest.mark.parametrize("background,key", [
    ("camera_preview", "background"),
    (["no_such_app"], "background[0]"),
    ([{"name": "x"}], "background[0].period_s"),
    ([{"name": "x", "period_s": 0}], "background[0].period_s"),
    ([{"name": "x", "period_s": 1, "flash_pattern": "diagonal"}], "background[0].flash_pattern"),
    ([{"name": "x", "period_s": 1}, {"name": "x", "period_s": 2}], "background[1].name"),
])
def test_bad_background_lists_name_the_key(background, key):
    data = to_plain(load_hw("flagship"))
    data["background"] = background
    with pytest.raises(ConfigError) as err:
        hw_from_dict(data, source="phone.yaml")
    assert err.value.key_path == key
