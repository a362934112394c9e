"""Re-show the paper's claims with memsim and write docs/results.md (issue 5).

    python benchmarks/claims.py [--out runs/claims] [--windows 8] [--workers 2]
                                [--adapter runs/lora_smollm2_dip0.5]

1. SmolLM2-135M, real masked forward passes on held-out Shakespeare (a resumable sweep):
   perplexity vs MLP density for GLU, CATS, DIP (and DIP-CA), and DIP-CA's hit rate and
   tokens/s against DIP at equal DRAM, on the flagship preset at SmolLM2-scale DRAM.
2. LoRA: DIP at 50% density with and without the adapter (if --adapter exists).
3. Phi-3-Medium shapes: traces calibrated on the SmolLM2 DIP / DIP-CA traces of step 1
   (labelled synthetic), dense streaming vs DIP vs DIP-CA over DRAM sizes on the
   paper-reference, flagship and midrange presets, each method with its naive flash access
   and its best layout / merge gap / admission setting found by a sweep (claims_phi3.py),
   next to the paper's headline.
Every figure in docs/results.md comes from this run; nothing is tuned toward the paper.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import sweep_from_dict
from memsim.sweeps.table import read_results
from memsim.traces.trace import Trace

import claims_phi3  # noqa: I001 (same folder: section 4's sweep)

DENSITIES = (0.3, 0.5, 0.7)
SMOL_CAPACITIES_GB = (0.042, 0.054)  # ~30% and ~60% of SmolLM2's 4-bit MLP as cache
DOCS = Path(__file__).resolve().parent.parent / "docs"


def smollm2_sweep(windows: int, adapter: str | None) -> dict:
    axes = {"hw.dram.capacity_GB": list(SMOL_CAPACITIES_GB),
            "method": ["dense", "glu", "cats", "dip", "dip_ca"], "density": list(DENSITIES)}
    return {"name": "claims-smollm2",
            "base": {"hw": "flagship", "model": "smollm2-135m",
                     "trace": {"source": "model", "windows": windows, "window_len": 256},
                     "dip_ca": {"gamma": 0.5}},
            "axes": axes}


def lora_sweep(windows: int, adapter: str) -> dict:
    return {"name": "claims-lora",
            "base": {"hw": "flagship", "model": "smollm2-135m", "method": "dip",
                     "density": 0.5,
                     "trace": {"source": "model", "windows": windows, "window_len": 256}},
            "axes": {"hw.dram.capacity_GB": [SMOL_CAPACITIES_GB[1]],
                     "adapter": ["none", str(Path(adapter).resolve())]}}


def _rows(table, **where) -> list[dict]:
    return [r for r in table.rows()
            if all((r[k] == v) or (isinstance(v, float) and math.isclose(r[k], v))
                   for k, v in where.items())]


def perplexity_table(table) -> list[str]:
    dense = _rows(table, method="dense")[0]["perplexity"]
    lines = ["| method | " + " | ".join(f"density {d}" for d in DENSITIES) + " |",
             "|---|" + "---|" * len(DENSITIES)]
    lines.append(f"| dense | {dense:.2f} (density 1.0) |" + " |" * (len(DENSITIES) - 1))
    for method in ("glu", "cats", "dip", "dip_ca"):
        cells = []
        for d in DENSITIES:
            rows = _rows(table, method=method, density=d,
                         capacity_GB=SMOL_CAPACITIES_GB[-1])
            cells.append(f"{rows[0]['perplexity']:.2f}" if rows else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def cache_aware_table(table) -> list[str]:
    lines = ["| DRAM (MB) | density | DIP ppl | DIP-CA ppl | DIP hit rate | DIP-CA hit rate | "
             "DIP tok/s | DIP-CA tok/s |", "|---|---|---|---|---|---|---|---|"]
    for cap in SMOL_CAPACITIES_GB:
        for d in DENSITIES:
            dip = _rows(table, method="dip", density=d, capacity_GB=cap)
            ca = _rows(table, method="dip_ca", density=d, capacity_GB=cap)
            if dip and ca:
                a, b = dip[0], ca[0]
                lines.append(f"| {cap * 1e3:.0f} | {d} | {a['perplexity']:.2f} | "
                             f"{b['perplexity']:.2f} | {a['hit_rate']:.3f} | "
                             f"{b['hit_rate']:.3f} | {a['tokens_per_s']:.1f} | "
                             f"{b['tokens_per_s']:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/claims")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--adapter", default="runs/lora_smollm2_dip0.5")
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    traces_before = _finished_traces(out)
    smol = run_sweep(sweep_from_dict(smollm2_sweep(args.windows, None), source="claims"),
                     out / "smollm2", workers=args.workers)
    _report_failures(smol)
    smol_table = read_results(smol.table_path)
    lora_lines = []
    if Path(args.adapter, "adapter_model.safetensors").exists():
        lora = run_sweep(sweep_from_dict(lora_sweep(args.windows, args.adapter), source="claims"),
                         out / "lora", workers=args.workers)
        _report_failures(lora)
        lora_lines = lora_table(read_results(lora.table_path))
    smol_s = time.perf_counter() - start
    made = len(_finished_traces(out) - traces_before)
    sources = {m: _rows(smol_table, method=m, density=0.5,
                        capacity_GB=SMOL_CAPACITIES_GB[-1])[0]["trace_path"]
               for m in ("dip", "dip_ca")}
    study = claims_phi3.phi3_study(sources, out, args.workers)
    (DOCS / "figures").mkdir(parents=True, exist_ok=True)
    claims_phi3.plot(study, DOCS / "figures" / "phi3_medium_throughput.png")
    total_s = time.perf_counter() - start
    timing = (f"this run: {total_s / 60:.0f} minutes, of which {smol_s / 60:.0f} for sections "
              f"1-3 ({made} masked forward passes made, {len(_finished_traces(out)) - made} "
              f"reused from an earlier run) and {(total_s - smol_s) / 60:.0f} for section 4 "
              f"({study['reused']} of {study['points']} Phi-3 points read back)")
    write_markdown(smol_table, lora_lines, study, args, timing)
    print(f"wrote {DOCS / 'results.md'} ({timing})")


def _finished_traces(out: Path) -> set[Path]:
    """Model traces (masked forward passes) finished under `out` (eval.json: the marker)."""
    return set(out.glob("*/traces/*/eval.json"))


def _report_failures(report) -> None:
    for failure in report.failures:
        print(f"failed: {failure}")


def lora_table(table) -> list[str]:
    lines = ["| adapter | perplexity | tokens/s | DRAM used (MB) | adapter params |",
             "|---|---|---|---|---|"]
    for row in table.rows():
        name = row["adapter"] or "none"
        params = "0" if not row["adapter"] else f"{_adapter_params(row):,}"
        lines.append(f"| {Path(name).name} | {row['perplexity']:.2f} | "
                     f"{row['tokens_per_s']:.1f} | {row['dram_used_bytes'] / 1e6:.1f} | "
                     f"{params} |")
    return lines


def _adapter_params(row) -> int:
    return Trace.load(row["trace_path"]).adapter_params


def write_markdown(smol_table, lora_lines, study, args, timing: str) -> None:
    from claims_text import render  # the prose lives apart from the numbers (same folder)
    predictor = DOCS / "predictor_results.md"  # section 5: benchmarks/predictor_table.py
    (DOCS / "results.md").write_text(render(
        predictor=predictor.read_text() if predictor.is_file() else "",
        perplexity=perplexity_table(smol_table), cache_aware=cache_aware_table(smol_table),
        lora=lora_lines, phi3=claims_phi3, study=study, windows=args.windows,
        smol_caps=SMOL_CAPACITIES_GB, timing=timing))


if __name__ == "__main__":
    main()
