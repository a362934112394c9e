"""MLP density <-> DIP keep fractions (PAPER.md section 3, the reference code's fit)."""
from __future__ import annotations

import math


def dip_keep_fractions(density: float) -> tuple[float, float]:
    """Target MLP density d -> (up_keep, down_keep) with (2*up + down)/3 = d.

    up_keep = sigmoid(0.98499 * logit(d) + 0.29976); down_keep = 3 * (d - 2/3 * up_keep),
    clipped to [0, 1] (at the extremes the fit leaves the unit interval). d=0.5 -> 0.574/0.351.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if density == 1.0:
        return 1.0, 1.0
    logit = math.log(density / (1.0 - density))
    up = 1.0 / (1.0 + math.exp(-(0.98499 * logit + 0.29976)))
    down = 3.0 * (density - 2.0 / 3.0 * up)
    return up, min(1.0, max(0.0, down))


def mlp_density(up_keep: float, down_keep: float) -> float:
    """Fraction of MLP weights read when W_up/W_gate keep `up_keep` and W_down `down_keep`."""
    return (2.0 * up_keep + down_keep) / 3.0
