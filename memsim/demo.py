"""`memsim demo`: the embedded default, end to end, in well under a minute.

Synthetic Phi-3-Medium traces (dense, and DIP at 50% MLP density) decoded on the flagship
preset at several DRAM sizes: the question memsim answers, in one table. (The sweep issue
replaces this with a real SmolLM2 sweep and plots.)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from memsim.config import load_hw
from memsim.model import load_model_shape
from memsim.result import write_result
from memsim.simulate import resolved_config, simulate
from memsim.synth import synth_trace

DEMO_HW, DEMO_MODEL = "flagship", "phi-3-medium"
DEMO_CAPACITIES_GB = (2.0, 4.0, 6.0, 8.0)


def run_demo(out_dir: Path, num_tokens: int = 64) -> int:
    base, model = load_hw(DEMO_HW), load_model_shape(DEMO_MODEL)
    traces = {"dense": synth_trace(model, num_tokens, method="dense", seed=0),
              "dip-0.5": synth_trace(model, num_tokens, 0.5, seed=0)}
    header = f"{'DRAM GB':>7}  {'method':8} {'tok/s':>7} {'hit':>6} {'flash MB/tok':>12} " \
             f"{'DRAM used GB':>12}"
    print(f"{DEMO_MODEL} (synthetic traces, {num_tokens} tokens) on {base.name}\n{header}")
    for capacity in DEMO_CAPACITIES_GB:
        hw = dataclasses.replace(base, dram=dataclasses.replace(base.dram, capacity_GB=capacity))
        for name, trace in traces.items():
            result = simulate(hw, model, trace)
            write_result(result, out_dir / f"{name}_{capacity:g}GB",
                         resolved_config(hw, model, trace, "event"))
            print(f"{capacity:7.1f}  {name:8} {result.tokens_per_s:7.2f} {result.hit_rate:6.3f} "
                  f"{result.flash_bytes_per_token / 1e6:12.1f} "
                  f"{result.dram_used_bytes / 1e9:12.2f}")
    print(f"results in {out_dir}/")
    return 0
