"""Write docs/worked_example.md (and its figures) from what `memsim demo` computes.

    .venv/bin/python benchmarks/worked_example.py [--out runs/demo]

Runs the demo's sweep into --out (resumable: a finished one is read back), then describes it:
the setup from the sweep file and the presets, the summary table the demo prints, and
statements computed from the results table and the points' result.json files. The figures
are the demo's, copied to docs/figures/demo_*.png. No number or verdict is typed here
(tests/test_generated_docs.py).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

from claims_sources import hardware_text, shape_text  # noqa: I001 (same folder)
from run_info import machine, machine_text, run_main

from memsim.demo import DEMO_SWEEP, run_demo
from memsim.hw.config import hw_from_dict
from memsim.sim.footprint import Footprint
from memsim.sweeps.figures import figure_data
from memsim.sweeps.grouping import METHOD_LABELS, pareto_front
from memsim.sweeps.spec import load_sweep
from memsim.sweeps.summary import summary_lines
from memsim.sweeps.table import read_results
from memsim.traces.model_shape import load_model_shape

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "worked_example.md"
FIGURES = ("throughput_vs_perplexity", "tokens_per_s_vs_dram", "time_breakdown",
           "hit_rate_vs_dram")
NAIVE, SEARCHED = "naive", "searched"


# ---------------------------------------------------------------------- facts from the run
def setup_facts(sweep) -> dict:
    """The sweep's settings and the preset and model it runs, from their files."""
    base = sweep.base_point
    hw = _base_hw(sweep)
    model = load_model_shape(base["model"])
    fp = Footprint.of(model, hw)
    variants = sweep.axes["variant"]
    unit = hw.compute.units[hw.compute.decode_unit]
    return {
        "model": model.name, "shape": shape_text(model), "bits": hw.precision.mlp_bits,
        "mlp_MB": fp.mlp_bytes_per_layer * model.num_hidden_layers / 1e6,
        "attention_MB": fp.attention_bytes_per_layer * model.num_hidden_layers / 1e6,
        "embedding_MB": fp.embedding_table_bytes / 1e6,
        "hardware": hardware_text(hw),
        "compute": f"{hw.compute.decode_unit} {unit.peak_TOPS:g} TOPS at {unit.efficiency:.0%}",
        "windows": base["trace"]["windows"], "window_len": base["trace"]["window_len"],
        "density": base["density"], "gamma": base["dip_ca"]["gamma"],
        "layout_windows": base["layout"]["windows"], "layout_split": base["layout"]["split"],
        "candidates": [v.get("choice") for v in variants if v.get("choice")],
        "num_dram": len(sweep.axes["hw.dram.capacity_GB"]),
    }


def _base_hw(sweep):
    return hw_from_dict(sweep.base_hw, source=str(DEMO_SWEEP))


def table_facts(table) -> dict:
    """Per (method, variant, DRAM MB) the row's figures, plus each point's result.json."""
    rows = {}
    for row in table.rows():
        result = json.loads(Path(row["result_path"]).read_text())
        rows[(row["method"], row.get("variant") or NAIVE, round(row["capacity_GB"] * 1e3))] = {
            "ppl": row["perplexity"], "tps": row["tokens_per_s"], "hit": row["hit_rate"],
            "payload_MB": row["flash_bytes_per_token"] / 1e6,
            "device_MB": result["flash_device_bytes_per_token"] / 1e6,
            "requests": result["flash_requests_per_token"],
            "GBps": (result["effective_flash_bandwidth_Bps"] or 0.0) / 1e9,
            "time_ms": row["time_per_token_s"] * 1e3,
            "flash_ms": row["breakdown_flash_s"] * 1e3,
            "choice": row.get("variant_choice") or "",
            "ref_stream": row.get("ref_dense_streaming_tokens_per_s"),
            "ref_dram": row.get("ref_all_in_dram_tokens_per_s")}
    return rows


def run(out: Path) -> dict:
    sweep = load_sweep(DEMO_SWEEP)
    start = time.perf_counter()
    run_demo(out, progress=False)
    wall_s = time.perf_counter() - start
    table = read_results(out)
    skipped = figure_data(table)[1]
    for name in FIGURES:
        source = out / "plots" / f"{name}.png"
        if source.is_file():
            shutil.copy(source, ROOT / "docs" / "figures" / f"demo_{name}.png")
    front = pareto_points(table)
    return {"setup": setup_facts(sweep), "rows": table_facts(table),
            "summary": summary_lines(table), "skipped": skipped, "front": front,
            "wall_s": wall_s, "machine": machine()}


def pareto_points(table) -> list[tuple[str, str, int]]:
    """(method, variant, DRAM MB) of the points no other beats on perplexity and tokens/s."""
    ppl, tps = table["perplexity"].astype(float), table["tokens_per_s"].astype(float)
    return [(table["method"][i], table["variant"][i] or NAIVE,
             round(float(table["capacity_GB"][i]) * 1e3)) for i in pareto_front(ppl, tps)]


# ---------------------------------------------------------------------- the text
def render(data: dict) -> str:
    s, rows = data["setup"], data["rows"]
    sizes = sorted({mb for (_, _, mb) in rows})
    lines = [
        f"# Worked example: {s['model']} on a flagship phone, DRAM from {sizes[0]} to "
        f"{sizes[-1]} MB",
        "",
        "This is what `memsim demo` runs (`memsim/demo_sweep.yaml`); the table and figures "
        "here are what it printed and wrote, and every statement below is computed from them "
        "by `benchmarks/worked_example.py` (this run took "
        f"{data['wall_s']:.0f} s on {machine_text(data['machine'])}, including whatever of "
        "the sweep was already done; "
        "`benchmarks/bench_demo.py` measures the demo on a fresh install and a rerun). "
        "`memsim plot runs/demo` redraws the figures from the table alone.",
        "",
        f"**Setup.** {s['model']} ({s['shape']}; {s['bits']:g}-bit weights in memory: MLP "
        f"{s['mlp_MB']:.1f} MB, attention {s['attention_MB']:.1f} MB, embedding table "
        f"{s['embedding_MB']:.1f} MB), the flagship preset ({s['hardware']}; {s['compute']}) "
        "with the app's DRAM shrunk to the model's scale. Masks from real forward passes over "
        f"{s['windows']} windows of {s['window_len']} tokens of held-out Shakespeare; DIP and "
        f"DIP-CA (gamma {s['gamma']:g}) at {s['density']:.0%} MLP density; cold cache per "
        "window.",
        "",
        "DIP and DIP-CA run twice (a bundle axis, `variant`):",
        "- `naive`: columns in model order in flash, one request per run of adjacent pages;",
        "- `searched`: at each DRAM size, the fastest of "
        + ", ".join(f"*{c}*" for c in s["candidates"])
        + f" (a search, memsim/sweeps/best_of.py; the frequency layout is built inside the "
        f"sweep from {s['layout_windows']} windows of *other* plays, the `{s['layout_split']}` "
        "split: DIP's masks there, which DIP-CA reuses). The `chosen` column names the "
        "setting each point got, and every figure's title says it too.",
        "",
        "The summary table the demo prints (the same one `memsim sweep` prints):",
        "",
        "```",
        *data["summary"],
        "```",
        "",
        *same_masks(rows),
        "",
        "## Throughput against accuracy, every DRAM size in one view",
        "",
        "![throughput vs perplexity](figures/demo_throughput_vs_perplexity.png)",
        "",
        *accuracy_view(rows, data["front"], sizes),
        "",
        "## Throughput against DRAM",
        "",
        "![tokens/s vs DRAM](figures/demo_tokens_per_s_vs_dram.png)",
        "",
        *throughput_view(rows, sizes),
        "",
        "## Where the time goes",
        "",
        "![time breakdown](figures/demo_time_breakdown.png)",
        "",
        *time_view(rows, sizes),
        "",
        "## Hit rate",
        "",
        "![hit rate vs DRAM](figures/demo_hit_rate_vs_dram.png)",
        "",
        *hit_view(rows),
        "",
        *skipped_view(data["skipped"]),
        "",
        "## In Python",
        "",
        "```python",
        "import memsim",
        "",
        'df = memsim.load_results("runs/demo")          # a pandas DataFrame, one row per point',
        'df.pivot_table(index="capacity_GB", columns=["method", "variant"], values="tokens_per_s")',
        "```",
    ]
    return "\n".join(lines) + "\n"


def series(method: str, variant: str) -> str:
    """"DIP (searched)", "Dense": as the summary table names a series."""
    name = METHOD_LABELS.get(method, method)
    return name if method == "dense" else f"{name} ({variant})"


def same_masks(rows: dict) -> list[str]:
    """Whether flash access changed what was read (it should only change how)."""
    diffs = [max(abs(a["ppl"] - b["ppl"]), abs(a["hit"] - b["hit"]),
                 abs(a["payload_MB"] - b["payload_MB"]))
             for (m, v, mb), a in rows.items() if v == SEARCHED
             for b in [rows.get((m, NAIVE, mb))] if b]
    if diffs and max(diffs) < 1e-9:
        return ["Flash access changes how the missed columns are read, not which: perplexity, "
                "hit rate and the payload bytes (`flash MB/token`) are the same for `searched` "
                "and `naive` at every point; only tokens/s moves."]
    return [f"Flash access changed what was read, not only how: perplexity, hit rate or payload "
            f"differ by up to {max(diffs, default=math.nan):.3g} between `searched` and `naive`."]


def accuracy_view(rows: dict, front: list, sizes: list[int]) -> list[str]:
    tps = [r["tps"] for r in rows.values()]
    dense = [rows[("dense", NAIVE, mb)]["ppl"] for mb in sizes if ("dense", NAIVE, mb) in rows]
    dip = sorted({round(r["ppl"], 2) for (m, _, _), r in rows.items() if m == "dip"})
    ca = [(mb, rows[("dip_ca", NAIVE, mb)]["ppl"]) for mb in sizes
          if ("dip_ca", NAIVE, mb) in rows]
    peak = max(ca, key=lambda x: x[1]) if ca else None
    front_text = ", ".join(f"{series(m, v)} at {mb} MB" for m, v, mb in front)
    lines = [f"Each series is one line through its DRAM sizes (the marker grows with the DRAM "
             f"size; the key is on the right). Tokens/s spans {min(tps):,.1f} to "
             f"{max(tps):,.1f}. Dense sits at perplexity {dense[0]:.2f} at every size"
             + ("" if len(set(dense)) == 1 else " (it varies: check the run)") + "; DIP at "
             + ", ".join(f"{p:.2f}" for p in dip)
             + (" (its masks do not depend on the cache)" if len(dip) == 1 else "") + "."]
    if peak:
        lines.append(f"DIP-CA's masks depend on the cache, so its perplexity moves with the DRAM "
                     f"size: from {ca[0][1]:.2f} at {ca[0][0]} MB to {peak[1]:.2f} at "
                     f"{peak[0]} MB and {ca[-1][1]:.2f} at {ca[-1][0]} MB.")
    lines.append(f"The Pareto front (no point has both a lower perplexity and more tokens/s): "
                 f"{front_text}.")
    return [" ".join(lines)]


def throughput_view(rows: dict, sizes: list[int]) -> list[str]:
    first = rows[("dense", NAIVE, sizes[0])]
    lines = [f"The two horizontal lines are the references the sweep computes for this "
             f"phone: dense decode with every MLP weight streamed from flash (no cache, "
             f"{first['ref_stream']:.1f} tokens/s) and with every weight in DRAM "
             f"({first['ref_dram']:,.0f} tokens/s). Dense with an LRU cache goes from "
             f"{first['tps']:.1f} at {sizes[0]} MB to "
             f"{rows[('dense', NAIVE, sizes[-1])]['tps']:,.1f} at {sizes[-1]} MB.", ""]
    mb = sizes[0]
    dense, dip = rows[("dense", NAIVE, mb)], rows[("dip", NAIVE, mb)]
    lines.append(f"- At {mb} MB DIP reads {dip['payload_MB']:.1f} MB of payload per token "
                 f"against dense's {dense['payload_MB']:.1f}, but {dip['device_MB']:.1f} MB of "
                 f"device reads in {dip['requests']:,.0f} requests (dense: "
                 f"{dense['device_MB']:.1f} MB in {dense['requests']:,.0f}): an effective flash "
                 f"bandwidth of {dip['GBps']:.2f} GB/s against dense's {dense['GBps']:.2f}.")
    faster = [m for m in sizes if rows[("dense", NAIVE, m)]["tps"] > max(
        r["tps"] for (k, _, s), r in rows.items() if s == m and k != "dense")]
    lines.append(f"- Dense with a cache is faster than every DIP and DIP-CA point at "
                 f"{len(faster)} of {len(sizes)} DRAM sizes"
                 + (f" ({', '.join(map(str, faster))} MB)" if faster else "") + ".")
    mid = sizes[len(sizes) // 2]
    a, b = rows[("dip", NAIVE, mid)], rows[("dip_ca", NAIVE, mid)]
    lines.append(f"- DIP-CA's hit rate against DIP's at {mid} MB: {b['hit']:.2f} vs "
                 f"{a['hit']:.2f}.")
    lines += searched_gains(rows, sizes)
    lines.append("- docs/results.md makes the same comparison at Phi-3-Medium's shapes.")
    return lines


def searched_gains(rows: dict, sizes: list[int]) -> list[str]:
    """What the search chose at each DRAM size and what it bought over naive."""
    out = []
    for method in ("dip", "dip_ca"):
        parts = []
        for mb in sizes:
            s, n = rows.get((method, SEARCHED, mb)), rows.get((method, NAIVE, mb))
            if s and n:
                parts.append(f"{mb} MB: {s['choice']}, {s['tps'] / n['tps'] - 1:+.1%} "
                             f"({n['requests']:,.0f} -> {s['requests']:,.0f} requests/token)")
        if parts:
            out.append(f"- `searched` for {METHOD_LABELS[method]} over `naive`: "
                       + "; ".join(parts) + ".")
    return out


def time_view(rows: dict, sizes: list[int]) -> list[str]:
    mb = sizes[0]
    parts = [f"{series(m, v)} {r['time_ms']:.1f} ms, {r['flash_ms'] / r['time_ms']:.0%} flash"
             for (m, v, s), r in sorted(rows.items()) if s == mb]
    return ["Per-token time split into flash, DRAM, compute and stall along the engine's "
            "critical path, one panel per series, all on one scale; each bar's total is "
            f"written on it (ms). At {mb} MB: " + "; ".join(parts) + "."]


def hit_view(rows: dict) -> list[str]:
    same = all(abs(r["hit"] - rows[(m, NAIVE, mb)]["hit"]) < 1e-12
               for (m, v, mb), r in rows.items() if v == SEARCHED and (m, NAIVE, mb) in rows)
    return ["`searched` and `naive` coincide here (one line lies under the other): flash "
            "access does not change what the cache holds (over-read admission is off)."
            if same else "`searched` and `naive` differ here: a chosen setting changed what "
            "the cache holds."]


def skipped_view(skipped: dict) -> list[str]:
    if not skipped:
        return []
    lines = ["## Not drawn", "", "`memsim plot` skips these figures for the demo and says why:",
             "", "```"]
    lines += [f"skipped {name}: {why}" for name, why in skipped.items()]
    return lines + ["```"]


# ---------------------------------------------------------------------- entry points
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    args = parser.parse_args()
    DOC.write_text(render(run(args.out)))
    print(f"wrote {DOC}")


def render_example() -> str:
    """The doc from a small fixture (tests/test_generated_docs.py)."""
    sizes = (37, 43, 71)
    rows = {}
    for i, mb in enumerate(sizes):
        for m, method in enumerate(("dense", "dip", "dip_ca")):
            for v, variant in enumerate((NAIVE, SEARCHED) if method != "dense" else (NAIVE,)):
                rows[(method, variant, mb)] = {
                    "ppl": 31.17 + 7.1 * m + (1.3 * i if method == "dip_ca" else 0),
                    "tps": 53.9 + 9.1 * i - 2.3 * m + 1.7 * v, "hit": 0.113 + 0.21 * i,
                    "payload_MB": 33.3 - 7.7 * m - 3.1 * i, "device_MB": 34.1 - 3.3 * i,
                    "requests": 61.0 + 313 * m - 7 * v, "GBps": 2.31 - 0.6 * m,
                    "time_ms": 14.7 - i, "flash_ms": 13.9 - i,
                    "choice": "setting b" if v else "", "ref_stream": 61.9, "ref_dram": 1093.0}
    setup = {"model": "model-s", "shape": "13 layers", "bits": 3, "mlp_MB": 39.1,
             "attention_MB": 13.1, "embedding_MB": 14.1, "hardware": "a phone",
             "compute": "npu", "windows": 3, "window_len": 19, "density": 0.37, "gamma": 0.21,
             "layout_windows": 7, "layout_split": "other", "candidates": ["a", "b"],
             "num_dram": len(sizes)}
    return render({"setup": setup, "rows": rows, "summary": ["a summary line"],
                   "skipped": {"a figure": "why"}, "front": [("dense", NAIVE, 71)],
                   "wall_s": 51.0, "machine": {"cpus": 29, "load": 2.71,
                                               "load_window_min": 7}})


if __name__ == "__main__":
    run_main(main)
