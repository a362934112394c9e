"""Calibrated traces keep the structure layouts use (issue 12): co-activation groups, the
token factor (novelty shared by a layer's masks and by neighbouring layers), and one synthetic
model across seeds. Sources are stand-ins with that structure planted (no model runs):
8 layers at SmolLM2-135M's widths, top-k masks. Tolerances are stated next to each check;
benchmarks/calibration_fidelity.py measures the same on real SmolLM2-135M traces.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from memsim.traces.calibrated import TraceStatistics, calibrate, generate
from memsim.traces.calibrated.coactivation import band_means, partner_curves
from memsim.traces.calibrated.latent import Coactivation, combined_normals
from memsim.traces.calibrated.token_factor import (
    fit_depth_structure,
    layer_correlations,
    novelty,
    token_factor,
)
from memsim.traces.density import dip_keep_fractions
from memsim.traces.model_shape import ModelShape
from memsim.traces.trace import Trace

SMOL8 = ModelShape(name="smollm2-135m-8l", num_hidden_layers=8, hidden_size=576,
                   intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3,
                   vocab_size=49152, tie_word_embeddings=True)
LENGTHS = (256,) * 4
GROUP = 8  # planted co-activation groups of 8 adjacent columns (then shuffled)


def planted_source(seed: int = 0) -> Trace:
    """Top-k masks of scores = lognormal column scale x (group factor + own AR(1)), with a
    per-token persistence shared by every layer and both masks (a token continues its
    predecessor with probability 0.3): co-activation and a token factor, planted."""
    rng = np.random.default_rng(seed)
    L = SMOL8.num_hidden_layers
    continues = rng.random(sum(LENGTHS)) < 0.3  # shared by all layers and masks
    masks = {}
    for name, width, keep in (("up", 576, dip_keep_fractions(0.5)[0]),
                              ("down", 1536, dip_keep_fractions(0.5)[1])):
        shuffle = rng.permutation(width)  # groups are not adjacent in model order
        scale = rng.lognormal(0.0, 0.5, (L, width))
        states, out = None, []
        t = 0
        for n in LENGTHS:
            for step in range(n):
                own = rng.standard_normal((L, width))
                group = np.repeat(rng.standard_normal((L, width // GROUP)), GROUP, axis=1)
                fresh = np.sqrt(0.5) * own + np.sqrt(0.5) * group
                rho = 0.9 if (step and continues[t]) else 0.0
                states = fresh if states is None or step == 0 else (
                    rho * states + np.sqrt(1 - rho * rho) * fresh)
                out.append((scale * states)[:, shuffle])
                t += 1
        scores = np.stack(out)
        k = int(round(keep * width))
        top = np.argpartition(-scores, k - 1, axis=2)[:, :, :k]
        mask = np.zeros(scores.shape, bool)
        np.put_along_axis(mask, top, True, axis=2)
        masks[name] = mask
    return Trace(model=SMOL8, method="dip", sequence_lengths=LENGTHS, source="stand-in",
                 method_params={"density": 0.5}, **masks)


@pytest.fixture(scope="module")
def planted():
    """(source, statistics, generated calibration-like, generated held-out-like)."""
    source = planted_source()
    stats = calibrate(source)
    n, seqs = source.num_tokens, len(LENGTHS)
    return (source, stats, generate(stats, SMOL8, n, seed=1, num_sequences=seqs),
            generate(stats, SMOL8, n, seed=2, num_sequences=seqs))


# ---------------------------------------------------------------------- the building blocks
def test_combined_normals_keep_unit_variance_and_correlate_group_members_by_their_loadings():
    rng = np.random.default_rng(0)
    loadings = np.array([[0.3, 0.2, 0.0, 0.0, 0.0]])  # groups of 4 and 16
    coact = Coactivation((4, 16, 64, 256, 1024), loadings)
    draws = np.stack([combined_normals((1, 64), rng, coact)[0] for _ in range(20000)])
    assert np.allclose(draws.var(axis=0), 1.0, atol=0.05)
    corr = np.corrcoef(draws.T)
    assert abs(corr[0, 1] - 0.5) < 0.03  # same group of 4: 0.3 + 0.2
    assert abs(corr[0, 5] - 0.2) < 0.03  # same group of 16 only
    assert abs(corr[0, 20]) < 0.03  # different groups


def test_partner_curve_is_near_zero_without_co_activation_and_positive_with_it(planted):
    rng = np.random.default_rng(1)
    independent = rng.random((512, 2, 400)) < 0.4
    curve = partner_curves(independent, (256, 256))
    assert np.abs(curve[:, :10]).max() < 0.02  # held-out: no selection bias
    source = planted[0]
    assert band_means(partner_curves(source.mask("down"), LENGTHS), 1536)[:, 1].min() > 0.1


def test_token_factor_has_unit_variance_and_the_stated_layer_correlation():
    zeta = token_factor(40000, 6, 0.4, 0.8, np.random.default_rng(0))
    assert np.allclose(zeta.var(axis=0), 1.0, atol=0.04)
    corr = np.corrcoef(zeta.T)
    for d in (1, 3):
        want = 0.4 + 0.6 * 0.8 ** d
        assert abs(np.mean(np.diagonal(corr, d)) - want) < 0.03


def test_depth_structure_fit_recovers_q_and_r():
    d = np.arange(1, 30)
    q, r = fit_depth_structure(0.35 + 0.65 * 0.9 ** d, np.ones(29))
    assert (q, r) == (0.35, 0.9)
    assert fit_depth_structure(np.full(5, np.nan), np.zeros(5)) == (0.0, 0.0)


# ---------------------------------------------------------------------- what is reproduced
def test_generated_partner_curve_matches_the_planted_source(planted):
    """Band means of the held-out partner curve within 0.04 (the stand-in's halves have 512
    tokens: phi's sampling noise is ~0.045 per pair, averaged over 256 columns)."""
    source, stats, gen_a, _ = planted
    for name, width in (("up", 576), ("down", 1536)):
        want = band_means(partner_curves(source.mask(name), LENGTHS), width)
        got = band_means(partner_curves(gen_a.mask(name), LENGTHS), width)
        assert np.abs(got - want)[:, :3].max() < 0.04, name
        assert stats.groups[name].coactivation.sum(axis=1).min() > 0.1


def test_novelty_spread_and_its_layer_and_mask_correlations_are_reproduced(planted):
    """Per-token novelty: spread within 20 %, correlation between adjacent layers and between
    up and down within 0.15 (without the token factor both would be ~0)."""
    source, stats, _, gen = planted

    def figures(trace):
        up, down = (novelty(trace.mask(n), trace.sequence_lengths) for n in ("up", "down"))
        adjacent = np.mean(np.diagonal(layer_correlations(down), 1))
        x, y = up - up.mean(axis=0), down - down.mean(axis=0)
        cross = np.mean((x * y).mean(axis=0) / (x.std(axis=0) * y.std(axis=0)))
        return down.std(axis=0).mean(), adjacent, cross

    (s_std, s_adj, s_cross), (g_std, g_adj, g_cross) = figures(source), figures(gen)
    assert s_adj > 0.3 and s_cross > 0.3  # the stand-in does show it
    assert abs(g_std / s_std - 1) < 0.2
    assert abs(g_adj - s_adj) < 0.15 and abs(g_cross - s_cross) < 0.15
    assert stats.novelty_shared > 0.5  # planted: one factor for all layers


def test_a_coactivation_layout_built_on_one_seed_cuts_runs_on_another_as_on_the_source(planted):
    """Runs of used columns in flash order, layout from the calibration half: the generated
    pair's reduction over model order within 10 % of the source pair's."""
    from memsim.hw.layouts import build_layout

    source, _, gen_a, gen_b = planted
    half = len(LENGTHS) // 2

    def split(trace):
        words = {k: w[: half * 256] for k, w in trace.words.items()}
        rest = {k: w[half * 256:] for k, w in trace.words.items()}
        make = lambda w: Trace(model=SMOL8, words=w, method="dip",  # noqa: E731
                               sequence_lengths=LENGTHS[:half])
        return make(words), make(rest)

    def reduction(cal, held):
        order = build_layout(cal, "coactivation").orders["down"]
        mask = held.mask("down")
        runs = [sum(int((m[:, 1:] & ~m[:, :-1]).sum() + m[:, 0].sum())
                    for m in (mask[:, layer, o[layer]] for layer in range(SMOL8.num_hidden_layers)))
                for o in (np.tile(np.arange(1536), (8, 1)), order)]
        return 1 - runs[1] / runs[0]

    want = reduction(*split(source))
    got = reduction(gen_a, gen_b)
    assert want > 0.1  # the planted groups are worth finding
    assert abs(got - want) < 0.1 * max(want, 0.1) + 0.02


def test_one_structure_seed_is_one_model_across_seeds(planted):
    """Two seeds, one structure seed: the same hot columns (frequencies correlate); another
    structure seed: other columns."""
    _, stats, gen_a, gen_b = planted
    other = generate(stats, SMOL8, gen_a.num_tokens, seed=1, num_sequences=len(LENGTHS),
                     structure_seed=5)
    freq = [t.mask("up").mean(axis=0).ravel() for t in (gen_a, gen_b, other)]
    assert np.corrcoef(freq[0], freq[1])[0, 1] > 0.5
    assert abs(np.corrcoef(freq[0], freq[2])[0, 1]) < 0.2
    assert gen_a.method_params["structure_seed"] == 0


def test_statistics_of_format_1_load_as_no_structure_and_still_generate(planted):
    _, stats, _, _ = planted
    data = json.loads(json.dumps(stats.to_dict()))
    data["format_version"] = 1
    for key in ("novelty_shared", "novelty_depth_corr", "novelty_layer_corr",
                "novelty_mask_corr", "coactivation_sizes", "partner_ranks"):
        data.pop(key)
    for group in data["groups"].values():
        for key in ("partner_curve", "novelty_std", "coactivation", "novelty_scale"):
            group.pop(key)
    old = TraceStatistics.from_dict(data)
    assert not old.groups["down"].coactivation.any() and old.novelty_shared == 0.0
    trace = generate(old, SMOL8, 8, seed=0)
    assert trace.down.sum(axis=2).min() == round(stats.groups["down"].density[0] * 1536)


def test_statistics_with_other_coactivation_sizes_are_refused(planted, tmp_path):
    from memsim.core.errors import ConfigError

    data = planted[1].to_dict()
    data["coactivation_sizes"] = [2, 8]
    with pytest.raises(ConfigError, match="coactivation_sizes"):
        TraceStatistics.from_dict(data)


def test_generate_rejects_a_bad_structure_seed(planted):
    from memsim.core.errors import ConfigError

    with pytest.raises(ConfigError, match="structure_seed"):
        generate(planted[1], SMOL8, 8, seed=0, structure_seed=-1)


def test_statistics_round_trip_keeps_the_structure(planted, tmp_path):
    stats = planted[1]
    back = TraceStatistics.load(stats.save(tmp_path / "s.json"))
    assert np.allclose(back.groups["down"].coactivation, stats.groups["down"].coactivation,
                       atol=1e-6)
    assert back.to_dict() == stats.to_dict()
