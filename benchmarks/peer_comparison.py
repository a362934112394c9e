"""DIP vs a trained predictor vs LLM in a flash's windowing, on real SmolLM2 masks (issue 19):
the simulations and their table; docs/results.md shows them (benchmarks/claims_peers.py, the
section that finds the traces, runs this and renders it).

On the flagship preset at equal DRAM, from real masks of held-out plays:
  * DIP at MLP density 0.5 (memsim's default LRU cache, as the paper runs it);
  * a trained predictor (Deja Vu style, docs/predictor.md) at density 0.5, with an LRU cache
    and with LLM in a flash's sliding window (`cache.impl: window`, k = 5 tokens);
  * DIP with the same window, to separate the policy from the masks;
  * dense, for the perplexity baseline.
Each DRAM point gives every method the same capacity: the static part (resident weights,
KV cache at the longest sequence) plus a share of the MLP's bytes, and one more point, the
capacity the predictor's window needs never to be capped (its peak per layer, measured on
the trace); the predictor's own weights are resident and come out of the same capacity (its
cost). The window keeps what the last k tokens used up to that capacity (capped,
`cache.window_fit: cap`); the table says how much of the DRAM it held.
Ignores: everything a single-trace simulation ignores (memsim/sim/simulator.py); the methods
are compared at equal density, not at equal perplexity.
"""
from __future__ import annotations

import dataclasses

from memsim.cache.window import window_peak_columns
from memsim.hw.config import HardwareConfig, load_hw
from memsim.sim.footprint import Footprint
from memsim.sim.plan import resident_weight_bytes
from memsim.sim.simulator import simulate
from memsim.traces.trace import Trace

PRESET = "flagship"
DENSITY, WINDOW_TOKENS, RANK = 0.5, 5, 64  # both methods' MLP density; LLM in a flash's k
MLP_SHARES = (0.25, 0.5, 0.75)  # DRAM beyond the static part, as a share of the MLP bytes
WINDOW_POINT = "window"  # one more point: the DRAM the predictor's window needs uncapped
WINDOW_LABEL = f"window k={WINDOW_TOKENS}"
# (label, trace, cache policy)
SETUPS = (("DIP, LRU", "dip", "lru"), (f"DIP, {WINDOW_LABEL}", "dip", "window"),
          ("predictor, LRU", "predictor", "lru"),
          (f"predictor, {WINDOW_LABEL} (LLM in a flash)", "predictor", "window"))
DIP_LRU, PREDICTOR_LRU, PREDICTOR_WINDOW = SETUPS[0][0], SETUPS[2][0], SETUPS[3][0]


def _kv_bytes(trace: Trace, fp: Footprint) -> float:
    """KV cache at the longest sequence, all layers."""
    return (trace.prompt_len + max(trace.sequence_lengths)) * \
        fp.kv_bytes_per_token_per_layer * trace.model.num_hidden_layers


def capacity_GB(hw: HardwareConfig, trace: Trace, share: float) -> float:
    """Static DRAM (resident weights of the DIP run, KV at the longest sequence) plus `share`
    of the MLP's bytes."""
    model = trace.model
    fp = Footprint.of(model, hw)
    mlp = model.num_hidden_layers * fp.mlp_bytes_per_layer
    return (resident_weight_bytes(hw, model, fp) + _kv_bytes(trace, fp) + share * mlp) / 1e9


def window_capacity_GB(hw: HardwareConfig, trace: Trace) -> float:
    """The DRAM with which `trace`'s window (k tokens) is never capped in any layer: its
    resident weights (the predictor's included), KV cache, and the largest layer's window
    peak in every layer (the budget is split equally over layers)."""
    model = trace.model
    fp = Footprint.of(model, hw, trace.adapter_params, trace.predictor_params)
    (group,) = trace.groups()  # a neuron trace: one group
    peak = int(window_peak_columns(group.bits.words, trace.sequence_lengths,
                                   WINDOW_TOKENS).max())
    window = model.num_hidden_layers * peak * fp.vector_bytes(group.vector_weights,
                                                              group.num_matrices)
    return (resident_weight_bytes(hw, model, fp) + _kv_bytes(trace, fp) + window) / 1e9 \
        + 1e-9  # + 1 byte


def _configured(base: HardwareConfig, capacity: float, policy: str) -> HardwareConfig:
    return dataclasses.replace(
        base, dram=dataclasses.replace(base.dram, capacity_GB=capacity),
        cache=dataclasses.replace(base.cache, impl=policy, window_tokens=WINDOW_TOKENS,
                                  window_fit="cap"))


def compare(traces: dict[str, Trace]) -> list[dict]:
    """One row per (DRAM point, setup) from the "dip" and "predictor" traces: plain numbers
    (what the table and the findings read)."""
    base = load_hw(PRESET)
    points = [(share, capacity_GB(base, traces["dip"], share)) for share in MLP_SHARES]
    points.append((WINDOW_POINT, window_capacity_GB(base, traces["predictor"])))
    rows = []
    for share, capacity in points:
        for label, name, policy in SETUPS:
            r = simulate(_configured(base, capacity, policy), None, traces[name])
            window = r.plan_notes.get("window", "")
            rows.append({"share": share, "capacity_GB": capacity, "label": label,
                         "trace": name, "tokens_per_s": r.tokens_per_s,
                         "flash_bytes_per_token": r.flash_bytes_per_token,
                         "hit_rate": r.hit_rate,
                         "cache_bytes": r.dram_used_breakdown_bytes["cache"],
                         "window": "capped" if "capped" in window else
                         ("fits" if window else "-")})
    return rows


def _rate(tokens_per_s: float) -> str:
    """tokens/s as the table shows it (rates that show equal are a tie)."""
    return f"{tokens_per_s:.1f}"


def _mb(x: float) -> str:
    return f"{x / 1e6:.2f}"


def table(rows: list[dict], ppl: dict[str, float]) -> list[str]:
    lines = ["| DRAM (MB) | method | perplexity | tokens/s | flash MB/token | hit rate | "
             "cache held (MB) | window |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['capacity_GB'] * 1e3:.1f} | {row['label']} | "
                     f"{ppl[row['trace']]:.3f} | {row['tokens_per_s']:.1f} | "
                     f"{_mb(row['flash_bytes_per_token'])} | {row['hit_rate']:.3f} | "
                     f"{_mb(row['cache_bytes'])} | {row['window']} |")
    return lines


def findings(rows: list[dict], ppl: dict[str, float]) -> list[str]:
    """The verdicts, each computed from the rows."""
    out = []
    for share in [*MLP_SHARES, WINDOW_POINT]:
        at = [r for r in rows if r["share"] == share]
        top = max(r["tokens_per_s"] for r in at)
        fastest = [f'"{r["label"]}"' for r in at if _rate(r["tokens_per_s"]) == _rate(top)]
        by = {r["label"]: r for r in at}
        dip, win, lru = by[DIP_LRU], by[PREDICTOR_WINDOW], by[PREDICTOR_LRU]
        what = (f"static part + {share:.0%} of the MLP" if share != WINDOW_POINT
                else "what the predictor's window needs uncapped")
        out.append(f"- DRAM {at[0]['capacity_GB'] * 1e3:.1f} MB ({what}): fastest "
                   f"{'is' if len(fastest) == 1 else 'are'} {' and '.join(fastest)} at "
                   f"{_rate(top)} tokens/s; DIP with LRU "
                   f"runs {dip['tokens_per_s'] / win['tokens_per_s']:.2f}x the predictor with "
                   f"LLM in a flash's window ({_rate(dip['tokens_per_s'])} vs "
                   f"{_rate(win['tokens_per_s'])}); the window's hit rate is "
                   f"{win['hit_rate']:.3f} against LRU's {lru['hit_rate']:.3f} on the same "
                   f"predictor masks.")
    better = "lower" if ppl["dip"] < ppl["predictor"] else "not lower"
    out.append(f"- Accuracy (held-out windows): DIP's perplexity {ppl['dip']:.3f} is {better} "
               f"than the predictor's {ppl['predictor']:.3f} at the same MLP density "
               f"{DENSITY:g} (dense {ppl['dense']:.3f}): over dense, DIP "
               f"{100 * (ppl['dip'] / ppl['dense'] - 1):+.1f}%, the predictor "
               f"{100 * (ppl['predictor'] / ppl['dense'] - 1):+.1f}%. The throughput "
               f"comparison is at equal density, not at equal perplexity.")
    out.append(_window_vs_lru(rows))
    return out


def _window_vs_lru(rows: list[dict]) -> str:
    """Does the window ever hit more than LRU on the same masks and DRAM? From the rows."""
    policy = {label: p for label, _, p in SETUPS}
    pairs = [(r, o) for r in rows for o in rows if r["share"] == o["share"]
             and r["trace"] == o["trace"] and policy[r["label"]] == "window"
             and policy[o["label"]] == "lru"]
    wins = [(r, o) for r, o in pairs if r["hit_rate"] > o["hit_rate"]]
    if wins:
        r, o = wins[0]
        return (f"- The window hits more than LRU in {len(wins)} of {len(pairs)} pairs (e.g. "
                f"{r['label']} at {r['capacity_GB'] * 1e3:.1f} MB: {r['hit_rate']:.3f} "
                f"vs {o['hit_rate']:.3f}).")
    return (f"- In all {len(pairs)} pairs (same masks, same DRAM) the window hits at most as "
            f"often as LRU: when the union of the last k masks exceeds the capacity, the "
            f"capped window keeps the most recently used columns, as LRU does; when it fits, "
            f"LRU keeps those and more. What the window saves is the DRAM it does not hold.")


def example_rows() -> list[dict]:
    """Fake rows, every point and setup (tests/test_generated_docs.py)."""
    rows = []
    for p, share in enumerate([*MLP_SHARES, WINDOW_POINT]):
        for s, (label, name, policy) in enumerate(SETUPS):
            rows.append({"share": share, "capacity_GB": 0.0371 + 0.0113 * p, "label": label,
                         "trace": name, "tokens_per_s": 51.3 + 7.1 * p + 3.7 * min(s, 2 + p),
                         "flash_bytes_per_token": 1.71e7 - 3.1e6 * p,
                         "hit_rate": 0.217 + 0.19 * p + 0.013 * s,
                         "cache_bytes": 9.1e6 * (p + 1),
                         "window": ("capped" if p < 3 else "fits") if policy == "window"
                         else "-"})
    return rows
