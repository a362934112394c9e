"""Load (or, on a machine's first run, compile) the simulator's kernels in this process.

A sweep calls it once in the driver before forking its local workers, so every worker
inherits ready kernels instead of loading them itself (a few hundred ms each, seconds on a
machine's very first run). Simulates a tiny synthetic trace: touches the LRU replay, the
request counting, the token step and the event path's stream with the argument types real runs use.
"""
from __future__ import annotations

from memsim.hw import HardwareConfig
from memsim.traces import ModelShape, synth_trace

_TINY = ModelShape(name="warm-up", num_hidden_layers=1, hidden_size=64, intermediate_size=128,
                   num_attention_heads=1, num_key_value_heads=1, vocab_size=8)


def warm_up(hw: HardwareConfig) -> None:
    """One tiny simulation on `hw`; its result is discarded."""
    from memsim.sim.simulator import simulate

    simulate(hw, _TINY, synth_trace(_TINY, 4, 0.5, seed=0), mode="event")
    simulate(hw, _TINY, synth_trace(_TINY, 4, 0.5, seed=0), engine="event")  # the stream
