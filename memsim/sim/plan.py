"""How the DRAM is shared: resident weights, KV cache, and the MLP column cache budget.

PAPER.md section 4: budget = capacity - static, static = resident attention + embedding/LM
head + KV cache; the remainder is split across masked matrices (`equal` bytes per matrix,
as the authors do, or `proportional` to each group's mean demand in the trace). If the
static part does not fit, its overflow is read from flash every token (a fraction
`overflow_fraction` of every resident-weight read). A resident share of the MLP (hybrid
placement, memsim/sim/hybrid.py) is planned with the resident weights, but must fit: it is
never overflowed. A sliding window (`cache.impl: window`) holds what the last k tokens used:
its peak is measured on the trace and checked against each layer's budget (`cache.window_fit`:
cap or refuse). Ignores: OS page cache, allocator fragmentation, activation buffers (a few MB).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from memsim.cache.window import window_peak_columns
from memsim.core.errors import ConfigError
from memsim.hw.config import HardwareConfig
from memsim.sim import hybrid
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
    # hybrid placement: per group (L, W) packed resident columns (None: no resident share)
    resident_columns: tuple[np.ndarray, ...] | None = None
    mlp_resident_bytes: float = 0.0  # their bytes (part of resident_weight_bytes)
    window_peak_columns: tuple[np.ndarray, ...] = ()  # per group (L,): an uncapped window's peak
    window_capped: bool = False  # the window's peak exceeds the budget in some layer

    def notes(self) -> dict[str, str]:
        """What the plan decided beyond byte counts, for the result (empty when nothing)."""
        out = {}
        if self.resident_columns is not None:
            out["mlp_resident"] = f"{self.mlp_resident_bytes:.0f} bytes of MLP columns resident"
        if self.window_peak_columns:
            peak = sum(float((p * vb).sum()) for p, vb in zip(self.window_peak_columns,
                                                                self.vector_bytes))
            state = "capped by the cache budget" if self.window_capped else "fits"
            out["window"] = f"peak {peak:.0f} bytes over all layers; {state}"
        return out


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
              kv_tokens: float, adapter_params: int = 0, predictor_params: int = 0,
              sequence_lengths: tuple[int, ...] | None = None) -> DramPlan:
    """Split the DRAM; `kv_tokens` is the KV length the budget must hold; `adapter_params`
    LoRA and `predictor_params` mask-predictor parameters are resident too. The capacity is
    whole bytes (`dram.capacity_bytes`) and column capacities are floored exactly.
    `sequence_lengths` (the trace's) lets a sliding window's peak be measured and checked."""
    fp = Footprint.of(model, hw, adapter_params, predictor_params)
    kv_bytes = kv_tokens * fp.kv_bytes_per_token_per_layer * model.num_hidden_layers
    if kv_bytes > hw.dram.capacity_bytes:
        raise ConfigError(f"the KV cache alone ({kv_bytes / 1e9:.6g} GB) exceeds DRAM "
                          f"({hw.dram.capacity_GB:.6g} GB)", key_path="dram.capacity_GB",
                          allowed=f"> {kv_bytes / 1e9:.6g}")
    vector_bytes = [fp.vector_bytes(g.vector_weights, g.num_matrices) for g in groups]
    weights = resident_weight_bytes(hw, model, fp)
    free = hw.dram.capacity_bytes - kv_bytes
    resident = hybrid.resident_columns(hw, model, groups)
    mlp_resident = hybrid.resident_bytes(resident, vector_bytes)
    if resident is not None:
        hybrid.check_fits(mlp_resident, free - weights, model.num_hidden_layers
                          * fp.mlp_bytes_per_layer, hw.placement.mlp_resident_share)
        weights += mlp_resident
    overflow = max(0.0, weights - free) / weights if weights > 0 else 0.0
    budget = max(0.0, free - weights) if hw.placement.mlp == "dynamic" else 0.0
    shares = _group_shares(hw.cache.split, groups, vector_bytes)
    L = model.num_hidden_layers
    capacities = [np.full(L, _columns_in(hw.dram.capacity_bytes, kv_bytes, weights, budget, s,
                                         L, vb, g.num_columns), dtype=np.int64)
                  for g, s, vb in zip(groups, shares, vector_bytes)]
    plan = DramPlan(weights, kv_bytes, overflow, budget, capacities, vector_bytes, resident,
                    mlp_resident)
    return _fit_window(hw, plan, groups, sequence_lengths)


def _fit_window(hw: HardwareConfig, plan: DramPlan, groups: list[MaskGroup],
                lengths: tuple[int, ...] | None) -> DramPlan:
    """A sliding window's peak per layer (on what is not resident), checked against the
    budget: refused (`window_fit: refuse`) or marked capped."""
    if hw.cache.impl != "window" or hw.placement.mlp != "dynamic" or not lengths:
        return plan
    dynamic = hybrid.without_resident(groups, plan.resident_columns)
    peaks = tuple(window_peak_columns(g.bits.words, tuple(lengths), hw.cache.window_tokens)
                  for g in dynamic)
    capped = any(bool((p > c).any()) for p, c in zip(peaks, plan.capacities))
    if capped and hw.cache.window_fit == "refuse":
        g, layer = next((g, int(np.argmax(p > c))) for g, (p, c) in
                        enumerate(zip(peaks, plan.capacities)) if (p > c).any())
        vb = plan.vector_bytes[g]
        need = sum(float((p * b).sum()) for p, b in zip(peaks, plan.vector_bytes))
        raise ConfigError(f"a {hw.cache.window_tokens}-token window of `{groups[g].name}` "
                          f"holds up to {int(peaks[g][layer])} columns in layer {layer} "
                          f"({peaks[g][layer] * vb / 1e6:.6g} MB); the cache budget there is "
                          f"{int(plan.capacities[g][layer])} columns; the whole window peaks "
                          f"at {need / 1e9:.6g} GB of MLP columns",
                          key_path="dram.capacity_GB",
                          allowed="more DRAM, a shorter cache.window_tokens, or "
                          "cache.window_fit: cap")
    return dataclasses.replace(plan, window_peak_columns=peaks, window_capped=capped)


def _columns_in(capacity_bytes: int, kv_bytes: float, weights: float, budget: float,
                share: Fraction, num_layers: int, vector_bytes: float, num_columns: int) -> int:
    """floor(budget x share / L / vector_bytes), clipped to the matrix, in exact arithmetic:
    a budget of exactly k columns gives k (float division can give k - 1)."""
    if budget <= 0:
        return 0
    exact = (capacity_bytes - Fraction(kv_bytes) - Fraction(weights)) * share
    return min(num_columns, math.floor(exact / (num_layers * Fraction(vector_bytes))))


def _group_shares(split: str, groups: list[MaskGroup],
                  vector_bytes: list[float]) -> list[Fraction]:
    """Fraction of the per-layer budget each group gets (exact: 2/3 and 1/3, not floats)."""
    if split == "equal":  # equal bytes per masked matrix; up+gate sharing a mask get two
        weights = [Fraction(g.num_matrices) for g in groups]
    else:  # proportional to the bytes each group requests per token, on average
        weights = [Fraction(float(g.bits.counts().mean(dtype=np.float64) * vb))
                   for g, vb in zip(groups, vector_bytes)]
        if sum(weights) == 0:
            weights = [Fraction(1)] * len(groups)
    total = sum(weights)
    return [w / total for w in weights]


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
