"""Hybrid placement (memsim/sim/hybrid.py): a share of each layer's MLP columns resident,
the rest dynamic. Resident bytes by hand, resident columns read from DRAM as hits, the
`first` and `hottest` choices, and refusals named."""
from __future__ import annotations

import numpy as np
import pytest

import memsim
from memsim.core.errors import ConfigError
from memsim.sim.hybrid import resident_count
from memsim.traces.trace import Trace
from tests.helpers import TINY, make_hw, random_trace

HYBRID = {"placement": {"mlp_resident_share": 0.25}, "cache": {"impl": "none"}}


def test_resident_bytes_are_the_share_of_each_group_by_hand():
    # TINY: L=2, H=64, I=160, 4-bit. An up_gate column holds 2 x 160 values (160 B), a down
    # column 64 values (32 B). A 0.25 share keeps 16 up_gate and 40 down columns per layer:
    # 2 x (16 x 160 + 40 x 32) = 7680 bytes on top of the other resident weights.
    tr = random_trace(T=6)
    base = memsim.simulate(make_hw({"cache": {"impl": "none"}}), None, tr)
    hybrid = memsim.simulate(make_hw(HYBRID), None, tr)
    extra = (hybrid.dram_used_breakdown_bytes["resident_weights"]
             - base.dram_used_breakdown_bytes["resident_weights"])
    assert extra == 2 * (16 * 160 + 40 * 32)
    assert "7680 bytes" in hybrid.plan_notes["mlp_resident"]


def test_resident_first_columns_are_dram_hits_and_the_rest_streams():
    T, L, H, I = 4, 2, 64, 160
    up, down = np.ones((T, L, H), bool), np.ones((T, L, I), bool)  # dense: hybrid's case
    tr = Trace(up=up, down=down, model=TINY, method="dense")
    r = memsim.simulate(make_hw(HYBRID), None, tr)
    # per token: (64 - 16) up_gate columns x 160 B + (160 - 40) down x 32 B, both layers
    assert r.flash_bytes_per_token == pytest.approx(2 * (48 * 160 + 120 * 32)
                                                    + _static_flash(tr))
    assert r.hit_rate == pytest.approx((16 + 40) / (64 + 160))


def _static_flash(tr) -> float:
    """Flash bytes a run reads besides the MLP (0 here: everything else is resident)."""
    return memsim.simulate(make_hw({"placement": {"mlp": "resident"}}), None,
                           tr).flash_bytes_per_token


def test_hottest_columns_follow_the_calibration_trace(tmp_path):
    T, L, H, I = 5, 2, 64, 160
    rng = np.random.default_rng(0)
    up = rng.random((T, L, H)) < 0.3
    down = np.zeros((T, L, I), bool)
    down[:, :, 100:140] = True  # columns 100..139 used by every token: the hottest 40
    calibration = Trace(up=up, down=down, model=TINY, method="dip")
    path = calibration.save(tmp_path / "cal.npz")
    test = Trace(up=up, down=down, model=TINY, method="dip")
    hot = make_hw({"placement": {"mlp_resident_share": 0.25, "mlp_resident_columns": "hottest",
                                 "mlp_resident_calibration": str(path)},
                   "cache": {"impl": "none"}})
    first = make_hw(HYBRID)
    by_hot, by_first = (memsim.simulate(hw, None, test) for hw in (hot, first))
    assert by_hot.hit_rate_per_layer["down"] == [1.0, 1.0]  # all 40 used columns resident
    assert by_first.hit_rate_per_layer["down"] == [0.0, 0.0]  # columns 0..39: never used


def test_resident_count_is_exact_for_decimal_shares():
    assert resident_count(0.3, 10) == 3 and resident_count(0.25, 160) == 40
    assert resident_count(0.29, 100) == 29  # 0.29 * 100 is 28.999999999999996 in floats
    assert resident_count(1.0, 7) == 7 and resident_count(0.0, 7) == 0


def test_a_share_that_does_not_fit_is_refused_naming_the_largest_that_does():
    tr = random_trace(T=4)
    with pytest.raises(ConfigError) as err:
        memsim.simulate(make_hw(HYBRID, {"dram": {"capacity_GB": 2e-5}}), None, tr)
    assert err.value.key_path == "placement.mlp_resident_share"


def test_bad_hybrid_keys_are_named(tmp_path):
    cases = [({"placement": {"mlp_resident_share": 1.5}}, "mlp_resident_share"),
             ({"placement": {"mlp_resident_share": 0.5, "mlp": "streamed"}},
              "mlp_resident_share"),
             ({"placement": {"mlp_resident_columns": "hottest"}}, "mlp_resident_calibration"),
             ({"placement": {"mlp_resident_columns": "coldest"}}, "mlp_resident_columns")]
    for override, key in cases:
        with pytest.raises(ConfigError) as err:
            make_hw(override)
        assert key in err.value.key_path
    other = Trace(up=np.ones((2, 2, 64), bool), neurons=None, down=np.ones((2, 2, 160), bool),
                  gate=np.ones((2, 2, 64), bool), model=TINY)  # 3 groups, not 2
    path = other.save(tmp_path / "other.npz")
    hw = make_hw({"placement": {"mlp_resident_share": 0.1, "mlp_resident_columns": "hottest",
                                "mlp_resident_calibration": str(path)}})
    with pytest.raises(ConfigError) as err:
        memsim.simulate(hw, None, random_trace(T=3))
    assert err.value.key_path == "placement.mlp_resident_calibration"
