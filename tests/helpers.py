"""Tiny fixtures shared by the memsim tests: a 2-layer model and hardware dicts."""
from __future__ import annotations

import copy

import numpy as np

from memsim.hw.config import hw_from_dict
from memsim.traces.model_shape import ModelShape
from memsim.traces.trace import Trace

TINY = ModelShape(name="tiny", num_hidden_layers=2, hidden_size=64, intermediate_size=160,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=100)

BASE_HW = {
    "name": "test-phone",
    "flash": {"impl": "simple", "read_bandwidth_GBps": 1.0, "latency_us": 0.0},
    "dram": {"capacity_GB": 1.0, "read_bandwidth_GBps": 60.0, "write_bandwidth_GBps": 30.0},
    "compute": {"units": {"npu": {"peak_TOPS": 10.0, "efficiency": 0.5}},
                "decode_unit": "npu", "prefill_unit": "npu"},
    "precision": {"mlp_bits": 4, "attention_bits": 4, "embedding_bits": 4, "lm_head_bits": 4,
                  "kv_cache_bits": 16},
}

REFERENCE = {"compute": {**BASE_HW["compute"], "ignore": True},
             "cache": {"impl": "lru", "split": "equal"},
             "timing": {"flash_dram_concurrent": True, "prefetch_next_layer": False,
                        "dram_writes": "free", "kv_length": "average"}}

UFS = {"impl": "ufs", "read_bandwidth_GBps": 4.0, "latency_us": 100.0, "page_size_KiB": 4,
       "queue_depth": 32, "max_read_iops_K": 110}


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "impl" not in value:
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def make_hw(*overrides: dict):
    data = BASE_HW
    for o in overrides:
        data = merge(data, o)
    return hw_from_dict(data, source="test.yaml")


def capacity_for(fraction_of_mlp: float, model: ModelShape = TINY, extra_GB: float = 0.0,
                 kv_tokens: int = 16):
    """A DRAM size whose cache budget holds about `fraction_of_mlp` of the 4-bit MLP: the
    resident non-MLP weights and a KV cache of `kv_tokens` (the fixtures' traces are shorter)
    at BASE_HW's precision, plus that share of the MLP. 0 leaves at most the unused KV room."""
    from memsim.sim.footprint import Footprint
    from memsim.sim.plan import resident_weight_bytes

    hw = make_hw()
    fp = Footprint.of(model, hw)
    static_bytes = (resident_weight_bytes(hw, model, fp)
                    + kv_tokens * fp.kv_bytes_per_token_per_layer * model.num_hidden_layers)
    mlp_bytes = model.num_hidden_layers * fp.mlp_bytes_per_layer
    return {"dram": {"capacity_GB": extra_GB + (static_bytes + fraction_of_mlp * mlp_bytes)
                     / 1e9}}


def random_trace(T: int = 12, density: float = 0.5, seed: int = 0, model: ModelShape = TINY,
                 reuse: float = 0.7, **kwargs) -> Trace:
    """Masks with reuse: each token keeps each previous column with prob `reuse`."""
    rng = np.random.default_rng(seed)
    L, H, I = model.num_hidden_layers, model.hidden_size, model.intermediate_size
    return Trace(up=reuse_masks(rng, T, L, H, density, reuse),
                 down=reuse_masks(rng, T, L, I, density, reuse), model=model, method="dip",
                 **kwargs)


def reuse_masks(rng, T: int, L: int, N: int, density: float, reuse: float) -> np.ndarray:
    """(T, L, N) masks: each token keeps each previous column with prob `reuse`, draws the
    rest anew at `density`."""
    out = np.zeros((T, L, N), bool)
    out[0] = rng.random((L, N)) < density
    for t in range(1, T):
        keep = rng.random((L, N)) < reuse
        out[t] = np.where(keep, out[t - 1], rng.random((L, N)) < density)
    return out
