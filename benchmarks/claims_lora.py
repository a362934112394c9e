"""docs/results.md: LoRA recovery. DIP with and without the adapter `memsim finetune` trains
under DIP, and the control adapter trained without masks when one exists (the claims.py
section interface)."""
from __future__ import annotations

from pathlib import Path

from claims_smollm2 import CAPACITIES_GB, MODEL, PRESET, WINDOW_LEN  # noqa: I001 (same folder)

from memsim.hw.config import load_hw
from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import sweep_from_dict
from memsim.sweeps.table import read_results
from memsim.traces.trace import Trace

TITLE = "LoRA recovery"
DENSITY = 0.5
ROLES = ("none", "adapter", "control")


def sweep_dict(windows: int, adapters: list[str]) -> dict:
    return {"name": "claims-lora",
            "base": {"hw": PRESET, "model": MODEL, "method": "dip", "density": DENSITY,
                     "trace": {"source": "model", "windows": windows, "window_len": WINDOW_LEN}},
            "axes": {"hw.dram.capacity_GB": [CAPACITIES_GB[-1]],
                     "adapter": ["none", *adapters]}}


def run(ctx) -> dict:
    found = {role: str(Path(path).resolve()) for role, path in
             (("adapter", ctx.args.adapter), ("control", ctx.args.control_adapter))
             if path and Path(path, "adapter_model.safetensors").exists()}
    hw = load_hw(PRESET)
    data = {"rows": {}, "adapter_bits": hw.precision.adapter_bits, "capacity_GB": CAPACITIES_GB[-1],
            "names": {role: Path(p).name for role, p in found.items()}}
    if "adapter" not in found:
        return data
    report = run_sweep(sweep_from_dict(sweep_dict(ctx.args.windows, list(found.values())),
                                       source="claims"), ctx.out / "lora",
                       workers=ctx.args.workers)
    for failure in report.failures:
        print(f"failed: {failure}")
    role_of = {path: role for role, path in found.items()}
    for row in read_results(report.table_path).rows():
        role = role_of.get(row["adapter"], "none")
        data["rows"][role] = {"perplexity": row["perplexity"],
                              "tokens_per_s": row["tokens_per_s"],
                              "dram_used_MB": row["dram_used_bytes"] / 1e6,
                              "params": Trace.load(row["trace_path"]).adapter_params
                              if row["adapter"] else 0}
    return data


def table(data: dict) -> list[str]:
    lines = ["| adapter | perplexity | tokens/s | DRAM used (MB) | adapter params |",
             "|---|---|---|---|---|"]
    for role in ROLES:
        if role in data["rows"]:
            r = data["rows"][role]
            lines.append(f"| {data['names'].get(role, 'none')} | {r['perplexity']:.2f} | "
                         f"{r['tokens_per_s']:.1f} | {r['dram_used_MB']:.1f} | "
                         f"{r['params']:,} |")
    return lines


def verdict(data: dict) -> list[str]:
    rows = data["rows"]
    none, lora = rows["none"], rows["adapter"]
    gain = none["perplexity"] - lora["perplexity"]
    word = "holds here" if gain > 0 else "does not hold here"
    size_MB = lora["params"] * data["adapter_bits"] / 8 / 1e6
    text = (f"**LoRA trained with the masks active wins back perplexity: {word}.** The adapter "
            f"takes DIP's perplexity from {none['perplexity']:.2f} to {lora['perplexity']:.2f}. "
            f"At the same DRAM it changes tokens/s from {none['tokens_per_s']:.1f} to "
            f"{lora['tokens_per_s']:.1f}: its {size_MB:.1f} MB ({data['adapter_bits']:g}-bit) "
            "are resident, shrink the cache budget and are read every token.")
    if "control" in rows:
        control = rows["control"]
        domain = none["perplexity"] - control["perplexity"]
        share = f"{domain / gain:.0%} of the adapter's gain" if gain > 0 else "the gain"
        text += (f" The control adapter (trained the same way without masks) takes it to "
                 f"{control['perplexity']:.2f}: adaptation to the domain alone gives {share}; "
                 f"training under the masks adds {control['perplexity'] - lora['perplexity']:+.2f}"
                 " on top.")
    else:
        text += (" Without the control adapter here, this run cannot tell recovery from "
                 "sparsity from adaptation to the domain; docs/lora.md's control does.")
    return [text + " docs/lora.md has the same comparison at another density."]


def render(data: dict, ctx) -> list[str]:
    lines = [f"DIP at {DENSITY:.0%} MLP density, {data['capacity_GB'] * 1e3:.0f} MB DRAM, with "
             "and without the LoRA adapter trained by `memsim finetune` under DIP (settings "
             "and training time: docs/lora.md)"
             + (", and the control adapter trained without masks" if "control" in data["rows"]
                else "")
             + ". The adapter's parameters are resident in DRAM and read every token; memsim "
             "counts both.", ""]
    if "adapter" not in data["rows"]:
        return lines + ["_No adapter found: run `memsim finetune` first (docs/lora.md)._"]
    return lines + [*table(data), "", *verdict(data)]


def example_data(ctx) -> dict:
    rows = {role: {"perplexity": 71.3 - 9.7 * i, "tokens_per_s": 61.7 - 1.3 * i,
                   "dram_used_MB": 53.9, "params": 0 if role == "none" else 1_234_567}
            for i, role in enumerate(ROLES)}
    return {"rows": rows, "adapter_bits": 11, "capacity_GB": 0.0537,
            "names": {"adapter": "lora_x", "control": "lora_y"}}
