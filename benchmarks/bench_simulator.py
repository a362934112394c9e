"""Simulated decode tokens per second of the event-driven engine (issue 2's target: >= 1,000).

Workload: a 256-token synthetic Phi-3-Medium trace, DIP at 50% MLP density, LRU cache,
flagship preset. Each repetition simulates a fresh copy of the trace (nothing cached from the
previous run: column counts, packed masks and cache replay are all redone). Prints figures;
asserts nothing about time.
    python benchmarks/bench_simulator.py [--tokens 256] [--repeats 5]
    python benchmarks/bench_simulator.py --event-path [--answer-tokens 2048]
The second form (issue 18's target: >= 1,000) times the event path with heat
(flagship_phone) and one background app (camera_preview): a chat session of one long answer
looping the same trace, against the compiled path and the event path with nothing beside it
on the same trace.
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
    parser.add_argument("--event-path", action="store_true",
                        help="time the event path with heat and a background app instead")
    parser.add_argument("--answer-tokens", type=int, default=2048,
                        help="--event-path: tokens of the session's one answer")
    args = parser.parse_args()
    if args.event_path:
        event_path(args)
        return
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


def event_path(args) -> None:
    """Simulator speed of the event path (heat + a camera app) and, on the same trace, of the
    compiled and the event path with nothing beside the decode stream."""
    from memsim.core.schema import to_plain
    from memsim.hw.config import hw_from_dict

    model, hw = load_model_shape("phi-3-medium"), load_hw(args.hw)
    trace = synth_trace(model, args.tokens, 0.5, seed=0)
    hot = hw_from_dict({**to_plain(hw), "thermal": "flagship_phone",
                        "background": ["camera_preview"]})
    session = {"turns": [{"prompt_tokens": 64, "answer_tokens": args.answer_tokens}],
               "max_context_tokens": args.answer_tokens + 64}
    rows = [("compiled path, decode alone", hw, None, "compiled", args.tokens),
            ("event path, decode alone", hw, None, "event", args.tokens),
            ("event path, heat + camera_preview, the trace", hot, None, "event", args.tokens),
            ("event path, heat + camera_preview, session", hot, session, "event",
             args.answer_tokens)]
    print(f"workload: phi-3-medium, DIP density 0.5, {hw.name}; trace of {args.tokens} "
          f"tokens; session answer of {args.answer_tokens} tokens looping it")
    for label, phone, sess, engine, tokens in rows:
        walls = []
        for _ in range(args.repeats):
            fresh = dataclasses.replace(trace)
            start = time.perf_counter()
            result = simulate(phone, model, fresh, session=sess, engine=engine)
            walls.append(time.perf_counter() - start)
        best, median = min(walls), float(np.median(walls))
        print(f"{label}: best {tokens / best:,.0f} simulated tok/s ({best * 1e3:.1f} ms), "
              f"median {tokens / median:,.0f} over {args.repeats} runs; on the phone "
              f"{result.tokens_per_s:.2f} tok/s, sustained {result.sustained_tokens_per_s:.2f}, "
              f"{result.simulated_time_s:.1f} s simulated")


if __name__ == "__main__":
    main()
