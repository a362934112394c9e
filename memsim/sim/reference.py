"""The authors' analytic simulator as a closed form (PAPER.md section 4).

Per token, for every layer and masked matrix,
    flash_bytes = |mask & ~cached| * column_bytes,   dram_bytes = |mask & cached| * column_bytes,
    time = max(flash_bytes / BW_flash, dram_bytes / BW_dram)   if reads are concurrent,
           flash_bytes / BW_flash + dram_bytes / BW_dram         otherwise,
plus the static part read every token (attention weights, KV cache, embedding row and LM head,
from DRAM, or from flash for what does not fit) combined the same way. No compute, no latency,
no read-size effect, free cache fills. The event engine must equal this exactly when configured
like hw_configs/paper_reference.yaml (tests/test_engine.py).
"""
from __future__ import annotations

import numpy as np

from memsim.cache import CacheOutcome
from memsim.hw.config import HardwareConfig
from memsim.sim.costs import kv_lengths
from memsim.sim.footprint import Footprint
from memsim.sim.plan import DramPlan
from memsim.traces.model_shape import ModelShape
from memsim.traces.trace import Trace


def analytic_token_times(hw: HardwareConfig, model: ModelShape, trace: Trace, plan: DramPlan,
                         outcome: CacheOutcome) -> np.ndarray:
    """(T,) seconds per decode token under the analytic model."""
    bw_flash, bw_dram = hw.flash.read_bandwidth_Bps, hw.dram.read_bandwidth_Bps
    combine = np.maximum if hw.timing.flash_dram_concurrent else np.add
    total = np.zeros(trace.num_tokens)
    for g, group in enumerate(trace.groups()):
        vb = plan.vector_bytes[g]
        needed = trace.column_counts(group.mask_name)  # (T, L)
        hits = _served_from_dram(hw, plan, needed, outcome.hits[:, g, :])
        # up and gate share a mask: two matrices, each with half the group's bytes
        per_matrix = combine((needed - hits) * vb / group.num_matrices / bw_flash,
                             hits * vb / group.num_matrices / bw_dram)
        total += group.num_matrices * per_matrix.sum(axis=1)
    static_flash, static_dram = _static_bytes(hw, model, trace, plan)
    L = model.num_hidden_layers
    attn = combine(static_flash["attn"] / bw_flash, static_dram["attn"] / bw_dram)  # (T,)
    head = combine(static_flash["head"] / bw_flash, static_dram["head"] / bw_dram)
    return total + L * attn + head


def _served_from_dram(hw, plan, needed, hits):
    if hw.placement.mlp == "resident":
        return needed * (1.0 - plan.overflow_fraction)
    return hits if hw.placement.mlp == "dynamic" else np.zeros_like(needed)


def _static_bytes(hw, model, trace, plan):
    """Per-layer attention bytes (with the KV cache) and per-token head bytes, split by source."""
    fp = Footprint.of(model, hw, trace.adapter_params, trace.predictor_params)
    place = hw.placement
    w = fp.attention_bytes_per_layer + fp.resident_extra_bytes_per_layer  # + adapters, predictor
    attn_flash = (fp.attention_bytes_per_layer if place.attention == "streamed"
                  else fp.attention_bytes_per_layer * plan.overflow_fraction)
    attn_flash += fp.resident_extra_bytes_per_layer * plan.overflow_fraction
    kv = kv_lengths(hw, trace) * fp.kv_bytes_per_token_per_layer
    emb_flash = fp.embedding_row_bytes if place.embedding == "streamed" else 0.0
    head_flash = fp.lm_head_bytes if place.lm_head == "streamed" else \
        fp.lm_head_bytes * plan.overflow_fraction
    flash = {"attn": np.full(trace.num_tokens, attn_flash),
             "head": np.full(trace.num_tokens, emb_flash + head_flash)}
    dram = {"attn": (w - attn_flash) + kv,
            "head": np.full(trace.num_tokens, fp.embedding_row_bytes + fp.lm_head_bytes
                            - emb_flash - head_flash)}
    return flash, dram
