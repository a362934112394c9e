"""Simulated decode tokens per second of the event-driven engine (issue 2's target: >= 1,000).

Workload: a 256-token synthetic Phi-3-Medium trace, DIP at 50% MLP density, LRU cache,
flagship preset. Each repetition simulates a fresh copy of the trace (nothing cached from the
previous run: column counts, packed masks and cache replay are all redone). Prints figures;
asserts nothing about time.
    python benchmarks/bench_simulator.py [--tokens 256] [--repeats 5]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from memsim.hw.config import load_hw
from memsim.sim.simulator import simulate
from memsim.traces.model_shape import load_model_shape
from memsim.traces.synth import synth_trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hw", default="flagship")
    args = parser.parse_args()
    model, hw = load_model_shape("phi-3-medium"), load_hw(args.hw)
    trace = synth_trace(model, args.tokens, 0.5, seed=0)
    walls = []
    for _ in range(args.repeats):
        fresh = dataclasses.replace(trace)  # a new Trace object: no cached counts
        start = time.perf_counter()
        result = simulate(hw, model, fresh, mode="event")
        walls.append(time.perf_counter() - start)
    best, median = min(walls), float(np.median(walls))
    print(f"workload: phi-3-medium, {args.tokens} tokens, DIP density 0.5, "
          f"{hw.cache.impl.upper()}, {hw.name}, event mode")
    print(f"simulated decode: {result.tokens_per_s:.3f} tok/s on the phone, "
          f"hit rate {result.hit_rate:.3f}")
    print(f"simulator speed: best {args.tokens / best:,.0f} simulated tok/s "
          f"({best * 1e3:.1f} ms), median {args.tokens / median:,.0f} simulated tok/s "
          f"over {args.repeats} runs")


if __name__ == "__main__":
    main()
