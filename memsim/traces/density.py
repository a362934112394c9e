"""MLP density <-> DIP keep fractions (PAPER.md section 3, the reference code's fit).

The fit was made for SwiGLU MLPs, where W_up and W_gate share the input mask (density
(2 up + down) / 3). A plain MLP (OPT, Falcon) has one input-masked matrix, so its density is
(up + down) / 2; memsim keeps the fit's up_keep there and solves down_keep for the plain
density (no fit for plain MLPs was published).
"""
from __future__ import annotations

import math


def dip_keep_fractions(density: float, plain: bool = False) -> tuple[float, float]:
    """Target MLP density d -> (up_keep, down_keep) with (2*up + down)/3 = d.

    up_keep = sigmoid(0.98499 * logit(d) + 0.29976); down_keep = 3 * (d - 2/3 * up_keep),
    clipped to [0, 1] (at the extremes the fit leaves the unit interval). d=0.5 -> 0.574/0.351.
    `plain`: a gate-less MLP, (up + down)/2 = d: down_keep = 2 d - up_keep (d=0.5 -> 0.574 /
    0.426).
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if density == 1.0:
        return 1.0, 1.0
    logit = math.log(density / (1.0 - density))
    up = 1.0 / (1.0 + math.exp(-(0.98499 * logit + 0.29976)))
    down = 2.0 * density - up if plain else 3.0 * (density - 2.0 / 3.0 * up)
    return up, min(1.0, max(0.0, down))


def mlp_density(up_keep: float, down_keep: float, plain: bool = False) -> float:
    """Fraction of MLP weights read when W_up (and W_gate, unless `plain`) keep `up_keep`
    and W_down `down_keep`."""
    if plain:
        return (up_keep + down_keep) / 2.0
    return (2.0 * up_keep + down_keep) / 3.0
