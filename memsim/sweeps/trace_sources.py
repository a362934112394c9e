"""Where a sweep point's masks come from: `synthetic` (memsim) or `model` (workloads/).

A trace that does not depend on the hardware (every method but DIP-CA) is made once per
(model, corpus, windows, method, parameters) and replayed for every cache size; DIP-CA's
masks read the cache, so its trace key includes the cache policy and capacities (dip_ra's
also the flash it prices reads on).
`model` is the one place memsim reaches into workloads/ (and so torch): lazily, inside the
task, only when a sweep asks for a real forward pass.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from memsim.core.errors import ConfigError
from memsim.core.files import atomic_write_text, read_json, sha256_file
from memsim.sim.plan import cache_capacities, kv_budget_tokens
from memsim.sweeps.spec import SweepPoint, _digest
from memsim.traces.model_shape import load_model_shape
from memsim.traces.synth import synth_trace
from memsim.traces.trace import MaskGroup, Trace

TRACE_FILE, EVAL_FILE, HW_FILE = "trace.npz", "eval.json", "hw.yaml"
CHECKSUM_KEY = "trace_sha256"  # in eval.json: the trace.npz it vouches for


def trace_job(point: SweepPoint) -> dict:
    """What decides a point's trace, as plain data; its digest names the trace folder."""
    s = point.spec
    job = {"model": s.model, "trace": _plain(s.trace), "method": s.method,
           "params": point.method_params, "adapter": s.adapter}
    if s.method in ("dip_ca", "dip_ra"):  # masks depend on the live cache: policy + capacities
        job["cache"] = {"policy": point.hw.cache.impl,
                        "capacities": _dip_ca_capacities(point)}
    if s.method == "dip_ra":  # and on the flash: pages, merge gap, request costs, layout
        job["flash"] = _plain(point.hw.flash)
    return job


def trace_id(job: dict) -> str:
    return "t-" + _digest(job)


def make_trace(job: dict, folder: str, hw_plain: dict) -> dict:
    """Task: write trace.npz and eval.json into `folder` (eval.json last: the done marker,
    holding the trace's sha256 so a damaged cached trace is found and made again)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if job["trace"]["source"] == "synthetic":
        figures = _synthetic(job, out)
    else:
        figures = _from_model(job, out, hw_plain)
    figures = {**figures, CHECKSUM_KEY: sha256_file(out / TRACE_FILE)}
    atomic_write_text(out / EVAL_FILE, json.dumps(figures, indent=2))
    return figures


def damaged_trace(folder: str | Path) -> str | None:
    """Why a finished trace folder cannot be trusted (eval.json unreadable, trace.npz
    missing or not the bytes eval.json recorded), or None if it is intact. Folders written
    before checksums were recorded are checked by reading the trace (its zip CRCs)."""
    folder = Path(folder)
    try:
        figures = read_json(folder / EVAL_FILE, what="trace record")
    except ConfigError as exc:
        return str(exc)
    trace = folder / TRACE_FILE
    if not trace.is_file():
        return f"{trace}: missing"
    recorded = figures.get(CHECKSUM_KEY)
    if recorded is None:
        try:
            Trace.load(trace)
        except ConfigError as exc:
            return str(exc)
        return None
    return None if sha256_file(trace) == recorded else \
        f"{trace}: its sha256 is not the one recorded in {EVAL_FILE} (damaged)"


def prepare_sources(pool, jobs: list[dict]) -> None:
    """Before model traces fan out, load each model and corpus they need once, one task
    each, in parallel on `pool`: the first GGUF load dequantises into the disk cache (~10 s)
    while another worker fetches the corpus, instead of every worker's first evaluation
    queueing for the same work. Errors are not reported here: each evaluation that needs
    the model or corpus meets the same error and reports it with its trace."""
    needs = sorted({("model", j["model"]) for j in jobs if j["trace"]["source"] == "model"}
                   | {("corpus", j["trace"]["corpus"]) for j in jobs
                      if j["trace"]["source"] == "model"})
    for _ in pool.run(_prepare, needs):
        pass


def _prepare(kind: str, name: str) -> None:
    from workloads.sweep_task import prepare_for_sweep  # torch: only in this task

    prepare_for_sweep(kind, name)


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
    if "cache" in job:  # DIP-CA / dip_ra size their caches (dip_ra: its flash) from the hw
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
