"""Re-show the paper's claims with memsim and write docs/results.md (issue 5).

    python benchmarks/claims.py [--out runs/claims] [--windows 8] [--workers 2]
                                [--adapter runs/lora_smollm2_dip0.5]

1. SmolLM2-135M, real masked forward passes on held-out Shakespeare (a resumable sweep):
   perplexity vs MLP density for GLU, CATS, DIP (and DIP-CA), and DIP-CA's hit rate and
   tokens/s against DIP at equal DRAM, on the flagship preset at SmolLM2-scale DRAM.
2. LoRA: DIP at 50% density with and without the adapter (if --adapter exists).
3. Phi-3-Medium shapes: traces calibrated on the SmolLM2 DIP / DIP-CA traces of step 1
   (labelled synthetic), dense streaming vs DIP vs DIP-CA over DRAM sizes on the
   paper-reference and flagship presets, next to the paper's headline.
Every figure in docs/results.md comes from this run; nothing is tuned toward the paper.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np

from memsim.hw.config import load_hw
from memsim.sim.simulator import simulate
from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import sweep_from_dict
from memsim.sweeps.table import read_results
from memsim.traces.calibrated import calibrate, generate
from memsim.traces.model_shape import load_model_shape
from memsim.traces.synth import synth_trace
from memsim.traces.trace import Trace

DENSITIES = (0.3, 0.5, 0.7)
SMOL_CAPACITIES_GB = (0.042, 0.054)  # ~30% and ~60% of SmolLM2's 4-bit MLP as cache
PHI3_CAPACITIES_GB = tuple(np.round(np.arange(1.5, 9.01, 0.5), 2))
PHI3_TOKENS, PHI3_SEQUENCES = 128, 2
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


def phi3_traces(smol_table, out: Path) -> dict[str, Trace]:
    """Dense (all-true) and DIP / DIP-CA calibrated on SmolLM2's traces, at Phi-3-Medium."""
    phi3 = load_model_shape("phi-3-medium")
    traces = {"dense": synth_trace(phi3, PHI3_TOKENS * PHI3_SEQUENCES, method="dense",
                                   num_sequences=PHI3_SEQUENCES)}
    for method in ("dip", "dip_ca"):
        row = _rows(smol_table, method=method, density=0.5,
                    capacity_GB=SMOL_CAPACITIES_GB[-1])[0]
        stats = calibrate(Trace.load(row["trace_path"]))
        stats.save(out / f"stats_{method}.json")
        traces[method] = generate(stats, phi3, PHI3_TOKENS * PHI3_SEQUENCES, seed=0,
                                  num_sequences=PHI3_SEQUENCES)
    return traces


def phi3_results(traces: dict[str, Trace]) -> dict[str, dict[str, np.ndarray]]:
    """preset -> method -> (capacities,) tokens/s, plus the DRAM each point uses."""
    out = {}
    for preset in ("paper_reference", "flagship"):
        base = load_hw(preset)
        per_method = {}
        for method, trace in traces.items():
            rates, used = [], []
            for cap in PHI3_CAPACITIES_GB:
                hw = dataclasses.replace(base, dram=dataclasses.replace(base.dram,
                                                                        capacity_GB=float(cap)))
                r = simulate(hw, None, trace)
                rates.append(r.tokens_per_s)
                used.append(r.dram_used_bytes)
            per_method[method] = {"tokens_per_s": np.array(rates), "dram_used": np.array(used)}
        out[preset] = per_method
    return out


def memory_at_throughput(caps: np.ndarray, rates: np.ndarray, target: float) -> float:
    """Smallest DRAM (GB, linear interpolation) at which `rates` reaches `target`; -inf when
    the smallest DRAM on the grid already does (the saving is then a lower bound)."""
    above = np.nonzero(rates >= target)[0]
    if len(above) == 0:
        return math.nan
    i = above[0]
    if i == 0:
        return -math.inf
    frac = (target - rates[i - 1]) / (rates[i] - rates[i - 1])
    return float(caps[i - 1] + frac * (caps[i] - caps[i - 1]))


def phi3_table(results, preset: str) -> list[str]:
    caps = np.array(PHI3_CAPACITIES_GB)
    r = results[preset]
    lines = ["| DRAM (GB) | dense tok/s | DIP tok/s | DIP-CA tok/s | DIP / dense | "
             "DRAM for dense's tok/s with DIP (GB) | memory saved |",
             "|---|---|---|---|---|---|---|"]
    dense_max = r["dense"]["tokens_per_s"].max()
    for i, cap in enumerate(caps):
        dense, dip, ca = (r[m]["tokens_per_s"][i] for m in ("dense", "dip", "dip_ca"))
        need = memory_at_throughput(caps, r["dip"]["tokens_per_s"], dense)
        # once the whole model fits, more DRAM buys dense nothing: no saving to quote
        saturated = math.isclose(dense, dense_max, rel_tol=1e-9) and i > 0 and math.isclose(
            r["dense"]["tokens_per_s"][i - 1], dense_max, rel_tol=1e-9)
        if math.isnan(need) or saturated:
            need_text, saved = ("-" if math.isnan(need) else f"{need:.2f}"), "-"
        elif need == -math.inf:  # below the grid: at least this much is saved
            need_text, saved = f"< {caps[0]:.2f}", f"> {1 - caps[0] / cap:.0%}"
        else:
            need_text, saved = f"{need:.2f}", f"{1 - need / cap:.0%}"
        lines.append(f"| {cap:.1f} | {dense:.2f} | {dip:.2f} | {ca:.2f} | {dip / dense:.2f}x | "
                     f"{need_text} | {saved} |")
    return lines


def plot_phi3(results, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    for ax, preset in zip(fig.subplots(1, 2), results):
        for method, data in results[preset].items():
            ax.plot(PHI3_CAPACITIES_GB, data["tokens_per_s"], marker="o", label=method)
        ax.set(xlabel="DRAM available to the model (GB)", ylabel="decode tokens/s",
               title=f"Phi-3-Medium on {preset}\nsynthetic traces (calibrated on smollm2-135m)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/claims")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--adapter", default="runs/lora_smollm2_dip0.5")
    args = parser.parse_args()
    out = Path(args.out)
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
    traces = phi3_traces(smol_table, out)
    results = phi3_results(traces)
    (DOCS / "figures").mkdir(parents=True, exist_ok=True)
    plot_phi3(results, DOCS / "figures" / "phi3_medium_throughput.png")
    write_markdown(smol_table, lora_lines, results, args)
    print(f"wrote {DOCS / 'results.md'}")


def _report_failures(report) -> None:
    for failure in report.failures:
        print(f"failed: {failure}")


def headline(results) -> list[str]:
    """The figures the paper's headline is about, read off the Phi-3 grid."""
    caps, lines = np.array(PHI3_CAPACITIES_GB), []
    for preset in results:
        r = results[preset]
        dense, dip = r["dense"]["tokens_per_s"], r["dip"]["tokens_per_s"]
        fits = dense >= dense.max() * (1 - 1e-9)  # the whole model in DRAM: no streaming
        ratio = dip[~fits] / dense[~fits]
        saved = [1 - memory_at_throughput(caps, dip, d) / c for d, c in zip(dense[~fits],
                                                                            caps[~fits])]
        finite = [x for x in saved if np.isfinite(x)]
        lines.append(f"- **{preset}**, while the dense model does not fit ({caps[~fits][0]:.1f}-"
                     f"{caps[~fits][-1]:.1f} GB): DIP / dense throughput at equal DRAM "
                     f"{ratio.min():.2f}x-{ratio.max():.2f}x; DRAM saved at equal throughput: "
                     + (f"up to {max(finite):.0%}" if finite else "none on this grid")
                     + (" (more where DIP beats dense already at the grid's smallest DRAM)"
                        if any(x == math.inf for x in saved) else "") + ".")
    return lines


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


def write_markdown(smol_table, lora_lines, results, args) -> None:
    from claims_text import render  # the prose lives apart from the numbers (same folder)
    predictor = DOCS / "predictor_results.md"  # section 5: benchmarks/predictor_table.py
    (DOCS / "results.md").write_text(render(
        predictor=predictor.read_text() if predictor.is_file() else "",
        perplexity=perplexity_table(smol_table), cache_aware=cache_aware_table(smol_table),
        lora=lora_lines, phi3_reference=phi3_table(results, "paper_reference"),
        phi3_flagship=phi3_table(results, "flagship"), headline=headline(results),
        windows=args.windows,
        smol_caps=SMOL_CAPACITIES_GB, phi3_tokens=PHI3_TOKENS, phi3_sequences=PHI3_SEQUENCES))


if __name__ == "__main__":
    main()
