"""What `calibrate` stores: per mask (a Trace field) the measured statistics and the fitted
generator, and their JSON form (save / load). Profiles live at the relative ranks RANK_GRID,
reuse distances in the bins REUSE_BIN_EDGES, co-activation at the partner ranks
PARTNER_RANKS and group sizes COACTIVATION_SIZES."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memsim.core.errors import ConfigError
from memsim.core.files import atomic_write_text, read_json

STATS_FORMAT_VERSION = 2  # 2: co-activation and the token factor (1 is read as "none")
NUM_QUANTILES = 129
# Relative ranks (0 = most frequent column) where sorted frequency profiles are stored:
# cosine-spaced, so the first step is ~1.5e-4 of the columns (finer than 1 of 1536).
RANK_GRID = 0.5 - 0.5 * np.cos(np.pi * np.arange(NUM_QUANTILES) / (NUM_QUANTILES - 1))
# Reuse-distance bins by lower edge (tokens until the column recurs): 1, 2, 3-4, 5-8, ...;
# one more bin after these counts uses never followed by another in the same sequence.
REUSE_BIN_EDGES = (1, 2) + tuple(2 ** k + 1 for k in range(1, 16))
# Co-activation: nested groups of these many columns (each level a group of 4 of the one
# below), and the ranks at which a column's best partners are read (coactivation.py):
# ranks 1-3 lie within a group of 4, 4-15 within one of 16, and so on.
COACTIVATION_SIZES = (4, 16, 64, 256, 1024)
PARTNER_RANKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768)


@dataclass(frozen=True, eq=False)
class GroupStatistics:
    """What `calibrate` measured on one mask (a Trace field), then the fitted generator.

    Arrays are per source layer. `frequency_profile[l, q]` is the measured frequency of the
    column at relative rank RANK_GRID[q] (descending); `reuse_histogram[l, b]` the fraction
    of uses whose column recurs after a gap in bin b (REUSE_BIN_EDGES; the last: never).
    """

    mask_name: str
    num_columns: int
    is_exact_k: bool  # every token kept the same count in each layer (top-k)
    is_dense: bool  # all true (a matrix the method reads in full)
    same_as: str  # "" or the mask this one equals token for token (CATS: up_rows = down)
    density: np.ndarray  # (L,) mean fraction of columns kept
    density_std: np.ndarray  # (L,) spread over tokens of the per-token fraction kept
    frequency_profile: np.ndarray  # (L, Q) measured
    reuse_histogram: np.ndarray  # (L, B + 1) measured
    latent_profile: np.ndarray  # (L, Q) fitted stationary probabilities (deconvolve_profile)
    persistence: np.ndarray  # (L,) rho, fitted
    sequence_weight: np.ndarray  # (L,) w, fitted
    token_weight: np.ndarray  # (L,) v, fitted
    reuse_fit_error: np.ndarray  # (L,) L1 distance of the fitted reuse histogram (0..2)
    # format 2 (zeros when read from a format-1 file: no co-activation, no token factor)
    partner_curve: np.ndarray  # (L, R) measured: held-out phi of the r-th best partner
    novelty_std: np.ndarray  # (L,) measured: spread over tokens of the per-token novelty
    coactivation: np.ndarray  # (L, K) fitted group loadings at COACTIVATION_SIZES
    novelty_scale: np.ndarray  # (L,) fitted: per-token persistence spread (Fisher z units)

    _ARRAYS = ("density", "density_std", "frequency_profile", "reuse_histogram",
               "latent_profile", "persistence", "sequence_weight", "token_weight",
               "reuse_fit_error", "partner_curve", "novelty_std", "coactivation",
               "novelty_scale")
    _V2_SHAPES = {"partner_curve": len(PARTNER_RANKS), "novelty_std": 0,
                  "coactivation": len(COACTIVATION_SIZES), "novelty_scale": 0}

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("mask_name", "num_columns", "is_exact_k",
                                             "is_dense", "same_as")}
        out.update({k: np.round(getattr(self, k), 6).tolist() for k in self._ARRAYS})
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "GroupStatistics":
        data, layers = dict(data), len(data["density"])
        for key, width in cls._V2_SHAPES.items():  # format 1: none of these
            data.setdefault(key, np.zeros((layers, width) if width else layers).tolist())
        arrays = {k: np.asarray(data[k], np.float64) for k in cls._ARRAYS}
        return cls(mask_name=str(data["mask_name"]), num_columns=int(data["num_columns"]),
                   is_exact_k=bool(data["is_exact_k"]), is_dense=bool(data["is_dense"]),
                   same_as=str(data["same_as"]), **arrays)


@dataclass(frozen=True, eq=False)
class TraceStatistics:
    """The statistics of one or more traces of one model and method; JSON via save/load."""

    source_model: str  # the model name the traces record ("smollm2-135m")
    source_shape: dict  # ModelShape.to_dict()
    method: str
    method_params: dict  # the (first) source trace's
    source_kind: str  # the traces' own `source` ("workloads", "synthetic", ...)
    prompt_len: int
    sequence_lengths: tuple[int, ...]
    groups: dict[str, GroupStatistics]  # by Trace field name, in MASK_NAMES order
    # the token factor (token_factor.py): per-token persistence shared by a layer's masks
    novelty_shared: float = 0.0  # q: share common to all layers
    novelty_depth_corr: float = 0.0  # r: correlation of the rest between adjacent layers
    novelty_layer_corr: tuple[float, ...] = ()  # measured, by layer distance 1, 2, ...
    novelty_mask_corr: float = float("nan")  # measured: between a layer's masks (nan: one)
    rank_grid: np.ndarray = field(default_factory=lambda: RANK_GRID.copy())
    reuse_bin_edges: tuple[int, ...] = REUSE_BIN_EDGES

    def to_dict(self) -> dict:
        return {"format_version": STATS_FORMAT_VERSION, "source_model": self.source_model,
                "source_shape": self.source_shape, "method": self.method,
                "method_params": self.method_params, "source_kind": self.source_kind,
                "prompt_len": self.prompt_len, "sequence_lengths": list(self.sequence_lengths),
                "novelty_shared": round(self.novelty_shared, 6),
                "novelty_depth_corr": round(self.novelty_depth_corr, 6),
                "novelty_layer_corr": [round(x, 6) for x in self.novelty_layer_corr],
                "novelty_mask_corr": _json_float(self.novelty_mask_corr),
                "coactivation_sizes": list(COACTIVATION_SIZES),
                "partner_ranks": list(PARTNER_RANKS),
                "rank_grid": self.rank_grid.tolist(),
                "reuse_bin_edges": list(self.reuse_bin_edges),
                "groups": {k: g.to_dict() for k, g in self.groups.items()}}

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<api>") -> "TraceStatistics":
        version = data.get("format_version") if isinstance(data, dict) else None
        if version not in (1, STATS_FORMAT_VERSION):
            raise ConfigError(f"format_version {version!r} unsupported",
                              source=source, key_path="format_version",
                              allowed=f"1, {STATS_FORMAT_VERSION}")
        if version > 1 and (tuple(data.get("coactivation_sizes", ())) != COACTIVATION_SIZES
                            or tuple(data.get("partner_ranks", ())) != PARTNER_RANKS):
            raise ConfigError("written with other co-activation sizes or partner ranks; "
                              "recalibrate", source=source, key_path="coactivation_sizes")
        try:
            stats = cls(source_model=data["source_model"], source_shape=data["source_shape"],
                        method=data["method"], method_params=data["method_params"],
                        source_kind=data["source_kind"], prompt_len=int(data["prompt_len"]),
                        sequence_lengths=tuple(int(n) for n in data["sequence_lengths"]),
                        groups={k: GroupStatistics.from_dict(g)
                                for k, g in data["groups"].items()},
                        novelty_shared=float(data.get("novelty_shared", 0.0)),
                        novelty_depth_corr=float(data.get("novelty_depth_corr", 0.0)),
                        novelty_layer_corr=tuple(float(x) for x in
                                                 data.get("novelty_layer_corr", ())),
                        novelty_mask_corr=_read_float(data.get("novelty_mask_corr")),
                        rank_grid=np.asarray(data["rank_grid"], np.float64),
                        reuse_bin_edges=tuple(int(e) for e in data["reuse_bin_edges"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a calibrated-trace statistics file ({exc!r})",
                              source=source) from None
        if stats.rank_grid.shape != RANK_GRID.shape or not np.allclose(stats.rank_grid, RANK_GRID) \
                or stats.reuse_bin_edges != REUSE_BIN_EDGES:
            raise ConfigError("written with another rank grid or reuse binning; recalibrate",
                              source=source, key_path="rank_grid")
        return stats

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename), like Trace.save."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TraceStatistics":
        data = read_json(path, what="statistics file")  # damaged, non-UTF-8: named errors
        return cls.from_dict(data, source=str(path))


def _json_float(x: float) -> float | None:
    """JSON has no NaN: None stands for "not measured"."""
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _read_float(x) -> float:
    return float("nan") if x is None else float(x)
