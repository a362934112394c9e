"""Simulated decode tokens per second of the event-driven engine, where verdicts are made.

Workload: a 256-token synthetic Phi-3-Medium trace, DIP at 50% MLP density, LRU cache,
flagship preset, at DRAM 2, 3, 4 and 6 GB (hit rates from ~0.2 to ~0.98: the smaller the
DRAM, the more runs the request counting walks). The worst of the four is the figure that
counts (issue 21's target: >= 5,000 simulated tok/s on one core); over-read admission
(`cache.admit_overread: true`) is measured the same way (target: >= 1,000).
Each repetition simulates a fresh copy of the trace (nothing cached from the previous run:
column counts, packed masks and cache replay are all redone). Prints wall and process-CPU
figures (on a shared machine the CPU figure leaves out the time spent waiting for the core);
asserts nothing about time. Pin it to one core for one-core figures:
    taskset -c 0 python benchmarks/bench_simulator.py [--tokens 256] [--repeats 5]
        [--dram 2 3 4 6] [--workloads lru admit]

Adding a workload: write `def name(hw, model, trace, repeats) -> Figure` below and list it in
WORKLOADS; `main` runs it at every DRAM size and prints its rows and its worst.
The event path (issue 18's target: >= 1,000 simulated tok/s) is timed by
    python benchmarks/bench_simulator.py --event-path [--answer-tokens 2048] [--dram ...]
with heat (flagship_phone) and one background app (camera_preview): a chat session of one
long answer looping the same trace, against the compiled path and the event path with
nothing beside it on the same trace, at each DRAM size; the worst heated figure counts.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Callable, NamedTuple

import numpy as np

from memsim.hw.config import load_hw
from memsim.sim.simulator import simulate
from memsim.traces.model_shape import load_model_shape
from memsim.traces.synth import synth_trace

DRAM_GB = (2.0, 3.0, 4.0, 6.0)


class Figure(NamedTuple):
    hit_rate: float
    phone_tokens_per_s: float  # what the simulation says the phone does
    best_s: float  # wall seconds of the fastest repetition
    median_s: float
    best_cpu_s: float  # process CPU seconds of the fastest repetition


def timed_simulations(hw, model, trace, repeats: int) -> Figure:
    """Simulate `repeats` fresh copies of `trace` on `hw` (event mode); wall times."""
    walls, cpus = [], []
    for _ in range(repeats):
        fresh = dataclasses.replace(trace)  # a new Trace object: no cached counts
        start, cpu = time.perf_counter(), time.process_time()
        result = simulate(hw, model, fresh, mode="event")
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return Figure(result.hit_rate, result.tokens_per_s, min(walls), float(np.median(walls)),
                  min(cpus))


def lru(hw, model, trace, repeats: int) -> Figure:
    """The preset as it is: LRU, over-read admission off."""
    return timed_simulations(hw, model, trace, repeats)


def admit(hw, model, trace, repeats: int) -> Figure:
    """LRU with over-read admission on (`cache.admit_overread: true`)."""
    hw = dataclasses.replace(hw, cache=dataclasses.replace(hw.cache, admit_overread=True))
    return timed_simulations(hw, model, trace, repeats)


WORKLOADS: dict[str, Callable] = {"lru": lru, "admit": admit}


def with_dram(hw, capacity_GB: float):
    return dataclasses.replace(hw, dram=dataclasses.replace(hw.dram, capacity_GB=capacity_GB))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hw", default="flagship")
    parser.add_argument("--dram", type=float, nargs="+", default=list(DRAM_GB),
                        help="DRAM capacities (GB) to run at")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS),
                        choices=list(WORKLOADS))
    parser.add_argument("--event-path", action="store_true",
                        help="time the event path with heat and a background app instead")
    parser.add_argument("--answer-tokens", type=int, default=2048,
                        help="--event-path: tokens of the session's one answer")
    args = parser.parse_args()
    if args.tokens < 1 or args.repeats < 1 or args.answer_tokens < 1:
        parser.error("--tokens, --repeats and --answer-tokens must be at least 1")
    if min(args.dram) <= 0:
        parser.error("--dram sizes must be positive (GB)")
    if args.event_path:
        event_path(args)
        return
    model, hw = load_model_shape("phi-3-medium"), load_hw(args.hw)
    trace = synth_trace(model, args.tokens, 0.5, seed=0)
    simulate(with_dram(hw, args.dram[0]), model, dataclasses.replace(trace))  # compile once
    print(f"workload: phi-3-medium, {args.tokens} tokens, DIP density 0.5, "
          f"{hw.cache.impl.upper()}, {hw.name}, event mode, best of {args.repeats}")
    for name in args.workloads:
        print(f"\n{name}: {WORKLOADS[name].__doc__.strip()}")
        print("| DRAM | hit rate | phone tok/s | simulated tok/s (best wall) | (median wall) "
              "| (best CPU time) |")
        print("|---|---|---|---|---|---|")
        worst, worst_cpu = float("inf"), float("inf")
        for capacity in args.dram:
            fig = WORKLOADS[name](with_dram(hw, capacity), model, trace, args.repeats)
            speed = args.tokens / fig.best_s
            worst, worst_cpu = min(worst, speed), min(worst_cpu, args.tokens / fig.best_cpu_s)
            print(f"| {capacity:g} GB | {fig.hit_rate:.3f} | {fig.phone_tokens_per_s:.3f} | "
                  f"{speed:,.0f} | {args.tokens / fig.median_s:,.0f} | "
                  f"{args.tokens / fig.best_cpu_s:,.0f} |", flush=True)
        print(f"{name}: worst {worst:,.0f} simulated tok/s (wall; {worst_cpu:,.0f} by CPU time, "
              f"which leaves out waiting for a shared core)")


def event_path(args) -> None:
    """Simulator speed of the event path (heat + a camera app) and, on the same trace, of the
    compiled and the event path with nothing beside the decode stream, at each DRAM size."""
    model, base = load_model_shape("phi-3-medium"), load_hw(args.hw)
    trace = synth_trace(model, args.tokens, 0.5, seed=0)
    print(f"workload: phi-3-medium, DIP density 0.5, {base.name}; trace of {args.tokens} "
          f"tokens; session answer of {args.answer_tokens} tokens looping it")
    worst = float("inf")
    for capacity in args.dram:
        print(f"\nDRAM {capacity:g} GB")
        for label, speed in event_path_rows(args, model, with_dram(base, capacity), trace):
            if "heat" in label:
                worst = min(worst, speed)
    print(f"\nevent path with heat + camera_preview: worst {worst:,.0f} simulated tok/s")


def event_path_rows(args, model, hw, trace) -> list[tuple[str, float]]:
    """Time the four rows at one DRAM size; print each, return (label, best tok/s)."""
    from memsim.core.schema import to_plain
    from memsim.hw.config import hw_from_dict

    hot = hw_from_dict({**to_plain(hw), "thermal": "flagship_phone",
                        "background": ["camera_preview"]})
    session = {"turns": [{"prompt_tokens": 64, "answer_tokens": args.answer_tokens}],
               "max_context_tokens": args.answer_tokens + 64}
    rows = [("compiled path, decode alone", hw, None, "compiled", args.tokens),
            ("event path, decode alone", hw, None, "event", args.tokens),
            ("event path, heat + camera_preview, the trace", hot, None, "event", args.tokens),
            ("event path, heat + camera_preview, session", hot, session, "event",
             args.answer_tokens)]
    out = []
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
              f"{result.simulated_time_s:.1f} s simulated", flush=True)
        out.append((label, tokens / best))
    return out


if __name__ == "__main__":
    main()
