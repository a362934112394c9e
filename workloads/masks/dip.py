"""DIP, Dynamic Input Pruning (PAPER.md section 3), predictor-free. Per token and layer:
  1. m_up = TopK(|x|, k_up): keep the largest MLP inputs; read only those columns of W_up
     and W_gate (one shared mask);
  2. h = silu(W_gate x~) * (W_up x~) from the pruned input x~;
  3. m_down = TopK(|h|, k_down): read only those columns of W_down.
MLP density = (2 up_keep + down_keep) / 3. One target density maps to the pair with the
reference code's fit; both keeps may instead be given, per layer if wanted. On a plain FFN
(OPT, Falcon: no W_gate) step 1 reads columns of W_up alone and the density is
(up_keep + down_keep) / 2: the fit's up_keep is kept and down_keep solved for that
(memsim/traces/density.py; no fit for plain FFNs was published). `mode=threshold`
replaces each top-k with a per-layer threshold calibrated to the same keep fraction (the
count then varies per token).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from memsim.core.errors import ConfigError
from workloads.masks._select import LayerThresholds, json_floats, keep_to_k, per_layer, topk_mask
from workloads.masks.base import FRACTION, FRACTIONS, MASKS, MaskGenerator, choice, param

DEFAULT_DENSITY = 0.5  # the paper's headline operating point
FIT_SLOPE, FIT_OFFSET = 0.98499, 0.29976  # reference fit: up_keep = sigmoid(a logit(d) + b)


@dataclass(frozen=True)
class DipParams:
    density: float | None = param(
        "target MLP density, split into up_keep/down_keep by the reference fit", FRACTION)
    up_keep: float | list | None = param(
        "fraction of MLP inputs kept (columns of W_up and W_gate)", FRACTIONS)
    down_keep: float | list | None = param(
        "fraction of GLU outputs kept (columns of W_down)", FRACTIONS)
    mode: str = param("top-k per token, or a per-layer threshold calibrated to the keep "
                      "fraction", choice("topk", "threshold"), default="topk")


def dip_keeps_from_density(density: float, plain: bool = False) -> tuple[float, float]:
    """The reference fit: up = sigmoid(0.98499 logit(d) + 0.29976), down = 3 (d - 2/3 up).

    d = 0.5 gives 0.574 / 0.351. Both are clipped to [0, 1]; down only leaves that range for
    d < 0.001 (the fit keeps too many inputs), where keep_to_k then keeps one column.
    `plain`: down = 2 d - up (d = 0.5 gives 0.574 / 0.426).
    """
    if density >= 1.0:
        return 1.0, 1.0
    z = FIT_SLOPE * math.log(density / (1 - density)) + FIT_OFFSET
    up = 1 / (1 + math.exp(-z))
    down = 2 * density - up if plain else 3 * (density - 2 / 3 * up)
    return min(max(up, 0.0), 1.0), min(max(down, 0.0), 1.0)


def resolve_keeps(params: DipParams, num_layers: int, method: str,
                  plain: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(L,) up_keep and down_keep from either `density` or the explicit pair."""
    explicit = (params.up_keep is not None, params.down_keep is not None)
    if params.density is not None and any(explicit):
        raise ConfigError("give density or up_keep + down_keep, not both",
                          key_path=f"{method}.density", allowed="one of the two forms")
    if any(explicit) and not all(explicit):
        missing = "down_keep" if explicit[0] else "up_keep"
        raise ConfigError("up_keep and down_keep go together", key_path=f"{method}.{missing}",
                          allowed=FRACTIONS.allowed)
    if all(explicit):
        up, down = params.up_keep, params.down_keep
    else:
        up, down = dip_keeps_from_density(params.density or DEFAULT_DENSITY, plain)
    return (per_layer(up, num_layers, f"{method}.up_keep"),
            per_layer(down, num_layers, f"{method}.down_keep"))


@MASKS.register("dip")
class Dip(MaskGenerator):
    """Top-k (or calibrated threshold) of |x| for up/gate, then of |h| for down."""

    name = "dip"
    Params = DipParams

    def __init__(self, params: DipParams, shape):
        super().__init__(params, shape)
        L, H, I = shape.num_hidden_layers, shape.hidden_size, shape.intermediate_size
        self.up_keep, self.down_keep = resolve_keeps(params, L, self.name,
                                                     shape.is_plain)  # (L,) each
        self.k_up, self.k_down = keep_to_k(self.up_keep, H), keep_to_k(self.down_keep, I)
        is_threshold = params.mode == "threshold"
        self.up_thresholds = LayerThresholds(self.up_keep) if is_threshold else None
        self.down_thresholds = LayerThresholds(self.down_keep) if is_threshold else None

    def up_mask(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        if self.up_thresholds is not None:
            return self.up_thresholds.select(layer, x.abs())
        return topk_mask(x.abs(), int(self.k_up[layer]))  # (B, T, H)

    def down_mask(self, layer: int, act: torch.Tensor, h: torch.Tensor) -> torch.Tensor | None:
        if self.down_thresholds is not None:
            return self.down_thresholds.select(layer, h.abs())
        return topk_mask(h.abs(), int(self.k_down[layer]))  # (B, T, I)

    @property
    def needs_calibration(self) -> bool:
        return self.up_thresholds is not None and not (
            self.up_thresholds.is_calibrated and self.down_thresholds.is_calibrated)

    def set_calibrating(self, is_calibrating: bool) -> None:
        if self.up_thresholds is not None:
            self.up_thresholds.is_calibrating = is_calibrating
            self.down_thresholds.is_calibrating = is_calibrating

    def resolved_params(self) -> dict:
        out = {**super().resolved_params(), "up_keep": self.up_keep.tolist(),
               "down_keep": self.down_keep.tolist()}
        if self.up_thresholds is None:
            H, I = self.shape.hidden_size, self.shape.intermediate_size
            up_matrices = 1 if self.shape.is_plain else 2  # W_up (and W_gate)
            out.update(k_up=self.k_up.tolist(), k_down=self.k_down.tolist(),
                       nominal_density=float(np.mean(up_matrices * self.k_up / H
                                                     + self.k_down / I) / (up_matrices + 1)))
        else:  # null: the layer keeps everything
            out.update(up_thresholds=json_floats(self.up_thresholds.values),
                       down_thresholds=json_floats(self.down_thresholds.values))
        return out
