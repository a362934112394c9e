"""docs/results.md: DIP vs a trained predictor vs LLM in a flash's windowing on SmolLM2-135M
at equal DRAM (issue 19; the claims.py section interface).

DIP's and dense's traces are the shared SmolLM2 sweep's (claims_smollm2: the same held-out
windows); the predictor (rank RANK, density DENSITY) and its trace over those windows are
made in `<--out>/peers` when missing (`memsim train-predictor`, then `memsim eval`), minutes
on a laptop CPU. benchmarks/peer_comparison.py simulates and tabulates.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from claims_smollm2 import DENSITIES, MODEL, WINDOW_LEN, rows_where, smollm2  # noqa: I001
from peer_comparison import (
    DENSITY,
    PRESET,
    RANK,
    WINDOW_TOKENS,
    compare,
    example_rows,
    findings,
    table,
)

from memsim.core.errors import ConfigError
from memsim.hw.config import load_hw
from memsim.traces.trace import Trace

TITLE = "DIP vs a trained predictor vs LLM in a flash's windowing, at equal DRAM"
MEMSIM = [sys.executable, "-m", "memsim"]


def run(ctx) -> dict:
    sweep = smollm2(ctx)
    if DENSITY not in DENSITIES:
        raise ConfigError(f"peer comparison: density {DENSITY} is not among the SmolLM2 "
                          f"sweep's densities {DENSITIES}")
    found = {name: rows_where(sweep["rows"], **where)[0] for name, where in
             (("dip", {"method": "dip", "density": DENSITY}), ("dense", {"method": "dense"}))}
    config = sweep["config"]
    folder = ctx.out / "peers"
    made = make_predictor(folder, ctx.args.windows, config["split"])
    trace_dir = _trace_dir(folder, ctx.args.windows)
    traces = {"dip": Trace.load(found["dip"]["trace_path"]),
              "predictor": Trace.load(trace_dir / "trace.npz")}
    record = json.loads((folder / "pred" / "predictor.json").read_text())
    bits = load_hw(PRESET).precision.predictor_bits
    ppl = {name: float(row["perplexity"]) for name, row in found.items()}
    ppl["predictor"] = float(json.loads((trace_dir / "results.json").read_text())["perplexity"])
    return {"rows": compare(traces), "ppl": ppl, "made": made,
            "predictor": {"rank": record["rank"], "density": record["density"],
                          "recall": record["recall"]["mean"],
                          "params": record["num_params"],
                          "MB": record["num_params"] * bits / 8 / 1e6, "bits": bits},
            "windows": ctx.args.windows, "window_len": WINDOW_LEN, "split": config["split"],
            "model": config["model_shape"]["name"]}


def _trace_dir(folder: Path, windows: int) -> Path:
    return folder / f"predictor_w{windows}"


def make_predictor(folder: Path, windows: int, split: str) -> list[str]:
    """Train the predictor and evaluate it over the sweep's windows, whichever is missing;
    returns what was made."""
    made, pred, trace_dir = [], folder / "pred", _trace_dir(folder, windows)
    steps = [
        (pred / "predictor.json", "predictor",
         ["train-predictor", "--model", MODEL, "--density", str(DENSITY), "--rank", str(RANK),
          "--out", str(pred)]),
        (trace_dir / "results.json", "predictor trace",
         ["eval", "--model", MODEL, "--method", "predictor", "--predictor", str(pred),
          "--split", split, "--windows", str(windows), "--window-len", str(WINDOW_LEN),
          "--out", str(trace_dir)]),
    ]
    for marker, what, command in steps:
        if marker.is_file():
            continue
        try:
            subprocess.run(MEMSIM + command + ["--no-progress"], check=True)
        except subprocess.CalledProcessError:  # memsim said why, on stderr, above
            raise SystemExit(f"claims_peers: making the {what} failed "
                             f"(memsim {' '.join(command)})") from None
        made.append(what)
    return made


def render(data: dict, ctx) -> list[str]:
    pred = data["predictor"]
    return [
        f"Real {data['model']} masks of held-out text (the windows of section "
        f"{ctx.number('claims_accuracy')}: {data['windows']} of {data['window_len']} tokens, "
        f"split `{data['split']}`), MLP density {DENSITY:g} for both DIP and a trained "
        f"predictor (Deja Vu style, docs/predictor.md: rank {pred['rank']}, "
        f"{pred['params']:,} parameters, held-out top-k recall {pred['recall']:.3f}), on the "
        f"{PRESET} preset. Each DRAM point gives every method the same capacity; the "
        f"predictor's weights ({pred['MB']:.1f} MB at {pred['bits']:g} bits) are resident "
        f"inside it, so its cache has that much less. The window (k = {WINDOW_TOKENS}, LLM "
        "in a flash's sliding window: `cache.impl: window`) is capped at the capacity when "
        "it does not fit; \"cache held\" is the DRAM the cache actually filled.",
        "",
        *table(data["rows"], data["ppl"]),
        "",
        *findings(data["rows"], data["ppl"]),
    ]


def work(data: dict) -> str:
    made = data["made"]
    return ("made: " + ", ".join(made)) if made else "predictor and its trace reused"


def example_data(ctx) -> dict:
    return {"rows": example_rows(), "ppl": {"dip": 61.37, "predictor": 103.9, "dense": 43.1},
            "made": ["predictor"], "windows": 3, "window_len": 17, "split": "held",
            "model": "m", "predictor": {"rank": 13, "density": 0.47, "recall": 0.611,
                                        "params": 123457, "MB": 2.71, "bits": 11}}
