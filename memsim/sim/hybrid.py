"""Hybrid placement (LLM in a flash, section 4.1 "Hybrid"): a fixed share of each layer's MLP
columns resident in DRAM, the rest dynamic.

`placement.mlp_resident_share` s keeps floor(s N) columns of every mask group (N columns per
layer) resident in every layer: the `first` ones in model order, or the `hottest`, ranked by
how many tokens of a calibration trace (`placement.mlp_resident_calibration`, same model and
masks) used each (ties: the lower index). A resident column is read from DRAM whenever a
token needs it and never enters the cache; the rest go through `cache.impl` (with `none`,
they stream from flash every token they are needed: LLM in a flash's hybrid row when the
trace is dense). The resident bytes are planned like every resident weight (memsim/sim/
plan.py), so they shrink the cache budget.
What the model ignores: loading the resident share (it is in DRAM before decoding starts,
as the attention weights are) and choosing the share per layer.
"""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np

from memsim.cache import CacheOutcome
from memsim.core.errors import ConfigError
from memsim.hw.config import HardwareConfig
from memsim.traces.bits import pack_words, popcount
from memsim.traces.model_shape import ModelShape
from memsim.traces.trace import MaskGroup, Trace

KEY = "placement.mlp_resident_share"


def resident_count(share: float, num_columns: int) -> int:
    """floor(share x N), exact for decimal shares (0.3 x 10 is 3, not 2)."""
    return min(num_columns, math.floor(Fraction(repr(float(share))) * num_columns))


def resident_columns(hw: HardwareConfig, model: ModelShape,
                     groups: list[MaskGroup]) -> tuple[np.ndarray, ...] | None:
    """Per group, (L, W) packed words of the resident columns; None without a share."""
    place = hw.placement
    if place.mlp_resident_share <= 0 or place.mlp != "dynamic":
        return None
    usage = _calibration_usage(place.mlp_resident_calibration, model, groups) \
        if place.mlp_resident_columns == "hottest" else None
    out = []
    for g, group in enumerate(groups):
        L, N = model.num_hidden_layers, group.num_columns
        n = resident_count(place.mlp_resident_share, N)
        chosen = np.zeros((L, N), bool)
        if usage is None:
            chosen[:, :n] = True
        elif n:
            # rank by use (more first), then by index (lower first): a stable argsort of -use
            order = np.argsort(-usage[g], axis=1, kind="stable")[:, :n]
            np.put_along_axis(chosen, order, True, axis=1)
        out.append(pack_words(chosen[None])[0])
    return tuple(out)


def resident_bytes(resident: tuple[np.ndarray, ...] | None, vector_bytes: list[float]) -> float:
    """Bytes the resident columns occupy (all layers, all groups)."""
    if resident is None:
        return 0.0
    return float(sum(int(popcount(w).sum()) * vb for w, vb in zip(resident, vector_bytes)))


def without_resident(groups: list[MaskGroup],
                     resident: tuple[np.ndarray, ...] | None) -> list[MaskGroup]:
    """The groups with resident columns taken out of every mask (what the cache sees)."""
    if resident is None:
        return groups
    return [dataclasses.replace(g, bits=g.bits._replace(words=g.bits.words & ~r[None]))
            for g, r in zip(groups, resident)]


def with_resident_hits(outcome: CacheOutcome, groups: list[MaskGroup],
                       resident: tuple[np.ndarray, ...] | None) -> CacheOutcome:
    """`outcome` of the dynamic part, plus the resident columns each token read as hits."""
    if resident is None:
        return outcome
    extra = np.stack([popcount(g.bits.words & r[None]).sum(axis=2, dtype=np.int64)
                      for g, r in zip(groups, resident)], axis=1)  # (T, G, L)
    return dataclasses.replace(outcome, hits=outcome.hits + extra)


def _calibration_usage(path: str, model: ModelShape, groups: list[MaskGroup]) -> list:
    """Per group, (L, N) tokens of the calibration trace that used each column."""
    calibration = Trace.load(path)
    wanted = [(g.name, g.num_columns) for g in groups]
    have = [(g.name, g.num_columns) for g in calibration.groups()]
    if calibration.model.num_hidden_layers != model.num_hidden_layers or have != wanted:
        raise ConfigError(f"the calibration trace's masks {have} do not match this run's "
                          f"{wanted} for {model.name}", source=path,
                          key_path="placement.mlp_resident_calibration",
                          allowed="a trace of the same model and method kind")
    return [g.bits.unpack().sum(axis=0, dtype=np.int64) for g in calibration.groups()]


def check_fits(share_bytes: float, free_bytes: float, total_mlp_bytes: float,
               share: float) -> None:
    """A resident share that does not fit in the DRAM left after the other resident weights
    and the KV cache is an error naming the largest share that fits."""
    if share_bytes <= free_bytes:
        return
    most = max(0.0, free_bytes) / total_mlp_bytes if total_mlp_bytes else 0.0
    raise ConfigError(f"the resident MLP share ({share:g}: {share_bytes / 1e9:.6g} GB) does "
                      f"not fit in the {max(0.0, free_bytes) / 1e9:.6g} GB the DRAM has left",
                      key_path=KEY, allowed=f"<= {math.floor(most * 1e4) / 1e4:g}, or more "
                      "dram.capacity_GB")

