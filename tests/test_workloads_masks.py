"""workloads.masks: each method's masks, applied in the real forward pass (tiny models)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from memsim.core.errors import ConfigError
from workloads.masked_mlp import MaskRecorder, masked
from workloads.masks import MASKS, build_generator
from workloads.masks._select import topk_row, topk_rows
from workloads.masks.dip import dip_keeps_from_density
from workloads.model import load_model
from workloads.perplexity import calibrate, score_window
from workloads.testing import ARCHS, save_tiny_checkpoint, train_tiny_predictor

FULL = {"dense": {}, "glu": {"density": 1.0}, "cats": {"density": 1.0},
        "dip": {"density": 1.0}, "dip_ca": {"density": 1.0, "gamma": 0.0},
        "dip_ra": {"density": 1.0, "gamma": 0.0, "request_weight": 5.0},
        "predictor": {"density": 1.0}}  # + the folder of a predictor trained for density 1


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: load_model(save_tiny_checkpoint(root / arch, arch)) for arch in ARCHS}


@pytest.fixture(scope="module")
def full_params(models, tmp_path_factory):
    """FULL, with the predictor's folder (all tiny archs share one shape)."""
    folder = tmp_path_factory.mktemp("predictor") / "full"
    train_tiny_predictor(folder, models["llama"], density=1.0, steps=1)
    return {**FULL, "predictor": {**FULL["predictor"], "predictor": str(folder)}}


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(0).integers(0, 512, size=(6, 24))  # (N, W) windows


def run_masked(loaded, generator, window):
    """Logits (1, W, V) and recorded (up, down) masks of one window."""
    recorder = MaskRecorder(loaded.shape.num_hidden_layers)
    generator.start_sequence()
    with torch.no_grad(), masked(loaded, generator, recorder):
        logits = loaded.model(torch.from_numpy(window)[None]).logits
    return logits, recorder.stack(64, "up"), recorder.stack(96, "down")


def test_every_registered_method_is_tested_at_full_density():
    assert sorted(FULL) == MASKS.names()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", sorted(FULL))
def test_density_one_gives_logits_identical_to_the_unmasked_model(models, ids, full_params,
                                                                   arch, method):
    loaded = models[arch]
    with torch.no_grad():
        dense = loaded.model(torch.from_numpy(ids[0])[None]).logits
    generator = build_generator(method, full_params[method], loaded.shape)
    logits, _, _ = run_masked(loaded, generator, ids[0])
    assert torch.equal(logits, dense)


@pytest.mark.parametrize("method,params,k_up,k_down", [
    ("dip", {"up_keep": 0.25, "down_keep": 0.5}, 16, 48),
    ("dip", {"up_keep": [0.25, 0.5], "down_keep": [0.125, 0.75]}, [16, 32], [12, 72]),
    ("dip_ca", {"up_keep": 0.25, "down_keep": 0.5, "gamma": 0.2}, 16, 48),
    ("dip_ra", {"up_keep": 0.25, "down_keep": 0.5, "gamma": 0.2, "request_weight": 3.0}, 16, 48),
    ("glu", {"keep_fraction": 0.5}, 64, 48),
])
def test_topk_keeps_exactly_k_per_token_and_layer(models, ids, method, params, k_up, k_down):
    loaded = models["llama"]
    _, up, down = run_masked(loaded, build_generator(method, params, loaded.shape), ids[1])
    up = np.ones((24, 2, 64), bool) if up is None else up
    assert (up.sum(axis=2) == np.broadcast_to(k_up, (24, 2))).all()
    assert (down.sum(axis=2) == np.broadcast_to(k_down, (24, 2))).all()


def test_topk_breaks_ties_towards_the_lower_column_index():
    scores = np.array([[1.0, 3.0, 3.0, 3.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    assert topk_rows(scores, 2).tolist() == [[False, True, True, False, False],
                                              [True, True, False, False, False]]
    assert topk_rows(scores, 5).all()


@pytest.mark.parametrize("decimals", [None, 1, 0])  # no ties, many ties, mostly ties
def test_topk_keeps_the_k_largest_ties_going_to_the_lower_index(decimals):
    rng = np.random.default_rng(2)
    scores = rng.random((40, 96)) * 4
    scores = scores if decimals is None else scores.round(decimals)
    for k in (1, 17, 48, 95):
        expected = np.zeros(scores.shape, bool)
        for i, row in enumerate(scores):  # the definition: sort by (-score, index), take k
            expected[i, np.lexsort((np.arange(96), -row))[:k]] = True
        assert (topk_rows(scores, k) == expected).all()
        assert all((topk_row(row, k) == expected[i]).all() for i, row in enumerate(scores))


def test_topk_of_a_row_does_not_depend_on_its_batch():
    scores = np.random.default_rng(1).random((50, 96)).round(1)  # many ties
    batched = topk_rows(scores, 20)
    assert all((topk_rows(scores[i:i + 1], 20)[0] == batched[i]).all() for i in range(50))
    assert all((topk_row(scores[i], 20) == batched[i]).all() for i in range(50))


def test_masks_are_applied_not_just_recorded(models, ids):
    loaded = models["qwen2"]
    with torch.no_grad():
        dense = loaded.model(torch.from_numpy(ids[0])[None]).logits
    logits, _, _ = run_masked(loaded, build_generator("dip", {"density": 0.3}, loaded.shape),
                              ids[0])
    assert not torch.allclose(logits, dense, atol=1e-3)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.8])
def test_cats_threshold_calibration_hits_its_keep_fraction_on_calibration_data(models, ids, keep):
    loaded = models["mistral"]
    generator = build_generator("cats", {"keep_fraction": keep}, loaded.shape)
    assert generator.needs_calibration
    calibrate(loaded, generator, ids)
    assert not generator.needs_calibration
    kept = [run_masked(loaded, generator, window)[2] for window in ids]  # down (W, L, I) each
    per_layer = np.concatenate(kept).mean(axis=(0, 2))  # (L,)
    assert np.abs(per_layer - keep).max() < 0.01


def test_dip_threshold_calibration_hits_both_keep_fractions(models, ids):
    loaded = models["llama"]
    generator = build_generator("dip", {"up_keep": 0.4, "down_keep": 0.3, "mode": "threshold"},
                                loaded.shape)
    calibrate(loaded, generator, ids)
    masks = [run_masked(loaded, generator, window) for window in ids]
    up = np.concatenate([m[1] for m in masks]).mean(axis=(0, 2))  # (L,)
    down = np.concatenate([m[2] for m in masks]).mean(axis=(0, 2))
    assert np.abs(up - 0.4).max() < 0.01 and np.abs(down - 0.3).max() < 0.01


def test_cats_trace_reads_gate_densely_and_up_by_rows(models, ids):
    loaded = models["llama"]
    generator = build_generator("cats", {"keep_fraction": 0.5}, loaded.shape)
    calibrate(loaded, generator, ids)
    window = score_window(loaded, generator, ids[0])
    arrays = generator.trace_masks(24, window.up, window.down)
    assert set(arrays) == {"up_rows", "gate", "down"}
    assert arrays["gate"].all() and (arrays["up_rows"] == arrays["down"]).all()


def test_glu_trace_reads_up_and_gate_densely(models, ids):
    loaded = models["llama"]
    generator = build_generator("glu", {"keep_fraction": 0.25}, loaded.shape)
    window = score_window(loaded, generator, ids[0])
    arrays = generator.trace_masks(24, window.up, window.down)
    assert arrays["up"].all() and arrays["down"].sum(axis=2).max() == 24


def test_dip_ca_with_gamma_one_gives_exactly_dips_masks(models, ids):
    loaded = models["phi3"]
    dip = build_generator("dip", {"density": 0.4}, loaded.shape)
    dip_ca = build_generator("dip_ca", {"density": 0.4, "gamma": 1.0, "fixed_top_n": 3,
                                        "warm_up": True}, loaded.shape)
    for window in ids:
        plain, ca = run_masked(loaded, dip, window), run_masked(loaded, dip_ca, window)
        assert (plain[1] == ca[1]).all() and (plain[2] == ca[2]).all()
        assert torch.equal(plain[0], ca[0])


def test_dip_density_fit_matches_the_reference_at_one_half():
    up, down = dip_keeps_from_density(0.5)
    assert (round(up, 3), round(down, 3)) == (0.574, 0.351)
    assert abs((2 * up + down) / 3 - 0.5) < 1e-12
    assert dip_keeps_from_density(1.0) == (1.0, 1.0)
    assert 0.0 <= dip_keeps_from_density(1e-5)[1] <= 1.0


@pytest.mark.parametrize("method,params,key", [
    ("dip", {"densty": 0.5}, "dip.densty"),
    ("dip", {"density": 1.5}, "dip.density"),
    ("dip", {"density": 0.5, "up_keep": 0.5}, "dip.density"),
    ("dip", {"up_keep": 0.5}, "dip.down_keep"),
    ("dip", {"up_keep": [0.5, 0.5, 0.5], "down_keep": 0.5}, "dip.up_keep"),
    ("dip", {"mode": "random"}, "dip.mode"),
    ("glu", {"density": 0.5}, "glu.density"),
    ("cats", {"density": 0.3}, "cats.density"),
    ("dense", {"density": 0.5}, "dense.density"),
    ("dip_ca", {"gamma": 2}, "dip_ca.gamma"),
    ("dip_ca", {"mode": "threshold"}, "dip_ca.mode"),
    ("dip_ca", {"cache_policy": "fifo"}, "dip_ca.cache_policy"),
    ("dip_ca", {"up_gate_capacity": 10}, "dip_ca.down_capacity"),
    ("dip_ca", {"up_gate_capacity": 100, "down_capacity": 10}, "dip_ca.up_gate_capacity"),
    ("dip_ca", {"cache_fraction": 0.5, "up_gate_capacity": 1, "down_capacity": 1},
     "dip_ca.cache_fraction"),
    ("nope", {}, "method"),
])
def test_bad_method_params_name_the_param(models, method, params, key):
    with pytest.raises(ConfigError) as err:
        build_generator(method, params, models["llama"].shape)
    assert err.value.key_path == key and err.value.allowed
