"""docs/results.md: accuracy on a real model (SmolLM2-135M), and whether DIP beats the other
predictor-free methods there (the claims.py section interface)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from claims_smollm2 import (  # noqa: I001 (same folder)
    CAPACITIES_GB,
    DENSITIES,
    GAMMA,
    MODEL,
    example_smollm2,
    rows_where,
    smollm2,
)
from claims_sources import HEADLINE, HEADLINE_SOURCE, PAPER_MODELS, billions

from memsim.sweeps.spec import DENSE_READ_FLOOR
from memsim.traces.model_shape import load_model_shape

TITLE = "Accuracy on a real model: SmolLM2-135M"
OTHERS = ("glu", "cats")  # the other predictor-free methods


def run(ctx) -> dict:
    return {**smollm2(ctx), **model_facts()}


def model_facts() -> dict:
    return {"params": load_model_shape(MODEL).num_params,
            "paper_params": [load_model_shape(m).num_params for m in PAPER_MODELS]}


def perplexity_table(rows: list[dict]) -> list[str]:
    dense = rows_where(rows, method="dense")[0]
    lines = ["| method | " + " | ".join(f"density {d}" for d in DENSITIES) + " |",
             "|---|" + "---|" * len(DENSITIES),
             f"| dense | {dense['perplexity']:.2f} (density {dense['density']:g}) |"
             + " |" * (len(DENSITIES) - 1)]
    for method in ("glu", "cats", "dip", "dip_ca"):
        cells = []
        for d in DENSITIES:
            found = rows_where(rows, method=method, density=d, capacity_GB=CAPACITIES_GB[-1])
            cells.append(f"{found[0]['perplexity']:.2f}" if found else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def claim_verdict(rows: list[dict]) -> tuple[str, list[str]]:
    """("holds here" or not, one clause per density another method reaches)."""
    clauses, beaten, compared = [], 0, 0
    for d in DENSITIES:
        dip = rows_where(rows, method="dip", density=d, capacity_GB=CAPACITIES_GB[-1])
        others = {m: rows_where(rows, method=m, density=d, capacity_GB=CAPACITIES_GB[-1])
                  for m in OTHERS}
        others = {m: r[0]["perplexity"] for m, r in others.items() if r}
        if not dip or not others:
            continue
        ppl = dip[0]["perplexity"]
        compared += len(others)
        beaten += sum(ppl < v for v in others.values())
        clauses.append(f"density {d}: DIP {ppl:.2f} against "
                       + ", ".join(f"{m.upper()} {v:.2f}" for m, v in others.items()))
    if not compared:
        return "not tested (no density both reach)", clauses
    if beaten == compared:
        return "holds here", clauses
    return (f"holds in {beaten} of {compared} comparisons only" if beaten
            else "does not hold here"), clauses


def floor_text(method: str) -> str:
    floor, reachable, what = DENSE_READ_FLOOR[method]
    return (f"{method.upper()} reads {what} in full: "
            f"{'>=' if reachable else '>'} {Fraction(floor).limit_denominator(12)}")


def render(data: dict, ctx) -> list[str]:
    rows, config = data["rows"], data["config"]
    shape = config["model_shape"]
    verdict, clauses = claim_verdict(rows)
    dense = rows_where(rows, method="dense")[0]["perplexity"]
    mid = DENSITIES[len(DENSITIES) // 2]
    dip_mid = rows_where(rows, method="dip", density=mid, capacity_GB=CAPACITIES_GB[-1])
    loss = (f"DIP at density {mid} costs {dip_mid[0]['perplexity'] - dense:.2f} perplexity over "
            f"dense here, against under {HEADLINE['perplexity_loss']:g} in the paper's headline "
            f"({HEADLINE_SOURCE.cite()}). " if dip_mid else "")
    low, high = (billions(p) for p in (min(data["paper_params"]), max(data["paper_params"])))
    return [
        f"{Path(config['model_source'].get('path', shape['name'])).name.split('.')[0]} "
        f"({config['model_source'].get('note', 'weights as stored')}), {ctx.args.windows} "
        f"windows of {config['window_len']} tokens of {config['corpus_info'].get('source')} "
        f"(split `{config['split']}`: held-out plays), teacher-forced. Perplexity (DIP-CA: "
        f"gamma {GAMMA} at {CAPACITIES_GB[-1] * 1e3:.0f} MB of DRAM):",
        "",
        *perplexity_table(rows),
        "",
        f"**DIP against the other predictor-free methods: {verdict}.** Perplexity at each "
        f"density both reach: {'; '.join(clauses) or 'none'}. Densities are *MLP weights "
        "read*; \"-\" marks densities a method cannot reach ("
        + "; ".join(floor_text(m) for m in OTHERS)
        + "); the sweep filters those points with that reason.",
        "",
        f"{shape['name']} has {billions(data['params'])} parameters; memsim's shapes of the "
        f"paper's Phi-3 models have {low}-{high}. {loss}A table with more windows and a "
        "gamma sweep is in docs/perplexity.md.",
    ]


def example_data(ctx) -> dict:
    return {**example_smollm2(), "params": 71_300_000, "paper_params": [3.31e9, 13.7e9]}


def work(data: dict) -> str:
    return f"{data['made']} masked forward passes made, {data['reused']} reused"
