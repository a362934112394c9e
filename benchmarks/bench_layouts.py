"""Time to build a co-activation flash layout at Phi-3-Medium width (issue 21's target: at
most 5 s per 256 calibration tokens), with the plain-scan reference in the same run.

Workload: a synthetic Phi-3-Medium DIP trace at 50% density (`--tokens`, default 256), or
`--trace FILE`. The whole layout (every layer of every mask group) is built with
`build_layout(trace, "coactivation")`, the path `memsim layout build` takes; the reference
(`coactivation_order_reference`, the greedy rule as a plain scan, what the method ran before
issue 21) is timed on `--reference-layers` layers spread over the depth (0: all) and scaled
to the whole model, and its orders are compared with the fast ones on those layers (they must
be identical). Wall and CPU seconds are printed (CPU time is steadier beside other jobs; use
`taskset -c 0` for one core). Prints figures; asserts nothing about time.
    python benchmarks/bench_layouts.py [--tokens 256] [--reference-layers 8] [--trace FILE]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from memsim.core.errors import ConfigError
from memsim.hw.layouts import build_layout
from memsim.hw.layouts.coactivation import (
    coactivation_order,
    coactivation_order_reference,
)
from memsim.traces import Trace
from memsim.traces.model_shape import load_model_shape
from memsim.traces.synth import synth_trace


def timed(fn, *args):
    """(result, wall s, CPU s) of fn(*args)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def reference_orders(trace: Trace, layers: np.ndarray) -> dict[str, np.ndarray]:
    """Per group, (len(layers), N) orders by the plain scan."""
    return {g.name: np.stack([coactivation_order_reference(
        np.ascontiguousarray(g.bits.words[:, layer]), g.num_columns) for layer in layers])
        for g in trace.groups()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--reference-layers", type=int, default=8,
                        help="layers the reference is timed on (0: all)")
    parser.add_argument("--trace", help="a trace .npz instead of the synthetic one")
    args = parser.parse_args()
    if args.tokens < 1 or args.reference_layers < 0:
        parser.error("--tokens must be >= 1 and --reference-layers >= 0")
    if args.trace:
        try:
            trace = Trace.load(args.trace)
        except ConfigError as exc:
            parser.error(f"--trace: {exc}")
    else:
        trace = synth_trace(load_model_shape("phi-3-medium"), args.tokens, 0.5, seed=0)
    L = trace.num_layers
    n_ref = L if args.reference_layers <= 0 else min(args.reference_layers, L)
    layers = np.unique(np.linspace(0, L - 1, n_ref).round().astype(int))
    for order_of in (coactivation_order, coactivation_order_reference):  # compile (or load
        order_of(np.ones((2, 1), np.uint64), 64)  # from numba's cache) outside the timing
    layout, wall, cpu = timed(build_layout, trace, "coactivation")
    ref, ref_wall, ref_cpu = timed(reference_orders, trace, layers)
    scale, per256 = L / len(layers), 256 / trace.num_tokens
    same = all(np.array_equal(layout.orders[g][layers], ref[g]) for g in ref)
    widths = ", ".join(f"{g.name} N={g.num_columns}" for g in trace.groups())
    print(f"workload: {trace.model.name}, {trace.num_tokens} tokens, {L} layers ({widths}), "
          f"trace {trace.method} from {trace.source}")
    print(f"fast (whole layout):  {wall:7.2f} s wall, {cpu:7.2f} s CPU  = "
          f"{wall * per256:6.2f} s wall per 256 tokens")
    print(f"reference ({len(layers)} layers x{scale:.1f}): {ref_wall * scale:7.2f} s wall, "
          f"{ref_cpu * scale:7.2f} s CPU  = {ref_wall * scale * per256:6.2f} s wall per 256 "
          f"tokens (scaled to {L} layers)")
    print(f"speed-up: {ref_wall * scale / wall:.1f}x wall, {ref_cpu * scale / cpu:.1f}x CPU; "
          f"orders on the reference layers {'identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
