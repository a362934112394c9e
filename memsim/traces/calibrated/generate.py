"""Generating a trace from statistics at any model shape (the package docstring's mapping)."""
from __future__ import annotations

import dataclasses

import numpy as np

from memsim.core.errors import ConfigError
from memsim.traces.calibrated.latent import (
    Coactivation,
    latent_scores,
    probit_shift,
    representative_thresholds,
)
from memsim.traces.calibrated.statistics import (
    COACTIVATION_SIZES,
    GroupStatistics,
    TraceStatistics,
)
from memsim.traces.calibrated.token_factor import depth_corr_at, token_factor
from memsim.traces.density import dip_keep_fractions
from memsim.traces.model_shape import ModelShape
from memsim.traces.trace import MASK_NAMES, Trace, mask_width


def depth_weights(num_source: int, num_target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target layer l at relative depth l / (L' - 1) -> (lower source layer, upper source
    layer, weight of the upper), for linear interpolation over depth."""
    depth = np.linspace(0.0, 1.0, num_target) if num_target > 1 else np.zeros(1)
    position = depth * (num_source - 1)
    lower = np.floor(position).astype(int)
    return lower, np.minimum(lower + 1, num_source - 1), position - lower


def _by_depth(values: np.ndarray, num_target: int) -> np.ndarray:
    """(L, ...) per source layer -> (L', ...) per target layer, linear in relative depth."""
    lower, upper, frac = depth_weights(values.shape[0], num_target)
    frac = frac.reshape((-1,) + (1,) * (values.ndim - 1))
    return (1 - frac) * values[lower] + frac * values[upper]


def _target_densities(stats: TraceStatistics, num_layers: int,
                      density: float | None, plain: bool = False) -> dict[str, np.ndarray]:
    """(L',) density per generated mask: the source's by depth, or rescaled to the mean MLP
    density `density`: DIP and DIP-CA split it by the paper's fit (PAPER.md section 3), any
    other method scales all its masked (not dense) matrices by one factor."""
    mapped = {k: _by_depth(g.density, num_layers) for k, g in stats.groups.items()}
    if density is None:
        return mapped
    if not 0.0 < density <= 1.0:
        raise ConfigError(f"must be in (0, 1], got {density}", key_path="density",
                          allowed="(0, 1]")
    masked = [k for k, g in stats.groups.items() if not g.is_dense]
    if stats.method in ("dip", "dip_ca") and set(masked) == {"up", "down"}:
        keep = dict(zip(("up", "down"), dip_keep_fractions(density, plain)))
        scaled = {k: _rescale(v, keep[k]) if k in keep else v for k, v in mapped.items()}
    else:
        scaled = {k: v * _common_factor(mapped, masked, density, plain) if k in masked else v
                  for k, v in mapped.items()}
    scaled = {k: np.clip(v, 0.0, 1.0) for k, v in scaled.items()}
    got = _mlp_density(scaled, plain)
    if abs(got - density) > 1e-3:  # clipped at 1, or a matrix the method reads in full
        low = _mlp_density({k: v * 0 if k in masked else v for k, v in mapped.items()}, plain)
        high = _mlp_density(_saturated(mapped), plain)
        raise ConfigError(f"{stats.method} traces calibrated on {stats.source_model} cannot "
                          f"reach MLP density {density} (got {got:.4f})", key_path="density",
                          allowed=f"about ({low:.3f}, {high:.3f}]")
    return scaled


def _mlp_density(densities: dict[str, np.ndarray], plain: bool = False) -> float:
    """Mean MLP density of per-mask densities (PAPER.md section 2: up and gate sharing one
    mask count twice; a plain FFN's two masks count once each; a neuron mask is the density)."""
    if "neurons" in densities:
        return float(densities["neurons"].mean())
    if plain:
        weight = {k: 0.5 for k in densities}
    else:
        weight = {k: (2 if k == "up" and "gate" not in densities else 1) / 3 for k in densities}
    return float(sum(weight[k] * v.mean() for k, v in densities.items()))


def _saturated(mapped: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every layer that keeps anything keeps everything: the most a rescale can reach."""
    return {k: (v > 0).astype(float) for k, v in mapped.items()}


def _rescale(per_layer: np.ndarray, mean: float) -> np.ndarray:
    """Per-layer densities scaled to `mean`, keeping their ratios."""
    return per_layer * (mean / max(per_layer.mean(), 1e-12))


def _common_factor(mapped: dict[str, np.ndarray], masked: list[str], density: float,
                   plain: bool = False) -> float:
    """The one factor on every masked matrix's densities (clipped at 1) that gives mean MLP
    density `density`, by bisection (the clipping makes it non-linear)."""
    lo, hi = 0.0, 1.0 / max(min([mapped[k].mean() for k in masked] or [1.0]), 1e-12)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        trial = {k: np.clip(v * mid, 0, 1) if k in masked else v for k, v in mapped.items()}
        lo, hi = (mid, hi) if _mlp_density(trial, plain) < density else (lo, mid)
    return lo


def _column_thresholds(group: GroupStatistics, density: np.ndarray, num_columns: int,
                       structure: np.random.Generator) -> np.ndarray:
    """(L', N') float32 theta: the depth-mapped latent profile, probit-shifted to each
    layer's density, read at N' ranks, which are dealt to columns at random."""
    profile = probit_shift(_by_depth(group.latent_profile, len(density)), density)
    return dealt_thresholds(profile, num_columns, structure)


def dealt_thresholds(profile: np.ndarray, num_columns: int,
                     structure: np.random.Generator) -> np.ndarray:
    """(L, Q) frequency profile -> (L, N) float32 thresholds, ranks dealt at random."""
    return structure.permuted(representative_thresholds(profile, num_columns), axis=1)


def _draw_masks(group: GroupStatistics, density: np.ndarray, num_columns: int,
                lengths: tuple[int, ...], structure: np.random.Generator,
                rng: np.random.Generator, zeta: np.ndarray) -> np.ndarray:
    """(T, L', N') bool for one mask at the target shape; top-k where the source was.

    `structure` (the synthetic model: which column is how hot, which columns share a group)
    is drawn apart from `rng` (the text), so that traces of one structure seed and several
    seeds are several texts through one model: a layout built on one fits the others."""
    L = len(density)
    theta = _column_thresholds(group, density, num_columns, structure)
    to_model = np.argsort(structure.permutation(num_columns))  # model column -> block slot
    rho, w, v = (_by_depth(a, L).astype(np.float32) for a in
                 (group.persistence, group.sequence_weight, group.token_weight))
    coactivation = Coactivation(COACTIVATION_SIZES, _by_depth(group.coactivation, L))
    delta = _by_depth(group.novelty_scale, L)
    offsets = (zeta * delta[None].astype(np.float32)) if np.any(delta > 0) else None
    keep = np.rint(density * num_columns).astype(np.int64) if group.is_exact_k else None
    return draw_block_masks(theta, rho[:, None], w[:, None], v, keep, lengths, rng,
                            coactivation, offsets, to_model)


def draw_block_masks(theta: np.ndarray, rho: np.ndarray, w: np.ndarray, v: np.ndarray,
                     keep: np.ndarray | None, lengths: tuple[int, ...],
                     rng: np.random.Generator, coactivation: Coactivation | None = None,
                     rho_offsets: np.ndarray | None = None,
                     to_model: np.ndarray | None = None) -> np.ndarray:
    """(T, L, N) bool: the latent process on thresholds theta (L, N), kept by top-`keep`
    (L,) per layer or, when `keep` is None, by the threshold. Columns come out in the
    generator's block order, or in model order when `to_model` (N,) gives each model
    column's block slot. Fitting and generation both draw through here."""
    L, N = theta.shape
    out = np.empty((sum(lengths), L, N), bool)
    row = np.empty((L, N), bool)
    by_k = None if keep is None else _layers_by_k(keep)
    scores = latent_scores(theta, rho, w, v, lengths, rng, coactivation=coactivation,
                           rho_offsets=rho_offsets)
    for t, (score, cut) in enumerate(scores):
        target = row if to_model is not None else out[t]
        if by_k is not None:
            _topk_into(score, by_k, target)
        else:
            np.greater(score, cut, out=target)
        if to_model is not None:
            np.take(row, to_model, axis=1, out=out[t])
    return out


def _layers_by_k(k: np.ndarray) -> list[tuple[slice | np.ndarray, int]]:
    """(L,) k -> [(layers, k)], one entry per distinct k (a slice when all layers share it)."""
    values = np.unique(k)
    if len(values) == 1:
        return [(slice(None), int(values[0]))]
    return [(np.flatnonzero(k == kk), int(kk)) for kk in values]


def _topk_into(score: np.ndarray, layers_by_k: list, out: np.ndarray) -> None:
    """out[l] = the k largest of score[l], exactly k (ties at the cut: lower index first).

    Speed shortcut: the k-th largest from np.partition and one comparison, ~5x faster than
    argpartition plus scattering indices; ties (rare with float scores) are fixed apart.
    """
    N = score.shape[1]
    for rows, k in layers_by_k:
        if k <= 0 or k >= N:
            out[rows] = k > 0
            continue
        part = score[rows]
        kth = np.partition(part, N - k, axis=1)[:, N - k:N - k + 1]  # (l, 1)
        mask = part > kth
        tied = part == kth
        need = k - mask.sum(axis=1)
        if not np.array_equal(tied.sum(axis=1), need):
            tied &= np.cumsum(tied, axis=1) <= need[:, None]
        out[rows] = mask | tied


def generate(stats: TraceStatistics, model: ModelShape, num_tokens: int, *, seed: int,
             num_sequences: int = 1, method: str | None = None,
             density: float | None = None, structure_seed: int = 0) -> Trace:
    """A trace with `stats`' statistics at `model`'s shape (module docstring).

    `num_tokens` splits into `num_sequences` equal sequences, each starting cold. `method`,
    if given, must be the calibrated one (a guard against drawing DIP from CATS statistics).
    `density` rescales to that mean MLP density. `structure_seed` draws the synthetic model
    (each column's frequency rank, its co-activation groups, where it sits in model order),
    `seed` the text: one structure seed and two seeds are two texts through one model (a
    layout built on one applies to the other). Same seeds, same trace. Dense masks stay
    all-true and tied ones (CATS: up_rows = down) stay tied.
    """
    check_generate_args(stats, model, num_tokens, num_sequences, seed, method)
    if not isinstance(structure_seed, int) or structure_seed < 0:
        raise ConfigError(f"must be a non-negative integer, got {structure_seed!r}",
                          key_path="structure_seed", allowed=">= 0")
    L = model.num_hidden_layers
    widths = {name: mask_width(name, model) for name in MASK_NAMES}
    densities = _target_densities(stats, L, density, model.is_plain)
    lengths = (num_tokens // num_sequences,) * num_sequences
    structures = dict(zip(MASK_NAMES, np.random.default_rng(structure_seed).spawn(
        len(MASK_NAMES))))
    *texts, factor_rng = np.random.default_rng(seed).spawn(len(MASK_NAMES) + 1)
    rngs = dict(zip(MASK_NAMES, texts))
    num_source = len(next(iter(stats.groups.values())).density) if stats.groups else L
    zeta = token_factor(num_tokens, L, stats.novelty_shared,
                        depth_corr_at(stats.novelty_depth_corr, num_source, L), factor_rng)
    masks: dict[str, np.ndarray] = {}
    for name in sorted(stats.groups, key=lambda k: bool(stats.groups[k].same_as)):
        group = stats.groups[name]
        if group.same_as:
            masks[name] = masks[group.same_as]
        elif group.is_dense:
            masks[name] = np.ones((num_tokens, L, widths[name]), bool)
        else:
            masks[name] = _draw_masks(group, densities[name], widths[name], lengths,
                                      structures[name], rngs[name], zeta)
    trace = Trace(model=model, method=stats.method, prompt_len=stats.prompt_len,
                  sequence_lengths=lengths, **masks,
                  source=f"synthetic (calibrated on {stats.source_model})")
    params = {"calibrated_on": stats.source_model, "source_kind": stats.source_kind,
              "source_method_params": stats.method_params, "seed": seed,
              "structure_seed": structure_seed,
              "requested_density": density,
              "density": round(float(trace.mlp_density().mean()), 6),
              "keep": {k: round(float(v.mean()), 6) for k, v in densities.items()}}
    return dataclasses.replace(trace, method_params=params)


def check_generate_args(stats: TraceStatistics | None, model: ModelShape, num_tokens: int,
                         num_sequences: int, seed: int, method: str | None) -> None:
    if not isinstance(model, ModelShape):
        raise ConfigError(f"need a ModelShape, got {type(model).__name__}", key_path="model",
                          allowed="memsim.traces.model_shape.load_model_shape(name)")
    if not isinstance(num_sequences, int) or num_sequences <= 0:
        raise ConfigError(f"must be a positive integer, got {num_sequences!r}",
                          key_path="num_sequences", allowed=">= 1")
    if not isinstance(num_tokens, int) or num_tokens <= 0 or num_tokens % num_sequences:
        raise ConfigError(f"{num_tokens!r} tokens do not split into {num_sequences} equal "
                          "sequences", key_path="num_tokens",
                          allowed="a positive multiple of num_sequences")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"must be a non-negative integer, got {seed!r}", key_path="seed",
                          allowed=">= 0")
    if method is not None and method != stats.method:
        raise ConfigError(f"the statistics were calibrated on {stats.method!r} traces",
                          key_path="method", allowed=stats.method)
