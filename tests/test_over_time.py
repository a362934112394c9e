"""Burst and sustained tokens/s (memsim/sim/over_time.py) against hand-computed token times,
and what a simulated session reports for them."""
from __future__ import annotations

import numpy as np
import pytest

from memsim.sim.over_time import burst_tokens_per_s, burst_window, sustained_tokens_per_s
from memsim.sim.simulator import simulate
from tests.helpers import TINY, make_hw, random_trace


def test_burst_is_the_32_tokens_after_a_warm_up_of_32():
    """Cold tokens (2 s) then warm ones (0.5 s): the burst sees only warm ones, 2 tok/s; the
    token after the burst (9 s) is not in it either."""
    times = np.array([2.0] * 32 + [0.5] * 32 + [9.0] * 10)
    assert burst_tokens_per_s(times) == pytest.approx(32 / 16.0, rel=1e-12)


@pytest.mark.parametrize("num_tokens,window", [(100, (32, 64)), (64, (32, 64)),
                                               (40, (8, 40)), (32, (0, 32)), (5, (0, 5))])
def test_a_short_run_takes_its_last_32_tokens(num_tokens, window):
    sl = burst_window(num_tokens)
    assert (sl.start, sl.stop) == window


def test_sustained_is_the_last_60_s_of_decode_time_with_the_crossing_token():
    """Last tokens of 7 s: 8 of them make 56 s, the 9th crosses 60 s: 9 tokens / 63 s."""
    times = np.array([1.0] * 100 + [7.0] * 10)
    assert sustained_tokens_per_s(times) == pytest.approx(9 / 63.0, rel=1e-12)
    assert sustained_tokens_per_s(np.array([0.5] * 10)) == pytest.approx(2.0, rel=1e-12)


def test_a_session_reports_burst_and_sustained_of_its_decode_tokens():
    """Think time and prefills sit between the answers: neither counts (decode time only)."""
    session = {"turns": [{"prompt_tokens": 8, "answer_tokens": 50, "think_s": 30.0}],
               "repeat": 3, "max_context_tokens": 200}
    r = simulate(make_hw(), TINY, random_trace(T=20, seed=2), session=session)
    t = np.asarray(r.per_token["time_s"])
    assert r.burst_tokens_per_s == pytest.approx(32 / t[32:64].sum(), rel=1e-12)
    assert r.sustained_tokens_per_s == pytest.approx(t.size / t.sum(), rel=1e-12)  # < 60 s
    assert r.simulated_time_s > 90.0  # three think times passed, none of it decode time
