"""Wall time of the vectorised LRU `run_batch` on a Phi-3-Medium sized trace.

Workload (the simulator's target, PAPER.md section 3, DIP at density 0.5): 256 tokens, 40
layers; up_gate masks (T, 40, 5120) with 57.4% of columns per token and down masks
(T, 40, 17920) with 35.1%, each cache holding 50% of its columns. The masks come from a small
synthetic generator with temporal reuse (per-column popularity + AR(1) noise, top-k per
token), not from a model. Prints figures only; nothing here asserts on time.

    .venv/bin/python benchmarks/bench_cache.py [--tokens 256] [--repeats 5] [--check]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from memsim.cache import POLICIES, CachePolicy

LAYERS, HIDDEN, INTERMEDIATE = 40, 5120, 17920  # Phi-3-Medium
UP_KEEP, DOWN_KEEP = 0.574, 0.351  # DIP split of density 0.5 (PAPER.md section 3)
CACHE_FRACTION = 0.5


def reuse_masks(rng: np.random.Generator, num_tokens: int, num_layers: int, width: int,
                keep: float, rho: float = 0.8) -> np.ndarray:
    """(T, L, N) bool: per token the top `keep` fraction of popularity + AR(1) noise."""
    k = int(round(keep * width))
    popularity = rng.standard_normal((num_layers, width), dtype=np.float32)
    noise = rng.standard_normal((num_layers, width), dtype=np.float32)
    out = np.zeros((num_tokens, num_layers, width), bool)
    for t in range(num_tokens):
        noise = rho * noise + np.sqrt(1 - rho**2) * rng.standard_normal(noise.shape, np.float32)
        score = popularity + noise
        kth = np.partition(score, width - k, axis=1)[:, width - k:width - k + 1]  # (L, 1)
        out[t] = score >= kth  # ties between floats have probability ~0
    return out


def time_it(fn, repeats: int) -> tuple[float, float]:
    """Best wall and best process CPU time of `repeats` calls (seconds).

    CPU time is the steadier figure on a shared machine: it excludes time spent waiting
    for a core (all of memsim's numpy work runs on one thread).
    """
    wall = cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--check", action="store_true",
                        help="also compare with the stepwise loop on the first 2 layers (slow)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    groups = [reuse_masks(rng, args.tokens, LAYERS, HIDDEN, UP_KEEP),
              reuse_masks(rng, args.tokens, LAYERS, INTERMEDIATE, DOWN_KEEP)]
    capacities = [np.full(LAYERS, int(CACHE_FRACTION * n)) for n in (HIDDEN, INTERMEDIATE)]
    lru = POLICIES.get("lru")
    wall, cpu = time_it(lambda: lru.run_batch(groups, capacities), args.repeats)
    out = lru.run_batch(groups, capacities)
    hit_rate = out.hits.sum() / sum(int(g.sum()) for g in groups)
    columns = sum(int(g.size) for g in groups)
    print(f"LRU run_batch: {args.tokens} tokens x {LAYERS} layers x ({HIDDEN} + {INTERMEDIATE}) "
          f"columns, cache {CACHE_FRACTION:.0%}, hit rate {hit_rate:.3f}; best of {args.repeats}")
    for label, seconds in (("wall", wall), ("cpu ", cpu)):
        print(f"  {label} {seconds * 1e3:6.1f} ms  {seconds / args.tokens * 1e3:.3f} ms/token  "
              f"{args.tokens / seconds:6.0f} tokens/s  {columns / seconds / 1e9:.2f} G columns/s")
    if args.check:
        small = [g[:, :2] for g in groups]
        caps = [c[:2] for c in capacities]
        ref, fast = CachePolicy.run_batch.__func__(lru, small, caps), lru.run_batch(small, caps)
        same = all(np.array_equal(getattr(ref, f.name), getattr(fast, f.name))
                   for f in dataclasses.fields(ref))
        print(f"  equals the stepwise loop on 2 layers: {same}")


if __name__ == "__main__":
    main()
