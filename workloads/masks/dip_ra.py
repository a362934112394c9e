"""DIP-RA, request-aware DIP: DIP-CA whose top-k also knows what its misses cost to read.

Per token, layer and group the budget is DIP's (k columns, the same density). Scores are
DIP-CA's (|x| or |h|, uncached unprotected ones scaled by gamma). The selection maximises
the kept scores minus `request_weight` x sigma x (request time of the misses / time of a lone
one-page request), sigma being the k-th largest score: at weight w, a read that costs as much
as one lone page must bring about w marginal columns' worth of score. The request time is
what memsim charges the transfer's requests (memsim.sim.request_estimate, from the `--hw`
flash and the `--layout` order): per request the floor up to a few pages and then time per
page, runs at most `flash.merge_gap_KiB` apart read as one request (the transfer's fixed
latency is left out, docs/request_aware.md says why). A column on a page already read, or
inside a gap read through, is free; one that opens a request is dear. The search is
_request_select.py's (a greedy pass over page ranges); docs/request_aware.md says what it
optimises and why. request_weight 0 is DIP-CA exactly, and gamma 1 as well is DIP.

The cache state is DIP-CA's (memsim's torch-free policies, one per layer and group, updated
with each token's mask), so the hits and misses seen here are what memsim's replay of the
trace reports (without over-read admission). What this ignores: the estimate prices each
transfer alone (as memsim does); it does not see the engine's overlap of flash with compute.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from memsim.core.errors import ConfigError, user_input
from memsim.hw import load_hw
from memsim.sim import ColumnPlacement, dip_placements, estimate_reads
from workloads.masks._request_select import request_aware_select
from workloads.masks._select import topk_row
from workloads.masks.base import MASKS, TEXT, Check, _is_real, param
from workloads.masks.dip_ca import GROUPS, DipCacheAware, DipCaParams

DEFAULT_REQUEST_WEIGHT = 1.0  # a lone page read must bring about one marginal column
WEIGHT = Check("a number >= 0", lambda v: _is_real(v) and v >= 0)


@dataclass(frozen=True)
class DipRaParams(DipCaParams):
    request_weight: float = param(
        "flash cost weight: a read costing one lone page must bring this many marginal "
        "columns' score (0 = DIP-CA)", WEIGHT, default=DEFAULT_REQUEST_WEIGHT)
    flash_hw: str = param("hardware preset or YAML whose flash prices the reads (pages, "
                          "merge gap, request costs; memsim eval --hw sets it)", TEXT,
                          default="flagship")
    layout: str | None = param("flash layout file (.npz, memsim layout build) giving the "
                               "column order; default: the hardware's flash.layout, else "
                               "model order", TEXT)


@MASKS.register("dip_ra")
class DipRequestAware(DipCacheAware):
    """DIP-CA whose top-k trades score against the flash requests its misses open."""

    name = "dip_ra"
    Params = DipRaParams

    def __init__(self, params: DipRaParams, shape):
        super().__init__(params, shape)
        with user_input(key_path="dip_ra.flash_hw"):
            hw = load_hw(params.flash_hw)
        try:
            self.placements: dict[str, ColumnPlacement] = dip_placements(hw, shape,
                                                                         params.layout)
        except ConfigError as exc:  # a layout given as a parameter is told as that parameter
            if params.layout is None:
                raise
            raise ConfigError(exc.message, source=exc.source, key_path="dip_ra.layout",
                              allowed=exc.allowed) from None
        widths = {"up_gate": shape.hidden_size, "down": shape.intermediate_size}
        for g in GROUPS:
            if self.placements[g].num_columns != widths[g]:
                raise ConfigError("layout does not fit the model", key_path="dip_ra.layout",
                                  allowed=f"a layout of {shape.name}")
        self._span_max = {g: int((p.cell_last - p.cell_first).max()) + 1
                          for g, p in self.placements.items()}
        self._by_cell = {g: [columns_by_cell(p.cell_first[layer], p.cell_last[layer],
                                             p.num_cells) for layer in range(p.cell_first.shape[0])]
                         for g, p in self.placements.items()}

    def start_sequence(self) -> None:
        super().start_sequence()
        L = self.shape.num_hidden_layers
        self._misses = {g: [[] for _ in range(L)] for g in GROUPS}  # per layer: (T, N) chunks

    def _walk(self, group: str, layer: int, values: torch.Tensor, k: int) -> torch.Tensor:
        """Request-aware top-k over the tokens of `values` (1, T, N), in order."""
        if values.shape[0] != 1:
            raise ValueError("dip_ra walks one sequence at a time (batch size 1)")
        scores, low = self._scores(layer, values)  # DIP-CA's reweighting
        masks, hits = self._request_aware_topk(group, layer, scores, low, k)
        self._hits[group][layer].append(hits.sum(axis=1))
        self._misses[group][layer].append(masks & ~hits)
        return torch.from_numpy(masks).reshape(values.shape)

    def _request_aware_topk(self, group: str, layer: int, scores: np.ndarray,
                            low: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The per-token loop: masks (T, N) with exactly k per token, hits (T, N) as the cache
        served them."""
        policy = self.policies[group][layer]
        p = self.placements[group]
        first, last = p.cell_first[layer], p.cell_last[layer]
        by_cell, cell_start = self._by_cell[group][layer]
        masks = np.zeros(scores.shape, bool)
        hits = np.zeros(scores.shape, bool)
        weight = float(self.params.request_weight)
        for t in range(scores.shape[0]):
            resident = policy.resident()
            reweighted = np.where(resident, scores[t], low[t])  # as DIP-CA
            if not request_aware_select(reweighted.astype(np.float64), resident, first, last,
                                        by_cell, cell_start, k, self._span_max[group],
                                        p.gap_cells, p.short_cells, p.request_s, p.cell_s,
                                        p.is_paged, weight, masks[t]):
                masks[t] = topk_row(reweighted, k)  # weight 0: DIP-CA's choice
            hits[t] = policy.access(masks[t])
        return masks, hits

    def sequence_stats(self) -> dict[str, np.ndarray]:
        """cache_hits (T, G, L) as DIP-CA; flash_requests_estimate and
        flash_device_bytes_estimate (T, G, L): the method's own count of its misses' reads."""
        out = super().sequence_stats()
        estimates = [self._estimates(g) for g in GROUPS]  # each (requests, bytes) (T, L)
        out["flash_requests_estimate"] = np.stack([e[0] for e in estimates], axis=1)
        out["flash_device_bytes_estimate"] = np.stack([e[1] for e in estimates], axis=1)
        return out

    def _estimates(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        per_layer = [estimate_reads(np.concatenate(chunks), self.placements[group], layer)
                     for layer, chunks in enumerate(self._misses[group])]
        return (np.stack([e.requests for e in per_layer], axis=1),
                np.stack([e.device_bytes for e in per_layer], axis=1))


def columns_by_cell(first: np.ndarray, last: np.ndarray,
                    num_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, starts): columns[starts[u]:starts[u+1]] are the columns whose slot touches
    cell u (first/last (N,) cells of each slot)."""
    spans = last - first + 1
    column = np.repeat(np.arange(first.shape[0]), spans)
    offset = np.arange(column.size) - np.repeat(np.cumsum(spans) - spans, spans)
    cells = first[column] + offset
    order = np.argsort(cells, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(cells, minlength=num_cells))])
    return column[order].astype(np.int64), starts.astype(np.int64)
