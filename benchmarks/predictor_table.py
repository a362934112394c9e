"""Regenerate docs/predictor_results.md: the trained-predictor baseline (Deja Vu style, issue
13) against DIP, CATS and GLU pruning on SmolLM2-135M, with real masks.

    PYTHONPATH=. .venv/bin/python benchmarks/predictor_table.py [--windows 8]
        [--ranks 16,64,128] [--steps N] [--out runs/predictor_table]

1. Predictors: one per (rank, density), trained by workloads.train_predictor on 32 windows of
   128 tokens of the `train` split (the other plays; one dense pass collects the activations
   all of them share), held-out recall on 8 windows of the `test` split.
2. Perplexity vs MLP density on `--windows` windows of 256 tokens of the `test` split (the
   held-out plays, seed 0: the windows of docs/results.md section 1) for DIP, CATS, GLU, the
   predictors, and the oracle neuron set (the true top-k of |h| at the same neuron count: a
   predictor with recall 1, which is GLU pruning's mask applied as neurons).
3. tokens/s at equal DRAM on the flagship and paper_reference presets, SmolLM2-scale DRAM,
   from the same traces; the predictor's weights (16-bit, `precision.predictor_bits`) are
   resident, shrink the cache budget, are read every token and computed before the MLP.
Resumable: finished predictors and evaluations in --out are reused. Writes
docs/predictor_results.md (benchmarks/claims.py includes it as section 5 of docs/results.md).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from memsim.core.files import check_output_dir, check_output_file
from memsim.hw.config import load_hw
from memsim.sim.simulator import simulate
from memsim.traces.trace import Trace
from workloads.corpus import load_corpus, make_windows
from workloads.evaluation import evaluate
from workloads.model import load_model
from workloads.predictor_data import collect
from workloads.results import write_atomic
from workloads.train_predictor import PredictorTrainConfig, train_predictor

from run_info import machine, machine_text, run_main  # noqa: I001 (same folder)

DENSITIES = (0.3, 0.5, 0.7)
LIMITS = {"glu": 2 / 3, "cats": 1 / 3 + 1e-9}  # densities below these are unreachable
DRAM_MB = (36, 42, 48, 54, 60, 66, 72)  # SmolLM2 4-bit: ~27 MB resident + KV, 40 MB of MLP
WINDOW_LEN = 256  # evaluation windows (docs/results.md section 1's)
PRESETS = ("flagship", "paper_reference")
TITLE = "Predictor-based methods (Deja Vu style): does DIP beat them?"
DOCS = Path(__file__).resolve().parent.parent / "docs"


# ---------------------------------------------------------------- 1. predictors
def predictor_config(args) -> PredictorTrainConfig:
    """memsim train-predictor's defaults, with --steps if given."""
    base = PredictorTrainConfig()
    return base if args.steps is None else dataclasses.replace(base, steps=args.steps)


def train_all(loaded, corpus, args, out: Path) -> dict:
    """(rank, density) -> predictor.json record; activations collected once, if needed."""
    base = predictor_config(args)
    configs = {(r, d): dataclasses.replace(base, rank=r, density=d)
               for r in args.ranks for d in DENSITIES}
    folders = {key: out / "predictors" / f"r{key[0]}_d{key[1]}" for key in configs}
    todo = [key for key in configs if not (folders[key] / "predictor.json").is_file()]
    activations, collect_s = None, 0.0
    if todo:
        start = time.perf_counter()
        windows = make_windows(corpus, "train", loaded.tokenizer, base.window_len,
                               base.train_windows, base.seed)
        activations = collect(loaded, windows.ids, windows.split, windows.starts)
        collect_s = time.perf_counter() - start
        print(f"collected training activations ({windows.ids.size} tokens) in "
              f"{collect_s:.0f} s", flush=True)
    records = {}
    for key, config in configs.items():
        records[key] = train_predictor(config, folders[key], model=loaded, corpus=corpus,
                                       activations=activations, progress=False)
        rec = records[key] = {**records[key], "reused": key not in todo}
        print(f"predictor r{key[0]} d{key[1]}: recall {rec['recall']['mean']:.3f}, fit "
              f"{rec['wall_s']['fit']:.0f} s", flush=True)
    if todo:
        (out / "collect_s.json").write_text(json.dumps({"collect_s": collect_s}))
    return records


# ---------------------------------------------------------------- 2. perplexity
def runs(ranks, folders) -> list[tuple[str, str, float, dict]]:
    """(label, method, density, params) of every evaluation."""
    out = [("dense", "dense", 1.0, {})]
    for method in ("glu", "cats", "dip"):
        out += [(method, method, d, {"density": d}) for d in DENSITIES
                if d >= LIMITS.get(method, 0)]
    out += [("oracle", "glu", d, {"keep_fraction": d}) for d in DENSITIES]
    out += [(f"predictor r{r}", "predictor", d, {"predictor": str(folders[r, d])})
            for r in ranks for d in DENSITIES]
    return out


def evaluate_all(loaded, corpus, args, out: Path) -> list[dict]:
    """One row per evaluation: perplexity, density, the trace (oracle: as neurons)."""
    folders = {(r, d): out / "predictors" / f"r{r}_d{d}" for r in args.ranks for d in DENSITIES}
    rows = []
    for label, method, density, params in runs(args.ranks, folders):
        folder = out / "evals" / f"{label.replace(' ', '_')}_d{density}"
        start = time.perf_counter()
        reused = (folder / "results.json").is_file()
        if reused:  # finished earlier: reuse
            summary = json.loads((folder / "results.json").read_text())
            ppl, achieved, eval_s = (summary["perplexity"], summary["mlp_density"],
                                     summary["wall_s"])
            trace = Trace.load(folder / "trace.npz")
        else:
            result = evaluate(loaded, method, params, corpus=corpus, windows=args.windows,
                              window_len=WINDOW_LEN, seed=0, progress=False, out_dir=folder)
            ppl, achieved, trace = result.perplexity, result.mlp_density, result.trace
            eval_s = result.wall_s
        if label == "oracle":  # GLU's top-k of |h| applied to whole neurons, no predictor
            trace = Trace(neurons=trace.down, model=trace.model, method="oracle",
                          method_params={"keep_fraction": density},
                          sequence_lengths=trace.sequence_lengths, source=trace.source)
            achieved = float(trace.mlp_density().mean())
        rows.append(dict(label=label, method=method, target=density, ppl=ppl,
                         density=achieved, trace=trace, eval_s=eval_s, reused=reused))
        print(f"{label:16s} d={density:.1f} ppl {ppl:9.2f} density {achieved:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


# ---------------------------------------------------------------- 3. tokens/s
def throughput(rows: list[dict]) -> tuple[dict, dict]:
    """(preset -> row label/density -> (len(DRAM_MB),) tokens/s, preset -> the smallest DRAM
    size (MB) at which dense's cache holds its whole MLP, None if none on the grid)."""
    out, dense_whole = {}, {}
    for preset in PRESETS:
        base = load_hw(preset)
        per_row = {}
        dense_whole[preset] = None
        for row in rows:
            if row["label"] in ("glu", "cats"):
                continue  # their tokens/s is in docs/results.md; here: DIP vs predictors
            rates = []
            for mb in DRAM_MB:
                hw = dataclasses.replace(base, dram=dataclasses.replace(base.dram,
                                                                        capacity_GB=mb / 1e3))
                result = simulate(hw, None, row["trace"])
                rates.append(result.tokens_per_s)
                if row["label"] == "dense" and dense_whole[preset] is None \
                        and caches_everything(result, row["trace"]):
                    dense_whole[preset] = mb
            per_row[(row["label"], row["target"])] = np.array(rates)
        out[preset] = per_row
    return out, dense_whole


def caches_everything(result, trace: Trace) -> bool:
    """Whether the DRAM cache of `result` holds every column of every layer of `trace`."""
    return all(min(result.cache_capacity_columns[g.name]) >= g.num_columns
               for g in trace.groups())


# ---------------------------------------------------------------- markdown
def _row(rows, label, target):
    return next((r for r in rows if r["label"] == label and r["target"] == target), None)


def perplexity_table(rows, ranks, records) -> list[str]:
    dense = _row(rows, "dense", 1.0)
    lines = ["| method | " + " | ".join(f"d = {d}" for d in DENSITIES) + " |",
             "|---|" + "---|" * len(DENSITIES),
             f"| dense | {dense['ppl']:.2f} (d = {dense['density']:g}) |"
             + " |" * (len(DENSITIES) - 1)]
    labels = ["glu", "cats", "dip", "oracle"] + [f"predictor r{r}" for r in ranks]
    for label in labels:
        cells = []
        for d in DENSITIES:
            row = _row(rows, label, d)
            if row is None:
                cells.append("-")
                continue
            text = f"{row['ppl']:.2f}"
            if label.startswith("predictor"):
                rank = int(label.split("r")[-1])
                text += f" (recall {records[rank, d]['recall']['mean']:.2f})"
            cells.append(text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def training_table(records, ranks, collect_s: float | None, precision,
                   cfg: PredictorTrainConfig) -> list[str]:
    """`precision`: the hardware's bit widths (the predictor's weights and the MLP's)."""
    bits, mlp_bits = precision.predictor_bits, precision.mlp_bits
    lines = [f"| rank | params (all layers) | % of MLP params | {bits:g}-bit MB (% of the "
             f"{mlp_bits:g}-bit MLP) | density | held-out recall (mean, min-max over layers) | "
             "random | fit s | fit CPU s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in ranks:
        for d in DENSITIES:
            rec = records[r, d]
            per = rec["recall"]["per_layer"]
            lines.append(f"| {r} | {rec['num_params']:,} | {rec['fraction_of_mlp_params']:.1%} "
                         f"| {rec['num_params'] * bits / 8 / 1e6:.1f} "
                         f"({rec['fraction_of_mlp_params'] * bits / mlp_bits:.0%}) | {d} | "
                         f"{rec['recall']['mean']:.3f} ({min(per):.2f}-{max(per):.2f}) | "
                         f"{rec['recall']['random_guess']:.2f} | {rec['wall_s']['fit']:.0f} | "
                         f"{rec['fit_cpu_s']:.0f} |")
    if collect_s is not None:
        lines += ["", f"Collecting the shared training activations (one dense pass over "
                      f"{cfg.train_windows * cfg.window_len} tokens) took {collect_s:.0f} s."]
    return lines


def throughput_table(rows, rates: dict, preset: str, ranks) -> list[str]:
    lines = ["| method | d | ppl | " + " | ".join(f"{mb} MB" for mb in DRAM_MB) + " |",
             "|---|---|---|" + "---|" * len(DRAM_MB)]
    order = [("dense", 1.0)] + [(label, d) for d in DENSITIES for label in
                                ("dip", "oracle", *[f"predictor r{r}" for r in ranks])]
    for label, d in order:
        row, r = _row(rows, label, d), rates[preset].get((label, d))
        if row is None or r is None:
            continue
        lines.append(f"| {label} | {d} | {row['ppl']:.2f} | "
                     + " | ".join(f"{x:.1f}" for x in r) + " |")
    return lines


def verdict(rows, rates: dict, ranks) -> list[str]:
    """Plain statements computed from the tables: accuracy at equal density, tokens/s at
    equal density and DRAM."""
    lines = []
    for d in DENSITIES:
        dip, oracle = _row(rows, "dip", d), _row(rows, "oracle", d)
        best = min((_row(rows, f"predictor r{r}", d) for r in ranks), key=lambda p: p["ppl"])
        lines.append(f"- **Accuracy at density {d}**: DIP {dip['ppl']:.2f}, best predictor "
                     f"({best['label']}) {best['ppl']:.2f}, oracle neuron set "
                     f"{oracle['ppl']:.2f}: "
                     + ("DIP is more accurate." if dip["ppl"] < best["ppl"]
                        else "the predictor is at least as accurate."))
    for preset in PRESETS:
        counts = []
        for r in ranks:
            wins = sum(int((rates[preset][("dip", d)] > rates[preset][(f"predictor r{r}", d)])
                           .sum()) for d in DENSITIES)
            counts.append(f"r{r}: DIP faster at {wins} of {len(DENSITIES) * len(DRAM_MB)}")
        lines.append(f"- **tokens/s on {preset} at the same density and DRAM**: "
                     + "; ".join(counts) + ".")
    return lines


def equal_accuracy(rows, rates: dict, preset: str, ranks) -> list[tuple]:
    """Per DIP density d (its perplexity the budget): per DRAM size, the best tokens/s of DIP
    points and of predictor points (label, density, rate; None if none qualifies) whose
    perplexity is no worse than the budget."""
    predictors = [_row(rows, f"predictor r{r}", d) for r in ranks for d in DENSITIES]
    out = []
    for d in sorted(DENSITIES, reverse=True):
        budget = _row(rows, "dip", d)["ppl"]
        dips = [e for e in DENSITIES if _row(rows, "dip", e)["ppl"] <= budget]
        preds = [p for p in predictors if p["ppl"] <= budget]
        cells = []
        for i in range(len(DRAM_MB)):
            dip_best = max(rates[preset][("dip", e)][i] for e in dips)
            best = max(preds, key=lambda p: rates[preset][(p["label"], p["target"])][i],
                       default=None)
            pred = None if best is None else (
                best["label"].split()[-1], best["target"],
                rates[preset][(best["label"], best["target"])][i])
            cells.append((dip_best, pred))
        out.append((d, budget, cells))
    return out


def equal_accuracy_table(rows, rates: dict, preset: str, ranks) -> list[str]:
    lines = ["| perplexity <= | " + " | ".join(f"{mb} MB" for mb in DRAM_MB) + " |",
             "|---|" + "---|" * len(DRAM_MB)]
    for d, budget, cells in equal_accuracy(rows, rates, preset, ranks):
        text = [f"DIP {dip:.1f} / " + ("no predictor" if pred is None else
                                        f"{pred[0]} d{pred[1]} {pred[2]:.1f}")
                for dip, pred in cells]
        lines.append(f"| {budget:.2f} (DIP d = {d}) | " + " | ".join(text) + " |")
    return lines


def equal_accuracy_verdict(rows, rates: dict, ranks) -> list[str]:
    lines = []
    for preset in PRESETS:
        parts = []
        for d, budget, cells in equal_accuracy(rows, rates, preset, ranks):
            if all(pred is None for _, pred in cells):
                parts.append(f"no predictor is as accurate as DIP at d = {d} "
                             f"({budget:.2f})")
                continue
            faster = sum(pred is not None and pred[2] > dip for dip, pred in cells)
            parts.append(f"at DIP d = {d}'s perplexity ({budget:.2f}) or better, the best "
                         f"predictor point is faster than the best DIP point at {faster} of "
                         f"{len(cells)} DRAM sizes")
        lines.append(f"- **Equal accuracy, {preset}**: " + "; ".join(parts) + ".")
    return lines


def _dense_whole_text(whole: dict) -> str:
    """Where dense's cache holds its whole MLP, presets with the same answer named together."""
    by_size: dict = {}
    for preset, mb in whole.items():
        by_size.setdefault(mb, []).append(preset)
    return " ".join(
        f"On {' and '.join(presets)}, dense's cache holds its whole MLP from {mb} MB on this "
        "grid (only each window's cold start then reads from flash)." if mb is not None else
        f"On {' and '.join(presets)}, dense's cache never holds its whole MLP on this grid."
        for mb, presets in by_size.items())


def _reused_text(records: dict, rows: list[dict]) -> str:
    """" (7 of 9 predictors and 19 of 19 evaluations from an earlier run in --out: ...)"."""
    done = [(sum(bool(x.get("reused")) for x in items), len(items), what)
            for items, what in ((list(records.values()), "predictors"), (rows, "evaluations"))]
    if not any(n for n, _, _ in done):
        return ""
    return (" (" + " and ".join(f"{n} of {total} {what}" for n, total, what in done if n)
            + " reused from an earlier run in --out: their times are that run's)")


def render(rows, rates, records, args, sim_s: float, collect_s: float | None, facts: dict) -> str:
    """`facts`: what the run used besides its results (run_facts(): the hardware's bit widths
    and cache policy, the model, the machine; and throughput()'s `dense_whole_MB`)."""
    cfg = predictor_config(args)
    precision, where = facts["precision"], facts["machine"]
    train_s = (collect_s or 0.0) + sum(rec["wall_s"]["fit"] + rec["wall_s"]["recall"]
                                      for rec in records.values())
    lines = [
        f"## {TITLE}",
        "",
        "Generated by `benchmarks/predictor_table.py` (do not edit by hand); regenerate with",
        "",
        f"    PYTHONPATH=. .venv/bin/python benchmarks/predictor_table.py --windows "
        f"{args.windows} --ranks {','.join(map(str, args.ranks))}"
        + (f" --steps {args.steps}" if args.steps is not None else ""),
        "",
        f"Time, torch on {machine_text(where)}: training "
        f"{train_s / 60:.0f} min ({len(records)} predictors, shared activations included), "
        f"evaluations {sum(r['eval_s'] for r in rows) / 60:.0f} min (without model loading), "
        f"simulations {sim_s / 60:.0f} min{_reused_text(records, rows)}; a rerun reuses "
        "finished predictors and evaluations in --out.",
        "",
        "The predictor (docs/predictor.md): per layer, scores = W_expand (W_reduce x) with a "
        "rank-r bottleneck, reading the MLP input x; the top round(d I) neurons are read "
        "(rows of W_up and W_gate, column of W_down: one bundle). Trained with "
        f"`memsim train-predictor` ({cfg.steps} AdamW steps of {cfg.batch_tokens} tokens at "
        f"peak rate {cfg.lr:g}, BCE against the dense model's top-k of |h|) on "
        f"{cfg.train_windows} windows of {cfg.window_len} tokens of the training plays; recall "
        f"on {cfg.recall_windows} held-out windows of the test plays. Density = MLP weights "
        "read per token, as "
        "for every method; the predictor's own weights are not in it (they are counted in "
        "DRAM and in the per-token reads below).",
        "",
        "### Training and recall",
        "",
        *training_table(records, args.ranks, collect_s, precision, cfg),
        "",
        f"### Perplexity vs density ({args.windows} held-out windows of {WINDOW_LEN} tokens)",
        "",
        "Oracle = the true top-k neurons of |h| (what a predictor with perfect recall would read; "
        "GLU pruning's mask applied as neurons). '-': the method cannot reach that density.",
        "",
        *perplexity_table(rows, args.ranks, records),
        "",
        f"### tokens/s at equal DRAM ({facts['model']} at {precision.mlp_bits:g} bits, cold "
        f"cache per window, {facts['cache']})",
        "",
        f"The predictor's weights ({precision.predictor_bits:g}-bit) are resident: they shrink "
        "the cache budget, are read every token, and their compute sits before the layer's "
        "MLP loads. The oracle row has no predictor (a free, perfect one). "
        + _dense_whole_text(facts["dense_whole_MB"]),
        "",
    ]
    for preset in PRESETS:
        lines += [f"**{preset}**", "", *throughput_table(rows, rates, preset, args.ranks), ""]
    lines += ["### At equal accuracy", "",
              "Best tokens/s of DIP and of any predictor (rank, density) among the points "
              "whose perplexity is no worse than DIP's at each density, per DRAM size.", ""]
    for preset in PRESETS:
        lines += [f"**{preset}**", "", *equal_accuracy_table(rows, rates, preset, args.ranks),
                  ""]
    lines += ["### Does \"DIP beats predictor-based methods\" hold here?", "",
              *verdict(rows, rates, args.ranks),
              *equal_accuracy_verdict(rows, rates, args.ranks), ""]
    return "\n".join(lines) + "\n"


def run_facts() -> dict:
    """The settings the tables were made with, besides the results."""
    hw = load_hw(PRESETS[0])
    return {"precision": hw.precision, "model": PredictorTrainConfig().model,
            "cache": hw.cache.impl.upper(), "machine": machine()}


def render_example() -> str:
    """The doc from a small fixture of fake results (tests/test_generated_docs.py)."""
    from types import SimpleNamespace

    args = argparse.Namespace(windows=3, ranks=[7, 9], steps=None)
    rows = [dict(label="dense", method="dense", target=1.0, ppl=31.17, density=1.0,
                 eval_s=61.0)]
    folders = {(r, d): "" for r in args.ranks for d in DENSITIES}
    for i, (label, method, density, _) in enumerate(runs(args.ranks, folders)):
        if method != "dense":
            rows.append(dict(label=label, method=method, target=density, ppl=41.31 + 3.07 * i,
                             density=density + 0.0013, eval_s=37.0, reused=i % 2 == 0))
    records = {(r, d): {"recall": {"mean": 0.4111 + d, "per_layer": [0.3713, 0.8117],
                                   "random_guess": d},
                        "num_params": 12_345 * r, "fraction_of_mlp_params": 0.0123 * r,
                        "wall_s": {"fit": 71.0, "recall": 3.0}, "fit_cpu_s": 67.0,
                        "reused": d == DENSITIES[0]}
               for r in args.ranks for d in DENSITIES}
    rates = {preset: {(row["label"], row["target"]): 13.7 + 0.31 * i + np.arange(len(DRAM_MB))
                      for i, row in enumerate(rows)} for preset in PRESETS}
    facts = {"precision": SimpleNamespace(predictor_bits=11, mlp_bits=3), "model": "model-x",
             "cache": "a cache", "machine": {"cpus": 29, "load": 2.71, "load_window_min": 7},
             "dense_whole_MB": {PRESETS[0]: DRAM_MB[-2], PRESETS[1]: None}}
    return render(rows, rates, records, args, 97.0, 131.0, facts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--ranks", type=lambda s: [int(x) for x in s.split(",")],
                        default=[16, 64, 128])
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default: memsim train-predictor's)")
    parser.add_argument("--out", default="runs/predictor_table")
    parser.add_argument("--doc", default=str(DOCS / "predictor_results.md"))
    args = parser.parse_args()
    out = check_output_dir(args.out)
    check_output_file(args.doc, "--doc")
    loaded, corpus = load_model("smollm2-135m", progress=False), load_corpus()
    records = train_all(loaded, corpus, args, out)
    collect_file = out / "collect_s.json"
    collect_s = (json.loads(collect_file.read_text())["collect_s"] if collect_file.is_file()
                 else None)
    rows = evaluate_all(loaded, corpus, args, out)
    start = time.perf_counter()
    rates, dense_whole = throughput(rows)
    text = render(rows, rates, records, args, time.perf_counter() - start, collect_s,
                  {**run_facts(), "dense_whole_MB": dense_whole})
    write_atomic(Path(args.doc), lambda fh: fh.write(text.encode()))
    print(text)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    run_main(main)
