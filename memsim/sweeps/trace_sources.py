"""Where a sweep point's masks come from: `synthetic` (memsim) or `model` (workloads/).

A trace that does not depend on the hardware (every method but DIP-CA) is made once per
(model, corpus, windows, method, parameters) and replayed for every cache size; DIP-CA's
masks read the cache, so its trace key includes the cache policy and capacities.
`model` is the one place memsim reaches into workloads/ (and so torch): lazily, inside the
task, only when a sweep asks for a real forward pass.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from memsim.core.files import atomic_write_text
from memsim.sim.plan import cache_capacities, kv_budget_tokens
from memsim.sweeps.spec import SweepPoint, _digest
from memsim.traces.model_shape import load_model_shape
from memsim.traces.synth import synth_trace
from memsim.traces.trace import MaskGroup

TRACE_FILE, EVAL_FILE, HW_FILE = "trace.npz", "eval.json", "hw.yaml"


def trace_job(point: SweepPoint) -> dict:
    """What decides a point's trace, as plain data; its digest names the trace folder."""
    s = point.spec
    job = {"model": s.model, "trace": _plain(s.trace), "method": s.method,
           "params": point.method_params, "adapter": s.adapter}
    if s.method == "dip_ca":  # masks depend on the live cache: policy + capacities
        job["cache"] = {"policy": point.hw.cache.impl,
                        "capacities": _dip_ca_capacities(point)}
    return job


def trace_id(job: dict) -> str:
    return "t-" + _digest(job)


def make_trace(job: dict, folder: str, hw_plain: dict) -> dict:
    """Task: write trace.npz and eval.json into `folder` (eval.json last: the done marker)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if job["trace"]["source"] == "synthetic":
        figures = _synthetic(job, out)
    else:
        figures = _from_model(job, out, hw_plain)
    atomic_write_text(out / EVAL_FILE, json.dumps(figures, indent=2))
    return figures


def _synthetic(job: dict, out: Path) -> dict:
    t = job["trace"]
    trace = synth_trace(load_model_shape(job["model"]), t["tokens"] * t["windows"],
                        job["params"].get("density", 1.0), seed=t["seed"],
                        method=job["method"], prompt_len=t["prompt_len"],
                        num_sequences=t["windows"])
    trace.save(out / TRACE_FILE)
    return {"perplexity": None, "trace_source": trace.source}


def _from_model(job: dict, out: Path, hw_plain: dict) -> dict:
    from workloads.sweep_task import evaluate_for_sweep  # torch: only in this task

    hw_path = None
    if "cache" in job:  # DIP-CA sizes its caches from the point's hardware
        hw_path = out / HW_FILE
        atomic_write_text(hw_path, yaml.safe_dump(hw_plain, sort_keys=False))
    return evaluate_for_sweep(job, out, hw_path)


def _dip_ca_capacities(point: SweepPoint) -> list[list[int]]:
    """Per-layer columns of the up_gate and down caches, as the simulator will size them."""
    model = load_model_shape(point.spec.model)
    L, H, I = model.num_hidden_layers, model.hidden_size, model.intermediate_size
    groups = [MaskGroup.from_mask("up_gate", np.zeros((1, L, H), bool), I, 2, "up"),
              MaskGroup.from_mask("down", np.zeros((1, L, I), bool), H, 1, "down")]
    t = point.spec.trace
    longest = t.window_len if t.source == "model" else t.tokens
    prompt = 0 if t.source == "model" else t.prompt_len
    caps = cache_capacities(point.hw, model, groups, kv_budget_tokens(point.hw, prompt, longest))
    return [c.tolist() for c in caps]


def _plain(obj) -> dict:
    from memsim.core.schema import to_plain
    return to_plain(obj)
