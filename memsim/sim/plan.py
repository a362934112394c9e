"""How the DRAM is shared: resident weights, KV cache, and the MLP column cache budget.

PAPER.md section 4: budget = capacity - static, static = resident attention + embedding/LM
head + KV cache; the remainder is split across masked matrices (`equal` bytes per matrix,
as the authors do, or `proportional` to each group's mean demand in the trace). If the
static part does not fit, its overflow is read from flash every token (a fraction
`overflow_fraction` of every resident-weight read). Ignores: OS page cache, allocator
fragmentation, activation buffers (a few MB).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.core.errors import ConfigError
from memsim.hw.config import HardwareConfig
from memsim.sim.footprint import Footprint
from memsim.traces.model_shape import ModelShape
from memsim.traces.trace import MaskGroup


@dataclass(frozen=True)
class DramPlan:
    """Byte budget of the DRAM for one (hardware, model, trace) simulation."""

    resident_weight_bytes: float  # weights placed resident (before overflow)
    kv_bytes: float  # KV cache at the length the budget is planned for
    overflow_fraction: float  # share of resident-weight reads served from flash instead
    cache_budget_bytes: float  # for MLP columns (0 unless placement.mlp is dynamic)
    capacities: list[np.ndarray]  # per mask group: (L,) columns the cache may hold
    vector_bytes: list[float]  # per mask group: bytes of one cached unit


def resident_weight_bytes(hw: HardwareConfig, model: ModelShape, fp: Footprint) -> float:
    """Weights kept in DRAM by placement (tied embedding/LM head stored once), adapters."""
    place = hw.placement
    total = model.num_hidden_layers * fp.resident_extra_bytes_per_layer  # adapters, predictor
    if place.attention == "resident":
        total += model.num_hidden_layers * fp.attention_bytes_per_layer
    if place.mlp == "resident":
        total += model.num_hidden_layers * fp.mlp_bytes_per_layer
    if place.embedding == "resident":
        total += fp.embedding_table_bytes
    if place.lm_head == "resident" and not (model.tie_word_embeddings
                                            and place.embedding == "resident"):
        total += fp.lm_head_bytes
    return total


def plan_dram(hw: HardwareConfig, model: ModelShape, groups: list[MaskGroup],
              kv_tokens: float, adapter_params: int = 0, predictor_params: int = 0) -> DramPlan:
    """Split the DRAM; `kv_tokens` is the KV length the budget must hold; `adapter_params`
    LoRA and `predictor_params` mask-predictor parameters are resident too."""
    fp = Footprint.of(model, hw, adapter_params, predictor_params)
    kv_bytes = kv_tokens * fp.kv_bytes_per_token_per_layer * model.num_hidden_layers
    if kv_bytes > hw.dram.capacity_bytes:
        raise ConfigError(f"the KV cache alone ({kv_bytes / 1e9:.3f} GB) exceeds DRAM",
                          key_path="dram.capacity_GB", allowed=f"> {kv_bytes / 1e9:.3f}")
    weights = resident_weight_bytes(hw, model, fp)
    free = hw.dram.capacity_bytes - kv_bytes
    overflow = max(0.0, weights - free) / weights if weights > 0 else 0.0
    budget = max(0.0, free - weights) if hw.placement.mlp == "dynamic" else 0.0
    vector_bytes = [fp.vector_bytes(g.vector_weights, g.num_matrices) for g in groups]
    shares = _group_shares(hw.cache.split, groups, vector_bytes)
    L = model.num_hidden_layers
    capacities = [np.full(L, min(g.num_columns, int(budget / L * s // vb)), dtype=np.int64)
                  for g, s, vb in zip(groups, shares, vector_bytes)]
    return DramPlan(weights, kv_bytes, overflow, budget, capacities, vector_bytes)


def _group_shares(split: str, groups: list[MaskGroup], vector_bytes: list[float]) -> list[float]:
    """Fraction of the per-layer budget each group gets."""
    if split == "equal":  # equal bytes per masked matrix; up+gate sharing a mask get two
        weights = np.array([g.num_matrices for g in groups], dtype=np.float64)
    else:  # proportional to the bytes each group requests per token, on average
        weights = np.array([g.bits.counts().mean(dtype=np.float64) * vb
                            for g, vb in zip(groups, vector_bytes)], dtype=np.float64)
        if weights.sum() == 0:
            weights = np.ones(len(groups))
    return list(weights / weights.sum())


def kv_budget_tokens(hw: HardwareConfig, prompt_len: int, longest_sequence: int) -> float:
    """KV length the DRAM plan reserves: the longest sequence's end (`actual`), or its
    average length (`average`, the analytic model's pricing)."""
    if hw.timing.kv_length == "average":
        return prompt_len + (longest_sequence + 1) / 2
    return float(prompt_len + longest_sequence)


def cache_capacities(hw: HardwareConfig, model: ModelShape, groups: list[MaskGroup],
                     kv_tokens: float = 0.0, adapter_params: int = 0,
                     predictor_params: int = 0) -> list[np.ndarray]:
    """(L,) column capacities per group: the torch-free entry point for workloads (DIP-CA)."""
    return plan_dram(hw, model, groups, kv_tokens, adapter_params, predictor_params).capacities
