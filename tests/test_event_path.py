"""The event path (the stream's compiled program stepped by SimPy events, memsim/sim/_stream.py)
gives the compiled path's times (memsim/sim/_token_step.py) wherever both apply, and its
coarse steps are exact: interrupting it at any other process's event changes nothing."""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from memsim.core.schema import to_plain
from memsim.hw.config import hw_from_dict, load_hw
from memsim.sim.simulator import simulate
from memsim.traces.trace import Trace
from tests.helpers import TINY, random_trace

PRESETS = ("paper_reference", "flagship", "midrange")


def _traces():
    """Dense, DIP (up/down columns), CATS (dense W_gate, W_up rows) and a predictor's
    neuron bundles, each with and without a prompt."""
    dip = random_trace(T=9, seed=11, sequence_lengths=(5, 4))
    rng = np.random.default_rng(12)
    down = rng.random((9, 2, 160)) < 0.4
    cats = Trace(up_rows=down, gate=np.ones((9, 2, 64), bool), down=down, model=TINY,
                 method="cats", sequence_lengths=(5, 4))
    neurons = Trace(neurons=rng.random((9, 2, 160)) < 0.3, model=TINY, method="predictor",
                    predictor_params=5_000)
    dense = dataclasses.replace(dip, up=np.ones_like(dip.up), down=np.ones_like(dip.down))
    out = {"dense": dense, "dip": dip, "cats": cats, "predictor": neurons}
    out.update({f"{k}+prompt": dataclasses.replace(v, prompt_len=37) for k, v in list(out.items())})
    return out


TRACES = _traces()
OPTIONS = {  # timing options and placements
    "preset": {},
    "no-prefetch": {"timing": {"prefetch_next_layer": False}},
    "serial": {"timing": {"flash_dram_concurrent": False}},
    "serial-no-prefetch": {"timing": {"flash_dram_concurrent": False,
                                      "prefetch_next_layer": False}},
    "streamed": {"placement": {"attention": "streamed", "embedding": "streamed",
                               "lm_head": "streamed", "mlp": "streamed"}},
    "resident-overflow": {"placement": {"mlp": "resident"}, "dram": {"capacity_GB": 7e-5}},
    "small-cache": {"dram": {"capacity_GB": 1e-4}},
}


def _hw(preset: str, option: dict):
    data = to_plain(load_hw(preset))
    data["dram"]["capacity_GB"] = 1e-3
    for section, values in option.items():
        data[section] = {**data[section], **values}
    return hw_from_dict(data, source="test.yaml")


@pytest.mark.parametrize("preset,option", list(itertools.product(PRESETS, OPTIONS)))
def test_event_path_equals_compiled_path_per_token(preset, option):
    hw = _hw(preset, OPTIONS[option])
    for name, trace in TRACES.items():
        compiled = simulate(hw, TINY, trace, engine="compiled")
        event = simulate(hw, TINY, trace, engine="event")
        for key in ("time_s", "flash_s", "dram_s", "compute_s", "stall_s"):
            np.testing.assert_allclose(event.per_token[key], compiled.per_token[key],
                                       rtol=1e-9, atol=1e-15, err_msg=f"{name}: {key}")
        for key in ("start_s", "end_s"):  # the event path's clock starts with the prefill
            ours, theirs = (np.asarray(r.per_token[key]) - r.per_token["start_s"][0]
                            for r in (event, compiled))
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15, err_msg=key)
        for key in ("flash", "dram", "compute"):
            assert event.busy_s[key] == pytest.approx(compiled.busy_s[key], rel=1e-9), name
        assert event.ttft_s == pytest.approx(compiled.ttft_s, rel=1e-9), name


def _ticker(period_s: float):
    """A process with an event every `period_s` that uses no resource: it only interrupts
    the stream's compiled steps."""
    def run(env):
        while True:
            yield env.timeout(period_s)
    return run


@pytest.mark.parametrize("period_s", [3.1e-6, 7.7e-5, 1.3e-3])
def test_interrupting_the_stream_changes_no_time(period_s, monkeypatch):
    """The stream stops before every op issued at or after another process's next event;
    with a do-nothing process firing often, every token is cut into many steps and still
    gets the same times, the same queueing behind a background app and the same heat."""
    import memsim.sim.scenario as scenario

    hw = hw_from_dict({**to_plain(load_hw("flagship")), "thermal": "flagship_phone",
                       "background": ["camera_preview"],
                       "dram": {**to_plain(load_hw("flagship"))["dram"], "capacity_GB": 1e-3}})
    trace = TRACES["dip+prompt"]
    plain = simulate(hw, TINY, trace)
    original = scenario.AppLoad

    class WithTicker(original):  # the first app also starts a ticker beside itself
        def run(self, env, phone):
            env.process(_ticker(period_s)(env))
            yield from super().run(env, phone)

    monkeypatch.setattr(scenario, "AppLoad", WithTicker)
    ticked = simulate(hw, TINY, trace)
    for key in ("time_s", "start_s", "end_s", "temperature_C", "stall_s"):
        np.testing.assert_allclose(ticked.per_token[key], plain.per_token[key], rtol=1e-12,
                                   atol=1e-15, err_msg=key)
    assert ticked.ttft_s == plain.ttft_s
