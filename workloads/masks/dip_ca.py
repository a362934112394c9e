"""DIP-CA, DIP with cache-aware masking (PAPER.md section 3).

Before each top-k, scores of columns that are neither in the DRAM cache nor among the
protected `fixed_top_n` largest are scaled by gamma (gamma = 1 is plain DIP); with `warm_up`,
token t of a sequence uses gamma_t = 1 - (1 - gamma)(1 - gamma^(t/4)) so a cold cache does
not bias the first tokens. The cache state comes live from memsim's torch-free policies
(`memsim.cache.make_policy`): one policy per (layer, group), group `up_gate` over the H
inputs (up and gate share one mask) and `down` over the I columns of W_down.

Exactness: a layer's cache depends only on that layer's earlier masks, so a teacher-forced
pass can walk the tokens in order inside each layer: first the up_gate walk (it needs only
|x|), then h for all tokens at once, then the down walk. Every sequence starts cold
(`start_sequence`). The hits seen here are what memsim's replay of the trace reports.
What this ignores: capacities are fixed per run (the budget is not re-planned as the KV cache
grows), and batches hold one sequence (each has its own caches).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from memsim.cache import POLICIES, CachePolicy, LruQueue, make_policy
from memsim.core.errors import ConfigError
from workloads.masks._cache_aware import lru_cache_aware_topk
from workloads.masks._select import as_rows, per_layer, topk_row, topk_rows
from workloads.masks.base import BOOL, COUNT, COUNTS, MASKS, TEXT, UNIT, param
from workloads.masks.dip import Dip, DipParams

DEFAULT_GAMMA = 0.5  # no reference default; the middle of [0, 1] (1 = plain DIP)
DEFAULT_CACHE_FRACTION = 0.5  # half of each matrix's columns fit in DRAM
GROUPS = ("up_gate", "down")  # order of the groups in hit counts, as in memsim.Trace.groups()


@dataclass(frozen=True)
class DipCaParams(DipParams):
    gamma: float = param("score scale of uncached, unprotected columns (1 = plain DIP)", UNIT,
                         default=DEFAULT_GAMMA)
    fixed_top_n: int = param("largest scores per token never scaled down", COUNT, default=0)
    warm_up: bool = param("ramp gamma from 1 over the first tokens of each sequence", BOOL,
                          default=False)
    cache_policy: str = param("memsim cache policy name (online policies only)", TEXT,
                              default="lru")
    cache_fraction: float | None = param(
        f"cache capacity as a fraction of each matrix's columns (default "
        f"{DEFAULT_CACHE_FRACTION}; unused when capacities are given)", UNIT)
    up_gate_capacity: int | list | None = param(
        "columns of the up/gate cache per layer (one value or one per layer)", COUNTS)
    down_capacity: int | list | None = param(
        "columns of the down cache per layer (one value or one per layer)", COUNTS)


def warm_up_gammas(gamma: float, positions: np.ndarray, warm_up: bool) -> np.ndarray:
    """(T,) gamma per token position: constant, or the warm-up ramp from 1 towards gamma."""
    if not warm_up:
        return np.full(positions.shape, gamma)
    return 1 - (1 - gamma) * (1 - gamma ** (positions / 4))


def cache_aware_topk(scores: np.ndarray, low: np.ndarray, k: int,
                     policy: CachePolicy) -> tuple[np.ndarray, np.ndarray]:
    """The per-token hot loop. scores (T, N), low (T, N) = the scaled-down scores ->
    masks (T, N) bool with exactly k per token, hits (T,) int64 as the cache served them.

    Speed shortcut: an LRU policy walks compiled (_cache_aware.py), with the same masks and
    hits as `stepwise_cache_aware_topk`, which serves every other policy."""
    if LruQueue.supports(policy) and k >= 1 and not (np.isnan(scores).any()
                                                     or np.isnan(low).any()):
        return lru_cache_aware_topk(scores, low, k, policy)
    return stepwise_cache_aware_topk(scores, low, k, policy)


def stepwise_cache_aware_topk(scores: np.ndarray, low: np.ndarray, k: int,
                              policy: CachePolicy) -> tuple[np.ndarray, np.ndarray]:
    """`cache_aware_topk` token by token through the policy's own `resident` and `access`."""
    masks = np.zeros(scores.shape, bool)
    hits = np.zeros(scores.shape[0], np.int64)
    for t in range(scores.shape[0]):
        reweighted = np.where(policy.resident(), scores[t], low[t])  # cached keep their score
        masks[t] = topk_row(reweighted, k)
        hits[t] = np.count_nonzero(policy.access(masks[t]))
    return masks, hits


@MASKS.register("dip_ca")
class DipCacheAware(Dip):
    """DIP whose top-k prefers columns already in the DRAM cache."""

    name = "dip_ca"
    Params = DipCaParams
    is_stateful = True

    def __init__(self, params: DipCaParams, shape):
        super().__init__(params, shape)
        if params.mode != "topk":
            raise ConfigError("cache-aware masking needs top-k", key_path=f"{self.name}.mode",
                              allowed="topk")
        policy_cls = POLICIES.get(params.cache_policy, key_path=f"{self.name}.cache_policy")
        if policy_cls.is_offline:
            raise ConfigError(f"{params.cache_policy!r} is an offline oracle and cannot drive "
                              "masking", key_path=f"{self.name}.cache_policy",
                              allowed=", ".join(n for n in POLICIES.names()
                                                if not POLICIES.get(n).is_offline))
        widths = {"up_gate": shape.hidden_size, "down": shape.intermediate_size}
        self.capacities = resolve_capacities(params, shape.num_hidden_layers, widths, self.name)
        self.policies = {g: [make_policy(params.cache_policy, widths[g], int(c))
                             for c in self.capacities[g]] for g in GROUPS}
        self.start_sequence()

    def start_sequence(self) -> None:
        for policies in self.policies.values():
            for policy in policies:
                policy.reset()
        L = self.shape.num_hidden_layers
        self._positions = np.zeros(L, np.int64)  # tokens seen so far, per layer
        self._hits = {g: [[] for _ in range(L)] for g in GROUPS}  # per layer: (T,) chunks

    def up_mask(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        mask = self._walk("up_gate", layer, x, int(self.k_up[layer]))
        return mask  # (1, T, H)

    def down_mask(self, layer: int, act: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        mask = self._walk("down", layer, h, int(self.k_down[layer]))
        self._positions[layer] += h.shape[1]  # the layer's tokens are done
        return mask  # (1, T, I)

    def _walk(self, group: str, layer: int, values: torch.Tensor, k: int) -> torch.Tensor:
        """Cache-aware top-k over the tokens of `values` (1, T, N), in order."""
        if values.shape[0] != 1:
            raise ValueError("dip_ca walks one sequence at a time (batch size 1)")
        scores, low = self._scores(layer, values)
        masks, hits = cache_aware_topk(scores, low, k, self.policies[group][layer])
        self._hits[group][layer].append(hits)
        return torch.from_numpy(masks).reshape(values.shape)

    def _scores(self, layer: int, values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(T, N) scores |values| of the layer's next tokens and (T, N) their scaled-down
        version for uncached columns (gamma, its warm-up ramp, the protected top-n)."""
        scores = as_rows(values.abs())  # (T, N)
        positions = self._positions[layer] + np.arange(scores.shape[0])
        gammas = warm_up_gammas(self.params.gamma, positions, self.params.warm_up)  # (T,)
        low = scores * gammas.astype(scores.dtype)[:, None]  # (T, N)
        if self.params.fixed_top_n > 0:  # the n largest are protected from the scaling
            low = np.where(topk_rows(scores, self.params.fixed_top_n), scores, low)
        return scores, low

    def sequence_stats(self) -> dict[str, np.ndarray]:
        """cache_hits (T, G, L): hits per token, group (up_gate, down) and layer."""
        per_group = [np.stack([np.concatenate(chunks) for chunks in self._hits[g]], axis=1)
                     for g in GROUPS]  # each (T, L)
        return {"cache_hits": np.stack(per_group, axis=1)}

    def resolved_params(self) -> dict:
        out = super().resolved_params()
        out.update(up_gate_capacity=self.capacities["up_gate"].tolist(),
                   down_capacity=self.capacities["down"].tolist())
        out.pop("cache_fraction", None)  # the capacities above are what was used
        return out


def resolve_capacities(params: DipCaParams, num_layers: int, widths: dict[str, int],
                       method: str = "dip_ca") -> dict[str, np.ndarray]:
    """(L,) int capacity per group: explicit counts, or cache_fraction of the columns."""
    explicit = {"up_gate": params.up_gate_capacity, "down": params.down_capacity}
    given = [g for g, v in explicit.items() if v is not None]
    if given and params.cache_fraction is not None:
        raise ConfigError("give cache_fraction or explicit capacities, not both",
                          key_path=f"{method}.cache_fraction", allowed="one of the two")
    if given and len(given) != 2:
        missing = [f"{g}_capacity" for g in GROUPS if g not in given][0]
        raise ConfigError("up_gate_capacity and down_capacity go together",
                          key_path=f"{method}.{missing}", allowed=COUNTS.allowed)
    fraction = DEFAULT_CACHE_FRACTION if params.cache_fraction is None else params.cache_fraction
    out = {}
    for g in GROUPS:
        if given:
            caps = per_layer(explicit[g], num_layers, f"{method}.{g}_capacity").astype(np.int64)
        else:
            caps = np.full(num_layers, int(fraction * widths[g]), np.int64)
        if caps.max() > widths[g]:
            raise ConfigError(f"capacity {int(caps.max())} exceeds the {widths[g]} columns",
                              key_path=f"{method}.{g}_capacity", allowed=f"0..{widths[g]}")
        out[g] = caps
    return out
