"""Laws of the sliding-window cache (memsim/cache/window.py): a crafted 3-token window pins
hits, loads and the DRAM it holds by hand; the vectorised replay equals the stepwise loop; the
DRAM plan measures the window's peak and caps or refuses it (memsim/sim/plan.py)."""
from __future__ import annotations

import numpy as np
import pytest

import memsim
from memsim.cache import POLICIES, CachePolicy
from memsim.cache.window import WindowPolicy, window_peak_columns
from memsim.core.errors import ConfigError
from memsim.traces.bits import pack_words
from memsim.traces.model_shape import ModelShape
from memsim.traces.trace import Trace
from tests.helpers import make_hw
from tests.test_cache import assert_same, random_case, trace

# six tokens over six columns; a 3-token window holds what tokens t-2 .. t used
CRAFTED = trace(6, (0, 1), (1, 2), (3,), (0, 3), (4,), (5,))


def steps(policy) -> tuple[list[int], list[int], list[int]]:
    """Per token: hits, loads (misses) and columns held after the token."""
    hits, loads, held = [], [], []
    for mask in CRAFTED:
        hit = policy.access(mask)
        hits.append(int(hit.sum()))
        loads.append(int((mask & ~hit).sum()))
        held.append(int(policy.resident().sum()))
    return hits, loads, held


def test_three_token_window_keeps_what_the_last_three_tokens_used():
    # by hand: before t3 the window is t0..t2 = {0,1,2,3}, so t3 finds 0 and 3; after t4 the
    # window is t2..t4 = {0,3,4} (1 and 2 were last used at t1); after t5 it is {0,3,4,5}
    hits, loads, held = steps(WindowPolicy.with_window(3)(6, 99))
    assert hits == [0, 1, 0, 2, 0, 0]
    assert loads == [2, 1, 1, 0, 1, 1]
    assert held == [2, 3, 4, 4, 3, 4]


def test_capped_window_keeps_the_most_recently_used_and_drops_what_left_the_window():
    # capacity 3: at t2 the oldest (0, used at t0) goes; at t3 {1, 2} tie on t1, 1 stays
    # (lower index); at t4 1 leaves the window; at t5 0 and 3 tie on t3, 0 stays
    policy = WindowPolicy.with_window(3)(6, 3)
    hits, loads, held = steps(policy)
    assert hits == [0, 1, 0, 1, 0, 0]
    assert loads == [2, 1, 1, 1, 1, 1]
    assert held == [2, 3, 3, 3, 3, 3]
    assert set(np.flatnonzero(policy.resident())) == {0, 4, 5}


def test_one_token_window_holds_only_the_current_mask():
    hits, loads, held = steps(WindowPolicy.with_window(1)(6, 99))
    assert hits == [0, 1, 0, 1, 0, 0] and held == [2, 2, 1, 2, 1, 1]  # only the last mask


def test_window_peak_is_the_largest_union_of_k_consecutive_masks():
    words = pack_words(CRAFTED[:, None, :])  # (T, 1, W)
    assert window_peak_columns(words, (6,), 3).tolist() == [4]
    assert window_peak_columns(words, (3, 3), 3).tolist() == [4]  # (0,1),(1,2),(3,)
    assert window_peak_columns(words, (2, 2, 2), 3).tolist() == [3]  # no window crosses


@pytest.mark.parametrize("window", [1, 2, 3, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_run_batch_equals_the_stepwise_loop(window, seed):
    groups, capacities, lengths = random_case(seed)  # capacities from 0 to above the width
    policy = WindowPolicy.with_window(window)
    loop = CachePolicy.run_batch.__func__(policy, groups, capacities, lengths)
    assert_same(policy.run_batch(groups, capacities, lengths), loop)


def test_window_is_registered_and_configured_from_the_cache_keys():
    hw = make_hw({"cache": {"impl": "window", "window_tokens": 3}})
    policy = POLICIES.get(hw.cache.impl).configured(hw.cache)
    assert issubclass(policy, WindowPolicy) and policy.window_tokens == 3


# ------------------------------------------------------------------ through the simulator
PLAIN = ModelShape(name="plain", num_hidden_layers=1, hidden_size=64, intermediate_size=6,
                   num_attention_heads=4, num_key_value_heads=4, vocab_size=100,
                   mlp="plain", hidden_act="relu")
BUNDLE_BYTES = 2 * 64 * 4 / 8  # row of W_up + column of W_down, 64 values each, 4 bits


def _run(capacity_columns: int, fit: str = "cap"):
    tr = Trace(neurons=CRAFTED[:, None, :], model=PLAIN, method="predictor")
    static = memsim.simulate(make_hw({"dram": {"capacity_GB": 1.0}}), None,
                             tr).dram_used_breakdown_bytes
    fixed = static["resident_weights"] + static["kv"]
    hw = make_hw({"dram": {"capacity_GB": (fixed + capacity_columns * BUNDLE_BYTES) / 1e9},
                  "cache": {"impl": "window", "window_tokens": 3, "window_fit": fit}})
    return memsim.simulate(hw, None, tr)


def test_simulated_window_loads_and_holds_what_the_hand_count_says():
    r = _run(capacity_columns=4)
    assert r.cache_capacity_columns["neurons"] == [4]
    assert r.flash_bytes_per_token * 6 == pytest.approx(6 * BUNDLE_BYTES)  # 6 loads in all
    assert r.hit_rate == pytest.approx(3 / 9)
    assert r.dram_used_breakdown_bytes["cache"] == pytest.approx(4 * BUNDLE_BYTES)
    assert "fits" in r.plan_notes["window"]


def test_a_window_that_does_not_fit_is_capped_and_says_so():
    r = _run(capacity_columns=3)
    assert r.flash_bytes_per_token * 6 == pytest.approx(7 * BUNDLE_BYTES)
    assert r.dram_used_breakdown_bytes["cache"] == pytest.approx(3 * BUNDLE_BYTES)
    assert "capped" in r.plan_notes["window"]


def test_a_window_that_does_not_fit_is_refused_when_asked_naming_the_dram():
    with pytest.raises(ConfigError) as err:
        _run(capacity_columns=3, fit="refuse")
    assert err.value.key_path == "dram.capacity_GB" and "4 columns" in str(err.value)
    _run(capacity_columns=4, fit="refuse")  # exactly enough: runs


def test_bad_window_keys_are_named():
    for key, value in (("window_tokens", 0), ("window_tokens", 2.5), ("window_fit", "shrink")):
        with pytest.raises(ConfigError) as err:
            make_hw({"cache": {"impl": "window", key: value}})
        assert key in err.value.key_path
