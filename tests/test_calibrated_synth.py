"""Calibrated synthetic traces (memsim/traces/calibrated/): what is measured is kept.

Sources are stand-ins for real traces (no model runs here): memsim.traces.synth's AR(1) top-k, and
a heavy-tailed process (per-column lognormal scale x (per-sequence Student-t offset + AR(1)
with Student-t innovations)) kept by top-k (DIP-like) or by a threshold with a per-token gain
(CATS-like), at SmolLM2-135M's widths with 8 layers to keep the file fast, plus one
memsim.traces.synth trace at the full SmolLM2-135M shape.
Tolerances (docs/calibrated_traces.md): per-layer density 0.02 (top-k: exact); frequency
profile: mean absolute difference over ranks 0.02, worst rank in the 2-98 % bulk 0.1; LRU
hit rate at capacities 0.1..0.9 of the columns: 0.03 absolute.
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from memsim.cache import POLICIES
from memsim.cli.trace import add_calibrate_arguments, run_calibrate
from memsim.core.errors import ConfigError
from memsim.traces.calibrated import (
    RANK_GRID,
    REUSE_BIN_EDGES,
    TraceStatistics,
    calibrate,
    frequency_profile,
    generate,
    reuse_histogram,
)
from memsim.traces.density import dip_keep_fractions
from memsim.traces.model_shape import ModelShape, load_model_shape
from memsim.traces.synth import synth_trace
from memsim.traces.trace import Trace

SMOL8 = ModelShape(name="smollm2-135m-8l", num_hidden_layers=8, hidden_size=576,
                   intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3,
                   vocab_size=49152, tie_word_embeddings=True)
LENGTHS = (256, 256)
DENSITY_TOL, PROFILE_MEAN_TOL, PROFILE_BULK_TOL, LRU_TOL = 0.02, 0.02, 0.1, 0.03
CAPACITY_FRACTIONS = np.arange(1, 10) / 10


# ---------------------------------------------------------------------- stand-in sources
def heavy_scores(rng, lengths, L, N, rho):
    """(T, L, N) |x|: lognormal column scale x (Student-t offset per sequence + AR(1) with
    Student-t innovations): heavier tails than the generator's Gaussian copula."""
    scale = rng.lognormal(0.0, 0.6, (L, N))
    out = []
    for n in lengths:
        offset, a = 0.5 * rng.standard_t(3, (L, N)), rng.standard_t(3, (L, N))
        for _ in range(n):
            a = rho * a + np.sqrt(1 - rho * rho) * rng.standard_t(3, (L, N))
            out.append(np.abs(scale * (offset + a)))
    return np.stack(out)


def topk(scores, keep):
    """Exactly round(keep[l] * N) largest per (token, layer)."""
    T, L, N = scores.shape
    out = np.zeros(scores.shape, bool)
    for layer, k in enumerate(np.rint(np.broadcast_to(keep, (L,)) * N).astype(int)):
        top = np.argpartition(-scores[:, layer], k - 1, axis=1)[:, :k]
        np.put_along_axis(out[:, layer], top, True, axis=1)
    return out


def heavy_dip(seed=0, up_keep=None, down_keep=None):
    rng = np.random.default_rng(seed)
    up, down = dip_keep_fractions(0.5)
    up, down = (up if up_keep is None else up_keep), (down if down_keep is None else down_keep)
    L = SMOL8.num_hidden_layers
    masks = {"up": topk(heavy_scores(rng, LENGTHS, L, 576, 0.6), up),
             "down": topk(heavy_scores(rng, LENGTHS, L, 1536, 0.3), down)}
    return Trace(model=SMOL8, method="dip", sequence_lengths=LENGTHS, source="stand-in",
                 method_params={"density": 0.5}, **masks)


def heavy_cats(seed=0, keep=0.25):
    rng = np.random.default_rng(seed)
    L = SMOL8.num_hidden_layers
    scores = heavy_scores(rng, LENGTHS, L, 1536, 0.5)
    scores *= rng.lognormal(0.0, 0.15, (sum(LENGTHS), L, 1))  # per-token loudness
    down = scores > np.quantile(scores, 1 - keep, axis=(0, 2), keepdims=True)
    return Trace(up_rows=down, gate=np.ones((sum(LENGTHS), L, 576), bool), down=down,
                 model=SMOL8, method="cats", sequence_lengths=LENGTHS, source="stand-in")


def synth_dip(seed=0):
    return synth_trace(SMOL8, sum(LENGTHS), 0.5, seed=seed, rho=0.8,
                       num_sequences=len(LENGTHS))


def synth_dip_full_smollm2(seed=0):
    return synth_trace(load_model_shape("smollm2-135m"), 512, 0.5, seed=seed, rho=0.9,
                       popularity_std=0.7, num_sequences=2)


SOURCES = {"synth_ar1_topk": synth_dip, "heavy_tailed_topk": heavy_dip,
           "heavy_tailed_threshold": heavy_cats, "synth_smollm2_135m": synth_dip_full_smollm2}


@pytest.fixture(scope="module")
def calibrated():
    """name -> (source trace, its statistics, a trace generated at the source's shape)."""
    out = {}
    for name, make in SOURCES.items():
        source = make()
        stats = calibrate(source)
        out[name] = (source, stats, generate(stats, source.model, source.num_tokens, seed=1,
                                             num_sequences=len(source.sequence_lengths)))
    return out


def lru_hit_rates(trace):
    """{group: (9,) hit rate at CAPACITY_FRACTIONS of the columns} for the masked groups."""
    lru, out = POLICIES.get("lru"), {}
    for group in trace.groups():
        if group.mask.all():
            continue
        L, N = group.mask.shape[1:]
        result = lru.run_batch([group.mask] * len(CAPACITY_FRACTIONS),
                               [np.full(L, int(f * N)) for f in CAPACITY_FRACTIONS],
                               trace.sequence_lengths)
        out[group.name] = result.hits.sum(axis=(0, 2)) / group.mask.sum()
    return out


def masked_fields(trace):
    return [g.mask_name for g in trace.groups() if not g.mask.all()]


# ---------------------------------------------------------------------- measuring
def test_reuse_histogram_matches_a_direct_count_of_gaps():
    rng = np.random.default_rng(0)
    mask = rng.random((90, 2, 40)) < rng.random((1, 2, 40)) ** 2
    lengths = (50, 7, 33)
    expected = np.zeros((2, len(REUSE_BIN_EDGES) + 1))
    start = 0
    for n in lengths:
        for layer in range(2):
            for column in range(40):
                uses = np.flatnonzero(mask[start:start + n, layer, column])
                for gap in np.diff(uses):
                    expected[layer, np.searchsorted(REUSE_BIN_EDGES, gap, side="right") - 1] += 1
                expected[layer, -1] += len(uses) > 0  # the last use never recurs
        start += n
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(reuse_histogram(mask, lengths), expected)


def test_statistics_of_a_top_k_trace_record_exact_k_and_its_density(calibrated):
    source, stats, _ = calibrated["synth_ar1_topk"]
    up, down = stats.groups["up"], stats.groups["down"]
    assert up.is_exact_k and down.is_exact_k and not up.is_dense
    assert np.allclose(down.density, source.down.sum(axis=2)[0] / 1536)
    assert (np.diff(down.frequency_profile, axis=1) <= 1e-12).all()  # sorted, descending
    assert np.allclose(down.reuse_histogram.sum(axis=1), 1.0)
    assert stats.source_model == "smollm2-135m-8l" and stats.method == "dip"


# ---------------------------------------------------------------------- generating
@pytest.mark.parametrize("name", SOURCES)
def test_calibrated_trace_keeps_source_density_and_frequency_profile(calibrated, name):
    source, stats, generated = calibrated[name]
    bulk = (RANK_GRID >= 0.02) & (RANK_GRID <= 0.98)
    for field in masked_fields(source):
        want, got = getattr(source, field), getattr(generated, field)
        if stats.groups[field].is_exact_k:
            assert np.array_equal(got.sum(axis=2), want.sum(axis=2))
        density_gap = np.abs(got.mean(axis=(0, 2)) - want.mean(axis=(0, 2)))
        assert density_gap.max() <= DENSITY_TOL, (field, density_gap)
        gap = np.abs(frequency_profile(got) - frequency_profile(want))
        assert gap.mean() <= PROFILE_MEAN_TOL, (field, gap.mean())
        assert gap[:, bulk].max() <= PROFILE_BULK_TOL, (field, gap[:, bulk].max())


@pytest.mark.parametrize("name", SOURCES)
def test_generated_trace_reproduces_source_lru_hit_rate_curve(calibrated, name):
    source, _, generated = calibrated[name]
    want, got = lru_hit_rates(source), lru_hit_rates(generated)
    assert want.keys() == got.keys()
    for group in want:
        assert np.abs(got[group] - want[group]).max() <= LRU_TOL, (group, want[group], got[group])


def test_threshold_source_per_token_density_spread_is_reproduced(calibrated):
    source, stats, generated = calibrated["heavy_tailed_threshold"]
    want = source.down.mean(axis=2).std(axis=0)
    got = generated.down.mean(axis=2).std(axis=0)
    assert not stats.groups["down"].is_exact_k
    assert np.abs(got - want).max() <= 0.25 * want.max()


def test_dense_and_tied_masks_stay_dense_and_tied(calibrated):
    _, stats, generated = calibrated["heavy_tailed_threshold"]
    assert stats.groups["gate"].is_dense and stats.groups["down"].same_as == "up_rows"
    assert generated.gate.all() and np.array_equal(generated.up_rows, generated.down)


def test_label_says_synthetic_calibrated_on_source_model(calibrated):
    source, _, generated = calibrated["heavy_tailed_topk"]
    assert generated.source == "synthetic (calibrated on smollm2-135m-8l)"
    assert generated.method == source.method == "dip"
    params = generated.method_params
    assert params["calibrated_on"] == "smollm2-135m-8l" and params["seed"] == 1
    assert params["source_method_params"] == {"density": 0.5}


def test_same_seed_same_trace_and_another_seed_another(calibrated):
    _, stats, _ = calibrated["heavy_tailed_topk"]
    a, b = (generate(stats, SMOL8, 20, seed=7) for _ in range(2))
    c = generate(stats, SMOL8, 20, seed=8)
    assert np.array_equal(a.up, b.up) and np.array_equal(a.down, b.down)
    assert not np.array_equal(a.down, c.down)


def test_generation_at_phi3_medium_maps_layer_densities_by_relative_depth():
    source = heavy_dip(seed=2, up_keep=np.linspace(0.3, 0.8, 8),
                       down_keep=np.linspace(0.6, 0.2, 8))
    stats = calibrate(source)
    phi3 = load_model_shape("phi-3-medium")
    trace = generate(stats, phi3, 8, seed=0, num_sequences=2)
    assert trace.up.shape == (8, 40, 5120) and trace.down.shape == (8, 40, 17920)
    depth = np.linspace(0, 1, 40) * 7  # target layer -> position among the 8 source layers
    for field, keep, width in (("up", np.linspace(0.3, 0.8, 8), 5120),
                               ("down", np.linspace(0.6, 0.2, 8), 17920)):
        source_density = np.rint(keep * {"up": 576, "down": 1536}[field]) / {
            "up": 576, "down": 1536}[field]
        want_k = np.rint(np.interp(depth, np.arange(8), source_density) * width)
        assert (getattr(trace, field).sum(axis=2) == want_k).all()  # exactly k per token


def test_density_override_follows_the_dip_fit(calibrated):
    _, stats, _ = calibrated["heavy_tailed_topk"]
    trace = generate(stats, SMOL8, 4, seed=0, density=0.3)
    up_keep, down_keep = dip_keep_fractions(0.3)
    assert np.allclose(trace.up.mean(axis=(0, 2)), up_keep, atol=1 / 576)
    assert np.allclose(trace.down.mean(axis=(0, 2)), down_keep, atol=1 / 1536)
    assert trace.method_params["density"] == pytest.approx(0.3, abs=1e-3)


def test_density_override_scales_every_masked_matrix_of_other_methods(calibrated):
    _, stats, _ = calibrated["heavy_tailed_threshold"]
    trace = generate(stats, SMOL8, 64, seed=0, density=0.4)  # CATS: keep = (3 d - 1) / 2
    assert trace.gate.all() and np.array_equal(trace.up_rows, trace.down)
    assert trace.down.mean() == pytest.approx(0.1, abs=0.01)
    with pytest.raises(ConfigError) as err:  # W_gate is read in full: d >= 1/3
        generate(stats, SMOL8, 4, seed=0, density=0.2)
    assert err.value.key_path == "density"


# ---------------------------------------------------------------------- persistence, errors
def test_statistics_round_trip_through_json(calibrated, tmp_path):
    _, stats, _ = calibrated["heavy_tailed_threshold"]
    loaded = TraceStatistics.load(stats.save(tmp_path / "stats.json"))
    assert loaded.to_dict() == stats.to_dict()
    a, b = generate(stats, SMOL8, 16, seed=3), generate(loaded, SMOL8, 16, seed=3)
    assert np.array_equal(a.down, b.down)


def test_calibrate_rejects_mixed_models_or_methods(calibrated):
    dip, cats = calibrated["heavy_tailed_topk"][0], calibrated["heavy_tailed_threshold"][0]
    with pytest.raises(ConfigError) as err:
        calibrate([dip, cats])
    assert err.value.key_path == "traces.method"
    tiny = synth_trace(load_model_shape("smollm2-135m"), 4, seed=0)
    with pytest.raises(ConfigError) as err:
        calibrate([dip, tiny])
    assert err.value.key_path == "traces.model"


@pytest.mark.parametrize("kwargs, field", [
    ({"num_tokens": 0}, "num_tokens"), ({"num_tokens": 10, "num_sequences": 3}, "num_tokens"),
    ({"num_sequences": 0}, "num_sequences"), ({"method": "cats"}, "method"),
    ({"density": 1.5}, "density"), ({"seed": -1}, "seed")])
def test_generate_rejects_bad_arguments_naming_the_field(calibrated, kwargs, field):
    _, stats, _ = calibrated["heavy_tailed_topk"]
    args = {"num_tokens": 8, "seed": 0, **kwargs}
    with pytest.raises(ConfigError) as err:
        generate(stats, SMOL8, args.pop("num_tokens"), **args)
    assert err.value.key_path == field


def cli(argv):
    parser = argparse.ArgumentParser()
    add_calibrate_arguments(parser)
    return run_calibrate(parser.parse_args(argv))


def test_cli_writes_the_trace_and_statistics_and_reads_statistics_back(calibrated, tmp_path):
    source = calibrated["heavy_tailed_topk"][0]
    source.save(tmp_path / "src.npz")
    assert cli(["--from", str(tmp_path / "src.npz"), "--model", "llama-3-8b", "--tokens", "6",
                "--sequences", "2", "--seed", "1", "--out", str(tmp_path / "out.npz"),
                "--stats-out", str(tmp_path / "stats.json")]) == 0
    trace = Trace.load(tmp_path / "out.npz")
    assert trace.model.name == "llama-3-8b" and trace.sequence_lengths == (3, 3)
    assert trace.source == "synthetic (calibrated on smollm2-135m-8l)"
    assert cli(["--from", str(tmp_path / "stats.json"), "--model", "llama-3-8b", "--tokens",
                "6", "--sequences", "2", "--seed", "1", "--out", str(tmp_path / "again.npz")]) == 0
    assert np.array_equal(Trace.load(tmp_path / "again.npz").down, trace.down)


@pytest.mark.parametrize("change, flag", [
    ({"--tokens": "0"}, "--tokens"), ({"--model": "no-such-model"}, "--model"),
    ({"--from": "missing.npz"}, "--from"), ({"--density": "0"}, "--density"),
    ({"--structure-seed": "-1"}, "--structure-seed")])
def test_cli_bad_input_raises_config_error_naming_the_flag(calibrated, tmp_path, change, flag):
    calibrated["heavy_tailed_topk"][0].save(tmp_path / "src.npz")
    args = {"--from": str(tmp_path / "src.npz"), "--model": "phi-3-medium", "--tokens": "2",
            "--seed": "0", "--out": str(tmp_path / "out.npz"), **change}
    with pytest.raises(ConfigError) as err:
        cli([part for item in args.items() for part in item])
    assert err.value.key_path == flag
