"""The SmolLM2-135M sweep docs/results.md's first sections share: real masked forward passes
on held-out Shakespeare, every method at three densities, two DRAM sizes on the flagship
preset (a resumable memsim sweep, run once per claims.py run: `smollm2(ctx)`)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from memsim.hw.config import load_hw
from memsim.sim.footprint import Footprint
from memsim.sim.plan import kv_budget_tokens, plan_dram
from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import sweep_from_dict
from memsim.sweeps.table import read_results
from memsim.traces.model_shape import load_model_shape
from memsim.traces.trace import MaskGroup

MODEL, PRESET = "smollm2-135m", "flagship"
METHODS = ("dense", "glu", "cats", "dip", "dip_ca")
DENSITIES = (0.3, 0.5, 0.7)
CAPACITIES_GB = (0.042, 0.054)  # ~30% and ~60% of SmolLM2's 4-bit MLP as cache
WINDOW_LEN = 256
GAMMA = 0.5  # DIP-CA
KEEP = ("method", "density", "capacity_GB", "perplexity", "hit_rate", "tokens_per_s",
        "trace_path", "dram_used_bytes", "adapter")


def sweep_dict(windows: int) -> dict:
    return {"name": "claims-smollm2",
            "base": {"hw": PRESET, "model": MODEL,
                     "trace": {"source": "model", "windows": windows, "window_len": WINDOW_LEN},
                     "dip_ca": {"gamma": GAMMA}},
            "axes": {"hw.dram.capacity_GB": list(CAPACITIES_GB), "method": list(METHODS),
                     "density": list(DENSITIES)}}


def smollm2(ctx) -> dict:
    """The sweep's rows and what the run made, once per claims.py run."""
    return ctx.shared("smollm2", lambda: _run(ctx))


def _run(ctx) -> dict:
    out = ctx.out / "smollm2"
    before = finished_traces(ctx.out)
    report = run_sweep(sweep_from_dict(sweep_dict(ctx.args.windows), source="claims"), out,
                       workers=ctx.args.workers)
    for failure in report.failures:
        print(f"failed: {failure}")
    rows = [{k: r.get(k) for k in KEEP} for r in read_results(report.table_path).rows()]
    made = len(finished_traces(ctx.out) - before)
    config = json.loads((Path(rows[0]["trace_path"]).parent / "config.json").read_text())
    return {"rows": rows, "made": made, "reused": len(finished_traces(ctx.out)) - made,
            "config": {k: config[k] for k in ("model_source", "model_shape", "window_len",
                                              "split", "corpus_info")},
            "cache_share": {c: cache_share(c) for c in CAPACITIES_GB}}


def finished_traces(out: Path) -> set[Path]:
    """Model traces (masked forward passes) finished under `out` (eval.json: the marker)."""
    return set(out.glob("*/traces/*/eval.json"))


def cache_share(capacity_GB: float) -> float:
    """Share of the model's MLP the DRAM leaves as cache at `capacity_GB` (memsim's plan,
    one window of KV)."""
    hw = _with_dram(load_hw(PRESET), capacity_GB)
    model = load_model_shape(MODEL)
    L, H, I = model.num_hidden_layers, model.hidden_size, model.intermediate_size
    groups = [MaskGroup.from_mask("up_gate", np.zeros((1, L, H), bool), I, 2, "up"),
              MaskGroup.from_mask("down", np.zeros((1, L, I), bool), H, 1, "down")]
    plan = plan_dram(hw, model, groups, kv_budget_tokens(hw, 0, WINDOW_LEN))
    mlp = L * Footprint.of(model, hw).mlp_bytes_per_layer
    return float(plan.cache_budget_bytes / mlp)


def _with_dram(hw, capacity_GB: float):
    return dataclasses.replace(hw, dram=dataclasses.replace(hw.dram, capacity_GB=capacity_GB))


def rows_where(rows: list[dict], **where) -> list[dict]:
    return [r for r in rows
            if all((r[k] == v) or (isinstance(v, float) and isinstance(r[k], float)
                                   and math.isclose(r[k], v)) for k, v in where.items())]


def example_smollm2() -> dict:
    """A fake sweep (tests/test_generated_docs.py): every method, density and DRAM size."""
    rows = []
    for c, capacity in enumerate(CAPACITIES_GB):
        for m, method in enumerate(METHODS):
            for d, density in enumerate(DENSITIES if method != "dense" else (1.0,)):
                if method == "glu" and density < 0.6 or method == "cats" and density < 0.4:
                    continue
                rows.append({"method": method, "density": density, "capacity_GB": capacity,
                             "perplexity": 31.17 + 7.3 * m + 11.9 * (2 - d) + 0.37 * c,
                             "hit_rate": 0.1117 + 0.07 * m + 0.13 * c,
                             "tokens_per_s": 13.3 + 2.9 * m + 1.1 * d + 3.7 * c,
                             "trace_path": f"t/{method}{d}", "dram_used_bytes": capacity * 1e9,
                             "adapter": ""})
    return {"rows": rows, "made": 17, "reused": 3,
            "config": {"model_source": {"note": "weights as given"},
                       "model_shape": {"name": "m", "num_hidden_layers": 13, "hidden_size": 37,
                                       "intermediate_size": 101},
                       "window_len": 19, "split": "held", "corpus_info": {"source": "a corpus"}},
            "cache_share": {c: 0.2713 + c for c in CAPACITIES_GB}}
