"""DIP vs a trained predictor vs LLM in a flash's windowing, on real SmolLM2 masks (issue 19).

    python benchmarks/peer_comparison.py [--data runs/peers] [--out FILE]

Real SmolLM2-135M traces of held-out plays (`memsim eval ... --split test`, 8 windows of 256
tokens; made by this script with `memsim eval` / `memsim train-predictor` when missing):
  * DIP at MLP density 0.5 (memsim's default LRU cache, as the paper runs it);
  * the trained predictor (Deja Vu style, docs/predictor.md) at density 0.5, with an LRU cache
    and with LLM in a flash's sliding window (`cache.impl: window`, k = 5 tokens);
  * DIP with the same window, to separate the policy from the masks;
  * dense, for the perplexity baseline.
All on the flagship preset at equal DRAM: each point gives every method the same DRAM
capacity, the static part (attention, embeddings, KV cache) plus a share of the MLP's bytes,
and one more point: the capacity the predictor's window needs never to be capped (its peak
per layer, measured on the trace); the predictor's own weights are resident and come out of
the same capacity (its cost). The window keeps what the last k tokens used up to that
capacity (capped, `cache.window_fit: cap`); the table says how much of the DRAM it held.

`section(data)` returns the markdown section (every number and verdict computed from the
run); `main` prints it or writes it to `--out`. The lead wires it into docs/results.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

from memsim.cache.window import window_peak_columns
from memsim.core.files import atomic_write_text
from memsim.hw.config import HardwareConfig, load_hw
from memsim.sim.footprint import Footprint
from memsim.sim.plan import resident_weight_bytes
from memsim.sim.result import Result
from memsim.sim.simulator import simulate
from memsim.traces.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
WINDOWS, WINDOW_LEN, DENSITY, WINDOW_TOKENS = 8, 256, 0.5, 5
MLP_SHARES = (0.25, 0.5, 0.75)  # DRAM beyond the static part, as a share of the MLP bytes
WINDOW_POINT = "window"  # one more point: the DRAM the predictor's window needs uncapped
EVAL = {"dense": ["--method", "dense"],
        "dip": ["--method", "dip", "--density", str(DENSITY)],
        "predictor": ["--method", "predictor", "--predictor", "{data}/pred"]}
# (label, trace, cache policy)
SETUPS = (("DIP, LRU", "dip", "lru"), ("DIP, window k=5", "dip", "window"),
          ("predictor, LRU", "predictor", "lru"),
          ("predictor, window k=5 (LLM in a flash)", "predictor", "window"))


def make_traces(data: Path) -> None:
    """Train the predictor and evaluate every method on the held-out split, if missing."""
    memsim = [sys.executable, "-m", "memsim"]
    if not (data / "pred" / "predictor.json").is_file():
        subprocess.run(memsim + ["train-predictor", "--density", str(DENSITY), "--rank", "64",
                                 "--out", str(data / "pred"), "--no-progress"], check=True)
    for name, flags in EVAL.items():
        if not (data / name / "trace.npz").is_file():
            flags = [f.format(data=data) for f in flags]
            subprocess.run(memsim + ["eval", *flags, "--split", "test", "--windows",
                                     str(WINDOWS), "--window-len", str(WINDOW_LEN), "--out",
                                     str(data / name), "--no-progress"], check=True)


def _perplexity(data: Path, name: str) -> float:
    return float(json.loads((data / name / "results.json").read_text())["perplexity"])


def capacity_GB(hw: HardwareConfig, trace: Trace, share: float) -> float:
    """Static DRAM (resident weights of the DIP run, KV at the longest sequence) plus `share`
    of the MLP's bytes."""
    model = trace.model
    fp = Footprint.of(model, hw)
    kv = (trace.prompt_len + max(trace.sequence_lengths)) * fp.kv_bytes_per_token_per_layer \
        * model.num_hidden_layers
    mlp = model.num_hidden_layers * fp.mlp_bytes_per_layer
    return (resident_weight_bytes(hw, model, fp) + kv + share * mlp) / 1e9


def window_capacity_GB(hw: HardwareConfig, trace: Trace) -> float:
    """The DRAM with which `trace`'s window (k tokens) is never capped in any layer: its
    resident weights (the predictor's included), KV cache, and the largest layer's window
    peak in every layer (the budget is split equally over layers)."""
    model = trace.model
    fp = Footprint.of(model, hw, trace.adapter_params, trace.predictor_params)
    (group,) = trace.groups()  # a neuron trace: one group
    peak = int(window_peak_columns(group.bits.words, trace.sequence_lengths,
                                   WINDOW_TOKENS).max())
    kv = (trace.prompt_len + max(trace.sequence_lengths)) * fp.kv_bytes_per_token_per_layer \
        * model.num_hidden_layers
    window = model.num_hidden_layers * peak * fp.vector_bytes(group.vector_weights,
                                                              group.num_matrices)
    return (resident_weight_bytes(hw, model, fp) + kv + window) / 1e9 + 1e-9  # + 1 byte


def _configured(base: HardwareConfig, capacity: float, policy: str) -> HardwareConfig:
    return dataclasses.replace(
        base, dram=dataclasses.replace(base.dram, capacity_GB=capacity),
        cache=dataclasses.replace(base.cache, impl=policy, window_tokens=WINDOW_TOKENS,
                                  window_fit="cap"))


def run(data: Path) -> tuple[list[dict], dict[str, float]]:
    """One row per (DRAM point, setup); perplexities by trace name."""
    base = load_hw("flagship")
    traces = {name: Trace.load(data / name / "trace.npz") for name in ("dip", "predictor")}
    rows = []
    points = [(share, capacity_GB(base, traces["dip"], share)) for share in MLP_SHARES]
    points.append((WINDOW_POINT, window_capacity_GB(base, traces["predictor"])))
    for share, capacity in points:
        for label, name, policy in SETUPS:
            hw = _configured(base, capacity, policy)
            rows.append({"share": share, "capacity_GB": capacity, "label": label,
                         "trace": name, "result": simulate(hw, None, traces[name])})
    return rows, {n: _perplexity(data, n) for n in EVAL}


def _mb(x: float) -> str:
    return f"{x / 1e6:.2f}"


def table(rows: list[dict], ppl: dict[str, float]) -> str:
    lines = ["| DRAM (MB) | method | perplexity | tokens/s | flash MB/token | hit rate | "
             "cache held (MB) | window |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        r: Result = row["result"]
        window = r.plan_notes.get("window", "")
        state = "capped" if "capped" in window else ("fits" if window else "-")
        lines.append(f"| {row['capacity_GB'] * 1e3:.1f} | {row['label']} | "
                     f"{ppl[row['trace']]:.3f} | {r.tokens_per_s:.1f} | "
                     f"{_mb(r.flash_bytes_per_token)} | {r.hit_rate:.3f} | "
                     f"{_mb(r.dram_used_breakdown_bytes['cache'])} | {state} |")
    return "\n".join(lines)


def findings(rows: list[dict], ppl: dict[str, float]) -> str:
    """The verdicts, each computed from the rows."""
    out = []
    for share in [*MLP_SHARES, WINDOW_POINT]:
        at = [r for r in rows if r["share"] == share]
        best = max(at, key=lambda r: r["result"].tokens_per_s)
        by = {r["label"]: r["result"] for r in at}
        dip, win = by["DIP, LRU"], by["predictor, window k=5 (LLM in a flash)"]
        lru = by["predictor, LRU"]
        what = (f"static part + {share:.0%} of the MLP" if share != WINDOW_POINT
                else "what the predictor's window needs uncapped")
        out.append(f"- DRAM {at[0]['capacity_GB'] * 1e3:.1f} MB ({what}): fastest is "
                   f"{best['label']} at {best['result'].tokens_per_s:.1f} tokens/s; DIP with "
                   f"LRU runs {dip.tokens_per_s / win.tokens_per_s:.2f}x the predictor with "
                   f"LLM in a flash's window ({dip.tokens_per_s:.1f} vs "
                   f"{win.tokens_per_s:.1f}); the window's hit rate is {win.hit_rate:.3f} "
                   f"against LRU's {lru.hit_rate:.3f} on the same predictor masks.")
    better = "lower" if ppl["dip"] < ppl["predictor"] else "higher"
    out.append(f"- Accuracy (held-out plays): DIP's perplexity {ppl['dip']:.3f} is {better} "
               f"than the predictor's {ppl['predictor']:.3f} at the same MLP density "
               f"{DENSITY} (dense {ppl['dense']:.3f}): "
               f"{100 * (ppl['predictor'] / ppl['dense'] - 1):+.1f}% vs "
               f"{100 * (ppl['dip'] / ppl['dense'] - 1):+.1f}% over dense. The throughput "
               f"comparison is at equal density, not at equal perplexity.")
    out.append(_window_vs_lru(rows))
    return "\n".join(out)


def _window_vs_lru(rows: list[dict]) -> str:
    """Does the window ever hit more than LRU on the same masks and DRAM? From the rows."""
    pairs = [(r, o) for r in rows for o in rows if r["share"] == o["share"]
             and r["trace"] == o["trace"] and "window" in r["label"] and "LRU" in o["label"]]
    wins = [(r, o) for r, o in pairs if r["result"].hit_rate > o["result"].hit_rate]
    if wins:
        r, o = wins[0]
        return (f"- The window hits more than LRU in {len(wins)} of {len(pairs)} pairs (e.g. "
                f"{r['label']} at {r['capacity_GB'] * 1e3:.1f} MB: {r['result'].hit_rate:.3f} "
                f"vs {o['result'].hit_rate:.3f}).")
    return (f"- In all {len(pairs)} pairs (same masks, same DRAM) the window hits at most as "
            f"often as LRU: when the union of the last k masks exceeds the capacity, the "
            f"capped window keeps the most recently used columns, as LRU does; when it fits, "
            f"LRU keeps those and more. What the window saves is the DRAM it does not hold.")


def section(data: str | Path = ROOT / "runs" / "peers", make: bool = True) -> str:
    """The markdown section for docs/results.md (runs what it needs, reports its time)."""
    data = Path(data)
    start = time.perf_counter()
    if make:
        make_traces(data)
    rows, ppl = run(data)
    seconds = time.perf_counter() - start
    return "\n".join([
        "## DIP vs a trained predictor vs LLM in a flash's windowing (SmolLM2, equal DRAM)",
        "",
        f"Generated by `python benchmarks/peer_comparison.py`: real SmolLM2-135M masks of "
        f"held-out plays ({WINDOWS} windows of {WINDOW_LEN} tokens, `--split test`), MLP "
        f"density {DENSITY} for both DIP and the trained predictor (rank 64, docs/predictor.md),"
        f" on the flagship preset. Each DRAM point gives every method the same capacity; the "
        f"predictor's weights are resident inside it. The window (k = {WINDOW_TOKENS}) is "
        f"capped at the capacity when it does not fit.",
        "", table(rows, ppl), "", findings(rows, ppl), "",
        f"_Simulated in {seconds:.0f} s (traces reused from {_shown(data)})._", ""])


def _shown(path: Path) -> str:
    """`path` relative to the repository when inside it (no machine paths in docs)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "runs" / "peers"),
                        help="folder of the traces (made here when missing)")
    parser.add_argument("--out", default=None, help="write the section to this file")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if data.exists() and not data.is_dir():
        parser.error(f"--data: {data} is a file; give the folder of the traces")
    try:
        text = section(data)
    except subprocess.CalledProcessError as exc:  # memsim said why, on stderr, above
        print(f"peer_comparison: making the traces failed ({' '.join(exc.cmd[2:4])})",
              file=sys.stderr)
        return 2
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
