"""What `calibrate` stores: per mask (a Trace field) the measured statistics and the fitted
generator, and their JSON form (save / load). Profiles live at the relative ranks RANK_GRID,
reuse distances in the bins REUSE_BIN_EDGES."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memsim.core.errors import ConfigError
from memsim.core.files import atomic_write_text, read_json

STATS_FORMAT_VERSION = 1
NUM_QUANTILES = 129
# Relative ranks (0 = most frequent column) where sorted frequency profiles are stored:
# cosine-spaced, so the first step is ~1.5e-4 of the columns (finer than 1 of 1536).
RANK_GRID = 0.5 - 0.5 * np.cos(np.pi * np.arange(NUM_QUANTILES) / (NUM_QUANTILES - 1))
# Reuse-distance bins by lower edge (tokens until the column recurs): 1, 2, 3-4, 5-8, ...;
# one more bin after these counts uses never followed by another in the same sequence.
REUSE_BIN_EDGES = (1, 2) + tuple(2 ** k + 1 for k in range(1, 16))


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

    _ARRAYS = ("density", "density_std", "frequency_profile", "reuse_histogram",
               "latent_profile", "persistence", "sequence_weight", "token_weight",
               "reuse_fit_error")

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("mask_name", "num_columns", "is_exact_k",
                                             "is_dense", "same_as")}
        out.update({k: np.round(getattr(self, k), 6).tolist() for k in self._ARRAYS})
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "GroupStatistics":
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
    rank_grid: np.ndarray = field(default_factory=lambda: RANK_GRID.copy())
    reuse_bin_edges: tuple[int, ...] = REUSE_BIN_EDGES

    def to_dict(self) -> dict:
        return {"format_version": STATS_FORMAT_VERSION, "source_model": self.source_model,
                "source_shape": self.source_shape, "method": self.method,
                "method_params": self.method_params, "source_kind": self.source_kind,
                "prompt_len": self.prompt_len, "sequence_lengths": list(self.sequence_lengths),
                "rank_grid": self.rank_grid.tolist(),
                "reuse_bin_edges": list(self.reuse_bin_edges),
                "groups": {k: g.to_dict() for k, g in self.groups.items()}}

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<api>") -> "TraceStatistics":
        if data.get("format_version") != STATS_FORMAT_VERSION:
            raise ConfigError(f"format_version {data.get('format_version')!r} unsupported",
                              source=source, key_path="format_version",
                              allowed=str(STATS_FORMAT_VERSION))
        try:
            stats = cls(source_model=data["source_model"], source_shape=data["source_shape"],
                        method=data["method"], method_params=data["method_params"],
                        source_kind=data["source_kind"], prompt_len=int(data["prompt_len"]),
                        sequence_lengths=tuple(int(n) for n in data["sequence_lengths"]),
                        groups={k: GroupStatistics.from_dict(g)
                                for k, g in data["groups"].items()},
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
