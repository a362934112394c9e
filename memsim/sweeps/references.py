"""Reference throughputs a sweep's figures draw beside its points, one pair per phone.

For each distinct (phone without its DRAM size, cache and the flash-access settings dense
streaming ignores (layout, merge gap, admission); model, mode, sequence shape) the sweep
simulates dense decode twice, as a task like any other:
  dense streaming     every MLP weight read from flash each token (placement.mlp: streamed),
                      the rest in DRAM: the floor a cache should beat;
  everything in DRAM  every weight resident (placement.mlp: resident): the ceiling.
Both take DRAM ample for what they keep there, so neither depends on the DRAM axis. The dense
trace is one sequence as long as the sweep's sequences (all equal in a sweep, so tokens/s,
a mean over sequences, is the same). Ignores: per-point adapters (base model only).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from memsim.core.files import atomic_write_text
from memsim.core.schema import to_plain
from memsim.hw.config import hw_from_dict
from memsim.sim.simulator import simulate
from memsim.sweeps.spec import SweepPoint, _digest, dense_streaming_hw
from memsim.traces.bits import PackedMasks
from memsim.traces.model_shape import load_model_shape
from memsim.traces.trace import Trace

REFERENCE_FILE = "reference.json"  # written last: the done marker
AMPLE_DRAM_GB = 1e6  # "ample": no weight or KV byte overflows to flash
COLUMNS = {"dense_streaming": ("streamed", "ref_dense_streaming_tokens_per_s"),
           "all_in_dram": ("resident", "ref_all_in_dram_tokens_per_s")}


def reference_job(point: SweepPoint) -> dict:
    """What decides a point's references, as plain data (its digest names the folder)."""
    hw = to_plain(dense_streaming_hw(point.hw))  # settings dense ignores do not split it
    hw["dram"]["capacity_GB"] = AMPLE_DRAM_GB
    hw["cache"] = {"impl": "none"}
    t = point.spec.trace
    length, prompt = (t.window_len, 0) if t.source == "model" else (t.tokens, t.prompt_len)
    return {"hw": hw, "model": point.spec.model, "mode": point.spec.mode,
            "sequence_len": length, "prompt_len": prompt}


def reference_id(job: dict) -> str:
    return "r-" + _digest(job)


def simulate_references(job: dict, folder: str) -> dict:
    """Task: both references' tokens/s into `folder`/reference.json; the values back."""
    model = load_model_shape(job["model"])
    shape = (job["sequence_len"], model.num_hidden_layers)
    words = {"up": PackedMasks.full(*shape, model.hidden_size).words,  # (T, L, H) all set
             "down": PackedMasks.full(*shape, model.intermediate_size).words}
    trace = Trace(model=model, words=words, method="dense", prompt_len=job["prompt_len"],
                  source="dense (reference)")
    values = {}
    for name, (placement, column) in COLUMNS.items():
        plain = copy.deepcopy(job["hw"])
        plain["placement"] = {**plain.get("placement", {}), "mlp": placement}
        hw = hw_from_dict(plain, source=f"reference {name}", path="hw")
        values[column] = simulate(hw, model, trace, mode=job["mode"]).tokens_per_s
    atomic_write_text(Path(folder) / REFERENCE_FILE, json.dumps(values, indent=2))
    return values
