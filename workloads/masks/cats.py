"""CATS (Lee et al. 2024; PAPER.md section 3): compute the gate densely, keep the elements
where |silu(W_gate x)| exceeds a per-layer threshold calibrated so a target fraction is kept;
then only those rows of W_up and columns of W_down are needed. W_gate is always read in full,
so the MLP density is (1 + 2 keep_fraction) / 3, never below 1/3. The trace therefore holds
`up_rows` (rows of W_up), an all-true `gate` and `down`.
Calibration: see LayerThresholds (layer by layer, on the masked model's own activations).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from memsim.core.errors import ConfigError
from workloads.masks._select import LayerThresholds, json_floats, per_layer
from workloads.masks.base import FRACTION, FRACTIONS, MASKS, MaskGenerator, param

DEFAULT_KEEP = 0.5  # the CATS paper's headline sparsity


@dataclass(frozen=True)
class CatsParams:
    keep_fraction: float | list | None = param(
        "fraction of GLU elements kept (|silu(gate)| above the calibrated threshold)", FRACTIONS)
    density: float | None = param(
        "target MLP density (W_gate read in full, so > 1/3)", FRACTION)


def cats_keep_from_density(density: float) -> float:
    """Solve density = (1 + 2 keep) / 3 for keep."""
    if density <= 1 / 3:
        raise ConfigError(f"CATS reads W_gate in full, so its MLP density cannot be {density}",
                          key_path="cats.density", allowed="(1/3, 1]")
    return (3 * density - 1) / 2


@MASKS.register("cats")
class Cats(MaskGenerator):
    """Threshold on |silu(gate)| selects rows of W_up and columns of W_down."""

    name = "cats"
    needs_gate = True  # defined on the gate (workloads/masks/base.py)
    Params = CatsParams
    trace_layout = "rows"

    def __init__(self, params: CatsParams, shape):
        super().__init__(params, shape)
        if params.keep_fraction is not None and params.density is not None:
            raise ConfigError("give keep_fraction or density, not both", key_path="cats.density",
                              allowed="one of keep_fraction, density")
        keep = (cats_keep_from_density(params.density) if params.density is not None
                else DEFAULT_KEEP if params.keep_fraction is None else params.keep_fraction)
        self.thresholds = LayerThresholds(per_layer(keep, shape.num_hidden_layers,
                                                    "cats.keep_fraction"))

    def down_mask(self, layer: int, act: torch.Tensor, h: torch.Tensor) -> torch.Tensor | None:
        return self.thresholds.select(layer, act.abs())  # (B, T, I)

    @property
    def needs_calibration(self) -> bool:
        return not self.thresholds.is_calibrated

    def set_calibrating(self, is_calibrating: bool) -> None:
        self.thresholds.is_calibrating = is_calibrating

    def resolved_params(self) -> dict:
        return {**super().resolved_params(), "keep_per_layer": self.thresholds.keep.tolist(),
                "thresholds": json_floats(self.thresholds.values)}  # null: keeps all
