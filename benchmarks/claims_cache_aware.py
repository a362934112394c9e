"""docs/results.md: cache-aware masking against DIP at equal DRAM on SmolLM2-135M: hit rate,
tokens/s and the perplexity it costs (the claims.py section interface)."""
from __future__ import annotations

from claims_smollm2 import (  # noqa: I001 (same folder)
    CAPACITIES_GB,
    DENSITIES,
    PRESET,
    example_smollm2,
    rows_where,
    smollm2,
)
from claims_sources import hardware_text

from memsim.hw.config import load_hw

TITLE = "Cache-aware masking: hit rate and tokens/s at equal DRAM"


def run(ctx) -> dict:
    return {**smollm2(ctx), **hardware_facts()}


def hardware_facts() -> dict:
    hw = load_hw(PRESET)
    return {"hardware": hardware_text(hw), "mlp_bits": hw.precision.mlp_bits,
            "cache": f"{hw.cache.impl.upper()}, {hw.cache.split} split per masked matrix"}


def pairs(rows: list[dict]) -> list[tuple[float, float, dict, dict]]:
    """(DRAM GB, density, DIP row, DIP-CA row) wherever both ran."""
    out = []
    for cap in CAPACITIES_GB:
        for d in DENSITIES:
            dip = rows_where(rows, method="dip", density=d, capacity_GB=cap)
            ca = rows_where(rows, method="dip_ca", density=d, capacity_GB=cap)
            if dip and ca:
                out.append((cap, d, dip[0], ca[0]))
    return out


def table(rows: list[dict]) -> list[str]:
    lines = ["| DRAM (MB) | density | DIP ppl | DIP-CA ppl | DIP hit rate | DIP-CA hit rate | "
             "DIP tok/s | DIP-CA tok/s |", "|---|---|---|---|---|---|---|---|"]
    for cap, d, a, b in pairs(rows):
        lines.append(f"| {cap * 1e3:.0f} | {d} | {a['perplexity']:.2f} | "
                     f"{b['perplexity']:.2f} | {a['hit_rate']:.3f} | {b['hit_rate']:.3f} | "
                     f"{a['tokens_per_s']:.1f} | {b['tokens_per_s']:.1f} |")
    return lines


def verdict(rows: list[dict]) -> list[str]:
    found = pairs(rows)
    n = len(found)
    hits = sum(b["hit_rate"] > a["hit_rate"] for _, _, a, b in found)
    rates = sum(b["tokens_per_s"] > a["tokens_per_s"] for _, _, a, b in found)
    both = sum(b["hit_rate"] > a["hit_rate"] and b["tokens_per_s"] > a["tokens_per_s"]
               for _, _, a, b in found)
    word = ("holds" if n and both == n else f"holds in {both} of {n} rows" if both
            else "does not hold")
    cost = "; ".join(f"density {d}: {b['perplexity'] - a['perplexity']:+.2f} "
                     f"({b['perplexity'] / a['perplexity'] - 1:+.0%})"
                     for cap, d, a, b in found if cap == CAPACITIES_GB[-1])
    return [f"**Cache-aware masking raises the hit rate and tokens/s at equal DRAM: {word}.** "
            f"DIP-CA's hit rate is above DIP's in {hits} of {n} rows and its tokens/s in "
            f"{rates} of {n}. Its perplexity over DIP's at {CAPACITIES_GB[-1] * 1e3:.0f} MB: "
            f"{cost}."]


def render(data: dict, ctx) -> list[str]:
    shares = data["cache_share"]
    return [
        f"The {PRESET} preset ({data['hardware']}), with the DRAM shrunk to "
        f"{data['config']['model_shape']['name']}'s "
        "scale: " + " and ".join(f"{c * 1e3:.0f} MB" for c in CAPACITIES_GB) + " leave "
        + " and ".join(f"{shares[c]:.0%}" for c in CAPACITIES_GB)
        + f" of the {data['mlp_bits']:g}-bit MLP as cache ({data['cache']}), with one "
        "window's KV cache.",
        "",
        *table(data["rows"]),
        "",
        *verdict(data["rows"]),
    ]


def example_data(ctx) -> dict:
    return {**example_smollm2(), "hardware": "a phone: DRAM x GB/s", "mlp_bits": 3,
            "cache": "a cache"}
