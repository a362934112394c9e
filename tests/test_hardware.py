"""The timeline shortcut for FIFO resources equals simpy.Resource."""
from __future__ import annotations

import numpy as np
import simpy

from memsim.sim.resources import Timeline


def _with_simpy(requests):
    """requests: (issue_time_s, duration_s) in issue order -> (start, end) per request."""
    env = simpy.Environment()
    res = simpy.Resource(env, capacity=1)
    out = [None] * len(requests)

    def user(i, at, duration):
        yield env.timeout(at)
        with res.request() as req:
            yield req
            start = env.now
            yield env.timeout(duration)
            out[i] = (start, env.now)

    for i, (at, duration) in enumerate(requests):
        env.process(user(i, at, duration))
    env.run()
    return out


def test_timeline_reservations_equal_simpy_fifo_resource():
    rng = np.random.default_rng(0)
    issue = np.sort(rng.random(200)) * 10  # requests arrive in time order
    durations = rng.exponential(0.08, 200)
    requests = list(zip(issue.tolist(), durations.tolist()))
    timeline = Timeline("flash")
    ours = [timeline.reserve(at, d) for at, d in requests]
    np.testing.assert_allclose(ours, _with_simpy(requests), rtol=1e-12)
    assert timeline.busy_s == sum(durations)


def test_empty_transfer_does_not_wait_for_the_queue():
    timeline = Timeline("dram")
    timeline.reserve(0.0, 5.0)
    assert timeline.reserve(1.0, 0.0) == (1.0, 1.0)
