"""GLU pruning (PAPER.md section 3): compute up and gate densely, keep the top-k |h_i|, and
read only those columns of W_down. W_up and W_gate are always read in full, so the MLP
density is (2 + keep_fraction) / 3, never below 2/3."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from memsim.core.errors import ConfigError
from workloads.masks._select import keep_to_k, per_layer, topk_mask
from workloads.masks.base import FRACTION, FRACTIONS, MASKS, MaskGenerator, param

DEFAULT_KEEP = 0.5  # half of W_down: the middle of the useful range


@dataclass(frozen=True)
class GluParams:
    keep_fraction: float | list | None = param(
        "fraction of W_down columns kept per token (top-k of |h|)", FRACTIONS)
    density: float | None = param(
        "target MLP density (W_up and W_gate read in full, so >= 2/3)", FRACTION)


def glu_keep_from_density(density: float) -> float:
    """Solve density = (2 + keep) / 3 for keep (PAPER.md section 2's density definition)."""
    if density < 2 / 3:
        raise ConfigError(f"GLU pruning reads W_up and W_gate in full, so its MLP density "
                          f"cannot be {density}", key_path="glu.density", allowed="[2/3, 1]")
    return max(3 * density - 2, 1e-9)


@MASKS.register("glu")
class GluPruning(MaskGenerator):
    """Top-k of |h| per token selects the W_down columns; up/gate are dense."""

    name = "glu"
    needs_gate = True  # defined on the gate (workloads/masks/base.py)
    Params = GluParams

    def __init__(self, params: GluParams, shape):
        super().__init__(params, shape)
        if params.keep_fraction is not None and params.density is not None:
            raise ConfigError("give keep_fraction or density, not both", key_path="glu.density",
                              allowed="one of keep_fraction, density")
        keep = (glu_keep_from_density(params.density) if params.density is not None
                else DEFAULT_KEEP if params.keep_fraction is None else params.keep_fraction)
        keep = per_layer(keep, shape.num_hidden_layers, "glu.keep_fraction")  # (L,)
        self.k_down = keep_to_k(keep, shape.intermediate_size)  # (L,)

    def down_mask(self, layer: int, act: torch.Tensor, h: torch.Tensor) -> torch.Tensor | None:
        return topk_mask(h.abs(), int(self.k_down[layer]))  # (B, T, I)

    def resolved_params(self) -> dict:
        return {**super().resolved_params(), "k_down": self.k_down.tolist(),
                "nominal_density": float(np.mean(2 + self.k_down / self.shape.intermediate_size)
                                         / 3)}
