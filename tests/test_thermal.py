"""Heat as a process (memsim/sim/thermal.py): the governor's temperatures against the RC
formula, its first throttle time, its hysteresis, and what a step does to a token's time."""
from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from memsim.core.errors import ConfigError
from memsim.core.schema import to_plain
from memsim.hw.background import BackgroundApp
from memsim.hw.config import hw_from_dict, load_hw
from memsim.hw.thermal import ThermalConfig, ThrottleStep
from memsim.sim.resources import Phone
from memsim.sim.simulator import simulate
from memsim.sim.thermal import Governor, next_level
from tests.helpers import REFERENCE, TINY, capacity_for, make_hw, random_trace

C, R, AMBIENT, PERIOD = 40.0, 6.0, 25.0, 0.37
THRESHOLD = 35.0


def _rc(t_s, power_W):
    """T(t) from ambient at constant power: T_amb + P R (1 - exp(-t / RC))."""
    return AMBIENT + power_W * R * (1 - np.exp(-np.asarray(t_s) / (R * C)))


def _first_throttle_s(power_W):
    """The first governor sample at or after the RC curve crosses THRESHOLD."""
    crossing = -R * C * math.log(1 - (THRESHOLD - AMBIENT) / (power_W * R))
    return PERIOD * math.ceil(crossing / PERIOD)


def _thermal(**overrides) -> ThermalConfig:
    values = dict(heat_capacity_J_per_K=C, thermal_resistance_K_per_W=R, ambient_C=AMBIENT,
                  sample_period_s=PERIOD, hysteresis_C=1.5,
                  steps=(ThrottleStep(above_C=THRESHOLD, compute_scale=0.5),))
    return ThermalConfig(**{**values, **overrides})


def test_constant_power_temperature_follows_the_rc_formula_and_throttles_on_time():
    """Idle power and an always-on app's own power, nothing else: the governor's samples lie
    on the RC curve and its first throttle is the first sample past the threshold."""
    app = BackgroundApp(name="lamp", period_s=1.0, power_W=1.2)
    env, phone = simpy.Environment(), Phone(True)
    governor = Governor(_thermal(idle_power_W=0.8), phone, (app,))
    env.process(governor.run(env))
    env.run(until=600.0)
    log = governor.log
    np.testing.assert_allclose(log.temperature_C, _rc(log.time_s, 2.0), rtol=1e-12)
    assert log.first_throttle_s == pytest.approx(_first_throttle_s(2.0), rel=1e-12)
    assert phone.speed[2] == 0.5 and phone.speed[1] == 1.0


def test_an_app_that_is_on_part_of_the_time_heats_by_its_on_time():
    """on 3 s, off 7 s: over whole cycles, the power averages 30% of the app's."""
    app = BackgroundApp(name="blink", period_s=1.0, power_W=2.0, on_s=3.0, off_s=7.0)
    assert app.on_time_s(0.0, 100.0) == pytest.approx(30.0)
    assert app.on_time_s(2.5, 12.5) == pytest.approx(0.5 + 2.5)


def test_simulated_tokens_see_the_rc_temperature_when_work_costs_no_energy():
    """A chat whose bytes and ops cost no energy heats only by idle power: each token's
    temperature is the RC curve at the governor's last sample before it started (the
    session's think time makes the minutes pass)."""
    hw = _heated_hw({"idle_power_W": 3.0}, energy_pJ=0.0)
    r = simulate(hw, TINY, random_trace(T=40, seed=3),
                 session={"turns": [{"prompt_tokens": 4, "answer_tokens": 5, "think_s": 9.7}],
                          "repeat": 40, "max_context_tokens": 512})
    start = np.asarray(r.per_token["start_s"])
    last_sample = np.floor(start / PERIOD) * PERIOD
    np.testing.assert_allclose(r.per_token["temperature_C"], _rc(last_sample, 3.0), rtol=1e-12)
    assert r.time_to_first_throttle_s == pytest.approx(_first_throttle_s(3.0), rel=1e-12)


def test_a_throttled_step_slows_every_transfer_and_kernel_by_its_scale():
    """All three speeds halved (a phone that starts hot and cannot cool): every token takes
    exactly twice as long as on the cool phone."""
    halved = ThrottleStep(above_C=THRESHOLD, compute_scale=0.5, dram_scale=0.5,
                          flash_scale=0.5)
    trace = random_trace(T=12, seed=5)
    hot = simulate(_heated_hw({"initial_C": 90.0, "heat_capacity_J_per_K": 1e6,
                               "steps": [to_plain(halved)]}), TINY, trace)
    cool = simulate(_heated_hw({"steps": [to_plain(halved)]}), TINY, trace)
    assert max(hot.per_token["throttle_level"]) == min(hot.per_token["throttle_level"]) == 1
    np.testing.assert_allclose(hot.per_token["time_s"], 2 * np.asarray(cool.per_token["time_s"]),
                               rtol=1e-12)
    assert hot.per_token["speed_factor"][0] == 0.5


def test_a_step_change_bounds_the_work_it_leaves_priced_at_the_old_speed():
    """A phone just under the threshold, heated hard, crosses it at the first sample (0.37 s):
    compute halves.
    Compute work queued to 0.9 s was priced at full speed; at half speed it would take twice
    as long: the bound is its 0.53 s beyond the change x (1 / 0.5 - 1). DRAM work queued to
    2 s keeps its speed (no dram_scale): it adds nothing."""
    env, phone = simpy.Environment(), Phone(True)
    phone.compute.reserve(0.0, 0.5)  # in service at the change
    phone.compute.reserve(0.0, 0.4)  # waiting: starts at 0.5, after the change
    phone.dram.reserve(0.0, 2.0)
    governor = Governor(_thermal(idle_power_W=100.0, initial_C=THRESHOLD - 0.1), phone)
    env.process(governor.run(env))
    env.run(until=PERIOD + 1e-9)
    assert governor.level == 1 and governor.log.step_changes == 1
    assert governor.log.queued_at_changes_s == pytest.approx(0.9 - PERIOD, rel=1e-12)
    assert governor.log.repricing_bound_s == pytest.approx((0.9 - PERIOD) * 1.0, rel=1e-12)


def test_a_heated_run_reports_its_step_changes_and_longest_waits():
    """A phone that crosses the threshold while it decodes: the result carries the
    governor's count of step changes (the tokens' levels show at most that many: changes
    can fall in think time) and the longest waits; a plain run carries neither."""
    hw = _heated_hw({"idle_power_W": 20.0})  # crosses 35 C at ~21 s of the ~39 s session
    r = simulate(hw, TINY, random_trace(T=40, seed=3),
                 session={"turns": [{"prompt_tokens": 4, "answer_tokens": 5, "think_s": 1.3}],
                          "repeat": 30, "max_context_tokens": 512})
    levels = np.asarray(r.per_token["throttle_level"])
    assert r.throttle_step_changes >= np.count_nonzero(np.diff(levels)) >= 1
    assert r.repricing_bound_s >= 0.0
    assert set(r.longest_queue_wait_s) == {"flash", "dram", "compute"}
    plain = simulate(make_hw(REFERENCE, capacity_for(0.4)), TINY, random_trace(T=8, seed=1))
    assert plain.longest_queue_wait_s is None and plain.throttle_step_changes is None


def test_governor_steps_up_at_thresholds_and_down_only_past_the_hysteresis():
    cfg = _thermal(steps=(ThrottleStep(above_C=40, compute_scale=0.8),
                          ThrottleStep(above_C=45, compute_scale=0.6)), hysteresis_C=2.0)
    assert next_level(0, 39.9, cfg) == 0
    assert next_level(0, 40.0, cfg) == 1
    assert next_level(0, 46.0, cfg) == 2  # two thresholds at once
    assert next_level(2, 43.5, cfg) == 2  # below 45 but not below 43
    assert next_level(2, 42.9, cfg) == 1
    assert next_level(1, 38.1, cfg) == 1
    assert next_level(2, 30.0, cfg) == 0


def test_heat_raises_the_error_of_a_missing_energy_figure():
    data = to_plain(load_hw("midrange"))
    data["thermal"] = "flagship_phone"
    with pytest.raises(ConfigError, match="read_energy_pJ_per_byte"):
        hw_from_dict(data, source="phone.yaml")


@pytest.mark.parametrize("thermal,key", [
    ("hot", "thermal"),
    ({"heat_capacity_J_per_K": 0, "thermal_resistance_K_per_W": 1}, "heat_capacity_J_per_K"),
    ({"heat_capacity_J_per_K": 1, "thermal_resistance_K_per_W": 1,
      "steps": [{"above_C": 50, "compute_scale": 0.5}, {"above_C": 45, "compute_scale": 0.4}]},
     "steps[1].above_C"),
    ({"heat_capacity_J_per_K": 1, "thermal_resistance_K_per_W": 1, "fan": True}, "fan"),
])
def test_bad_thermal_sections_name_the_key(thermal, key):
    data = to_plain(load_hw("flagship"))
    data["thermal"] = thermal
    with pytest.raises(ConfigError) as err:
        hw_from_dict(data, source="phone.yaml")
    assert key in err.value.key_path


def test_thermal_none_is_the_default_and_changes_nothing():
    trace = random_trace(T=8, seed=1)
    data = to_plain(make_hw(REFERENCE, capacity_for(0.4)))
    plain = simulate(hw_from_dict(data), TINY, trace)
    data["thermal"] = "none"
    assert simulate(hw_from_dict(data), TINY, trace).per_token == plain.per_token
    assert plain.peak_temperature_C is None and plain.time_to_first_throttle_s is None


def _heated_hw(thermal: dict, energy_pJ: float = 0.0):
    """TINY's test phone with energy figures and the test's thermal model."""
    hw = make_hw({"flash": {"impl": "simple", "read_bandwidth_GBps": 1.0, "latency_us": 0.0,
                            "read_energy_pJ_per_byte": energy_pJ},
                  "dram": {"read_energy_pJ_per_byte": energy_pJ,
                           "write_energy_pJ_per_byte": energy_pJ},
                  "compute": {"units": {"npu": {"peak_TOPS": 10.0, "efficiency": 0.5,
                                                "energy_pJ_per_op": energy_pJ}}}},
                 capacity_for(0.4, kv_tokens=512 + 16))  # the sessions' longest context
    data = to_plain(hw)
    data["thermal"] = {**to_plain(_thermal()), **thermal}
    return hw_from_dict(data, source="test.yaml")
