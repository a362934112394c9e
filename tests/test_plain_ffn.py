"""Plain FFN models (no gate: OPT, Falcon): shapes read from their configs, traces over
neurons and over W_up / W_down columns, bundle sizes and costs by hand, the synthetic
generator's stated statistics."""
from __future__ import annotations

import numpy as np
import pytest

import memsim
from memsim.core.errors import ConfigError, TraceError
from memsim.sim.flash_reads import geometry
from memsim.sim.footprint import Footprint
from memsim.traces.model_shape import ModelShape, load_model_shape, model_from_hf_config
from memsim.traces.synth import synth_neuron_trace, synth_trace
from memsim.traces.trace import Trace
from tests.helpers import UFS, make_hw

# facebook/opt-6.7b and tiiuae/falcon-7b config.json (the keys that matter)
OPT_CONFIG = {"model_type": "opt", "activation_function": "relu", "ffn_dim": 16384,
              "hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
              "vocab_size": 50272, "word_embed_proj_dim": 4096}
FALCON_CONFIG = {"model_type": "falcon", "hidden_size": 4544, "multi_query": True,
                 "n_head": 71, "n_layer": 32, "parallel_attn": True, "vocab_size": 65024}
PLAIN = ModelShape(name="plain", num_hidden_layers=2, hidden_size=2048, intermediate_size=64,
                   num_attention_heads=16, num_key_value_heads=16, vocab_size=100,
                   mlp="plain", hidden_act="relu")


def test_configs_of_opt_and_falcon_read_as_the_presets():
    assert model_from_hf_config(OPT_CONFIG, "opt-6.7b") == load_model_shape("opt-6.7b")
    assert model_from_hf_config(FALCON_CONFIG, "falcon-7b") == load_model_shape("falcon-7b")


def test_plain_mlp_has_two_matrices_and_relu_llama_keeps_its_gate():
    opt = load_model_shape("opt-6.7b")
    assert opt.is_plain and opt.mlp_params_per_layer == 2 * 4096 * 16384
    assert opt.num_params == pytest.approx(6.65e9, rel=0.01)  # OPT-6.7B: 6.66 B with biases
    relu_llama = load_model_shape("relu-llama-7b")
    assert not relu_llama.is_plain and relu_llama.hidden_act == "relu"
    assert relu_llama.mlp_params_per_layer == 3 * 4096 * 11008


def test_swiglu_shapes_keep_their_old_dict():
    assert "mlp" not in load_model_shape("smollm2-135m").to_dict()
    assert load_model_shape("opt-6.7b").to_dict()["mlp"] == "plain"


def test_bad_mlp_kind_or_activation_is_named():
    for key, value in (("mlp", "swiglu"), ("hidden_act", "silu"), ("hidden_act", 3)):
        with pytest.raises(ConfigError) as err:
            ModelShape(**{**PLAIN.to_dict(), key: value})
        assert err.value.key_path == key


def test_gate_masks_are_refused_for_a_plain_mlp():
    T, L, H, I = 2, 2, 2048, 64
    with pytest.raises(TraceError) as err:
        Trace(up=np.ones((T, L, H), bool), gate=np.ones((T, L, H), bool),
              down=np.ones((T, L, I), bool), model=PLAIN)
    assert err.value.key_path == "gate"


def test_neuron_bundle_is_a_row_of_w_up_and_a_column_of_w_down():
    # fp16, H = 2048: a W_up row and a W_down column are 4 KiB each, the bundle 8 KiB
    hw = make_hw({"flash": UFS, "precision": {"mlp_bits": 16}})
    masks = np.zeros((1, 2, 64), bool)
    masks[0, :, [0, 2, 4]] = True  # three neurons, none adjacent, in each layer
    tr = Trace(neurons=masks, model=PLAIN, method="predictor")
    group = tr.groups()[0]
    assert (group.name, group.vector_weights, group.num_matrices) == ("neurons", 2048, 2)
    fp = Footprint.of(PLAIN, hw)
    assert fp.vector_bytes(group.vector_weights, group.num_matrices) == 8192
    bundled = geometry(hw, group, 8192, None)
    apart = geometry(make_hw({"flash": {**UFS, "bundle_up_gate": False},
                              "precision": {"mlp_bits": 16}}), group, 8192, None)
    assert (bundled.regions, bundled.slot_bits) == (1, 8192 * 8)
    assert (apart.regions, apart.slot_bits) == (2, 4096 * 8)


def test_plain_neuron_costs_by_hand():
    # 3 neurons per layer, 2 layers, nothing cached: 6 bundles of 8 KiB from flash; bundled
    # that is 6 requests of 2 pages, apart 12 requests of 1 page; ops 2 x 3 x 2 x 2048 per layer
    masks = np.zeros((1, 2, 64), bool)
    masks[0, :, [0, 2, 4]] = True
    tr = Trace(neurons=masks, model=PLAIN, method="predictor")
    base = {"precision": {"mlp_bits": 16}, "cache": {"impl": "none"}}
    results = {}
    for bundled in (True, False):
        hw = make_hw(base, {"flash": {**UFS, "bundle_up_gate": bundled}})
        results[bundled] = memsim.simulate(hw, None, tr)
        mlp_only = memsim.simulate(make_hw(base, {"flash": {**UFS, "bundle_up_gate": bundled},
                                                  "placement": {"mlp": "resident"}}), None, tr)
        r = results[bundled]
        assert r.flash_bytes_per_token - mlp_only.flash_bytes_per_token == 6 * 8192
        assert r.flash_device_bytes_per_token - mlp_only.flash_device_bytes_per_token == 6 * 8192
        requests = r.flash_requests_per_token - mlp_only.flash_requests_per_token
        assert requests == (6 if bundled else 12)
        none = Trace(neurons=np.zeros_like(masks), model=PLAIN, method="predictor")
        no_mlp = memsim.simulate(hw, None, none)
        # 2 layers x 3 neurons x (a row of W_up + a column of W_down) x 2048 MACs x 2 ops
        assert r.ops_per_token - no_mlp.ops_per_token == 2 * 3 * 2 * 2048 * 2
    assert results[True].busy_s["flash"] < results[False].busy_s["flash"]


def test_dip_on_a_plain_mlp_masks_w_up_alone_and_density_is_the_mean_of_two():
    tr = synth_trace(PLAIN, 8, 0.5, seed=0)
    up, down = tr.groups()
    assert (up.name, up.num_matrices, down.name) == ("up", 1, "down")
    k_up, k_down = tr.column_counts("up")[0, 0], tr.column_counts("down")[0, 0]
    assert tr.mlp_density()[0, 0] == pytest.approx((k_up / 2048 + k_down / 64) / 2)
    assert tr.mlp_density().mean() == pytest.approx(0.5, abs=0.02)


def test_synthetic_neuron_trace_has_the_stated_statistics():
    model = load_model_shape("opt-6.7b")
    tr = synth_neuron_trace(model, 24, 0.10, 0.76, 5, seed=1, num_sequences=2)
    masks = tr.neurons  # (T, L, I)
    n = round(0.10 * 16384)
    assert (masks.sum(axis=2) == n).all()
    for start in (0, 12):
        for t in range(start + 1, start + 12):
            window = masks[max(start, t - 5):t].any(axis=0)
            reused = (masks[t] & window).sum(axis=1)
            assert (reused == round(0.76 * n)).all()


def test_synthetic_neuron_trace_refuses_bad_statistics():
    model = load_model_shape("opt-6.7b")
    for kwargs in ({"active_fraction": 0.0}, {"reuse_share": 1.5}, {"window_tokens": 0}):
        args = {"active_fraction": 0.1, "reuse_share": 0.5, "window_tokens": 5, **kwargs}
        with pytest.raises(ValueError):
            synth_neuron_trace(model, 4, **args)


def test_calibrated_generator_draws_plain_and_neuron_traces_at_the_stated_density():
    from memsim.traces.calibrated import calibrate, generate
    from tests.helpers import TINY as source_model  # 2 layers: a quick fit
    dip = calibrate(synth_trace(source_model, 32, 0.5, seed=0, num_sequences=2))
    opt = PLAIN
    plain = generate(dip, opt, 4, seed=0, density=0.3)
    assert [g.name for g in plain.groups()] == ["up", "down"]
    assert plain.mlp_density().mean() == pytest.approx(0.3, abs=5e-3)  # (up + down) / 2, 64 columns
    neurons = calibrate(synth_neuron_trace(source_model, 32, 0.2, 0.7, 5, seed=0,
                                           num_sequences=2))
    drawn = generate(neurons, opt, 4, seed=0)
    assert drawn.groups()[0].num_matrices == 2  # row of W_up + column of W_down
    assert drawn.mlp_density().mean() == pytest.approx(0.2, abs=0.02)
