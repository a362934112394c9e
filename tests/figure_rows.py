"""A small results table for the figure and summary tests: one phone, DRAM 1, 2 and 4 GB.

Dense (20.0) is the reference; DIP d=0.5 is within 0.1 of it, d=0.3 is not; DIP-CA only at
4 GB; GLU never; CATS has no perplexity (a simulation-only point). Dense and DIP d=0.5 also
run under Belady. Each (method, setting) maps to the legend label the figures must give it.
"""
from __future__ import annotations

import math

SOURCE = "synthetic (calibrated on smollm2-135m)"
CAPACITIES_GB = (1.0, 2.0, 4.0)
REFERENCES = {"ref_dense_streaming_tokens_per_s": 1.5, "ref_all_in_dram_tokens_per_s": 14.0}
LABELS = {  # legend label -> the rows it draws, when Belady is in the figure
    "Dense (LRU)": {"method": "dense", "cache_impl": "lru"},
    "Dense (Belady, upper bound)": {"method": "dense", "cache_impl": "belady"},
    "GLU pruning": {"method": "glu"},
    "CATS": {"method": "cats"},
    "DIP (d=0.3, LRU)": {"method": "dip", "density": 0.3, "cache_impl": "lru"},
    "DIP (d=0.5, LRU)": {"method": "dip", "density": 0.5, "cache_impl": "lru"},
    "DIP (d=0.5, Belady, upper bound)": {"method": "dip", "density": 0.5,
                                         "cache_impl": "belady"},
    "DIP-CA": {"method": "dip_ca"},
}


def row(method, density, capacity_GB, impl, perplexity, tokens_per_s, hit_rate, **extra):
    time_s = 1.0 / tokens_per_s
    return {
        "point_id": f"{method}-{density:g}-{impl}-{capacity_GB:g}", "hw_name": "test-phone",
        "model": "smollm2-135m", "method": method, "density": density,
        "capacity_GB": capacity_GB, "cache_impl": impl, "gamma": extra.pop("gamma", None),
        "adapter": "", "perplexity": perplexity, "trace_source": SOURCE, "mode": "event",
        "tokens_per_s": tokens_per_s, "time_per_token_s": time_s, "ttft_s": 0.5,
        "hit_rate": hit_rate, "flash_bytes_per_token": 1e8 * (1 - hit_rate),
        "dram_read_bytes_per_token": 2e8, "dram_write_bytes_per_token": 1e7,
        "dram_used_bytes": 0.9e9 * capacity_GB, "energy_per_token_J": None,
        "breakdown_flash_s": 0.6 * time_s, "breakdown_dram_s": 0.1 * time_s,
        "breakdown_compute_s": 0.2 * time_s, "breakdown_stall_s": 0.1 * time_s,
        "hw.dram.capacity_GB": capacity_GB, "config_path": "points/x/config.yaml",
        "trace_path": "traces/x.npz", "result_path": "points/x/result.json",
        **REFERENCES, **extra}


def curve(method, density, impl, perplexities, speeds, hits):
    return [row(method, density, c, impl, p, s, h)
            for c, p, s, h in zip(CAPACITIES_GB, perplexities, speeds, hits)]


def sweep_rows() -> list[dict]:
    return [
        *curve("dense", 1.0, "lru", [20.0] * 3, [2.0, 3.0, 6.0], [0.3, 0.5, 0.9]),
        *curve("dense", 1.0, "belady", [20.0] * 3, [2.5, 3.5, 6.5], [0.4, 0.6, 0.95]),
        *curve("dip", 0.5, "lru", [20.08] * 3, [4.0, 6.0, 9.0], [0.5, 0.7, 0.9]),
        *curve("dip", 0.5, "belady", [20.08] * 3, [5.0, 7.0, 10.0], [0.6, 0.8, 0.96]),
        *curve("dip", 0.3, "lru", [21.5] * 3, [6.0, 8.0, 11.0], [0.7, 0.9, 0.98]),
        *curve("dip_ca", 0.5, "lru", [20.5, 20.3, 20.09], [7.0, 9.0, 12.0], [0.8, 0.9, 0.99]),
        *curve("glu", 0.5, "lru", [23.0] * 3, [3.0, 4.0, 7.0], [0.4, 0.6, 0.9]),
        row("cats", 0.5, 2.0, "lru", math.nan, 5.0, 0.65),
    ]


def realizable_rows() -> list[dict]:
    """The sweep without Belady (what most sweeps run)."""
    return [r for r in sweep_rows() if r["cache_impl"] != "belady"]


def synthetic_rows() -> list[dict]:
    """What a synthetic sweep gives: no perplexity anywhere."""
    return [{**r, "perplexity": None, "trace_source": "synthetic"} for r in realizable_rows()
            if r["method"] in ("dense", "dip")]
