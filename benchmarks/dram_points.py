"""DRAM sizes of benchmark points: a preset with another DRAM capacity, and the capacity whose
column cache holds a given share of the MLP (flash_layout_study.py, request_aware.py). No text
of a doc: a helper module, so that a generator importing it imports no other's template."""
from __future__ import annotations

import dataclasses

import numpy as np

from memsim.sim import plan_dram
from memsim.traces import MaskGroup


def capacity_for(hw, model, fraction: float, kv_tokens: float) -> float:
    """DRAM capacity_GB whose cache budget holds `fraction` of the MLP."""
    L, H, I = model.num_hidden_layers, model.hidden_size, model.intermediate_size
    groups = [MaskGroup.from_mask("up_gate", np.zeros((1, L, H), bool), I, 2, "up"),
              MaskGroup.from_mask("down", np.zeros((1, L, I), bool), H, 1, "down")]
    mlp = L * 3 * H * I * hw.precision.mlp_bits / 8
    lo, hi = 0.0, 64.0
    for _ in range(60):
        mid = (lo + hi) / 2
        plan = plan_dram(with_dram(hw, mid), model, groups, kv_tokens)
        lo, hi = (mid, hi) if plan.cache_budget_bytes < fraction * mlp else (lo, mid)
    return hi


def with_dram(hw, capacity_GB: float):
    return dataclasses.replace(hw, dram=dataclasses.replace(hw.dram, capacity_GB=capacity_GB))
