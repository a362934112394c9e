"""Model shapes: presets, derived sizes, and shapes read from a HF config.json."""
from __future__ import annotations

import json

import pytest

from memsim.core.errors import ConfigError
from memsim.traces.model_shape import MODEL_PRESETS, load_model_shape


def test_smollm2_shape_matches_its_card():
    m = load_model_shape("smollm2-135m")
    assert (m.num_hidden_layers, m.hidden_size, m.intermediate_size) == (30, 576, 1536)
    assert (m.num_attention_heads, m.num_key_value_heads, m.vocab_size) == (9, 3, 49152)
    assert m.num_params == pytest.approx(134.5e6, rel=0.01)  # the "135M"


@pytest.mark.parametrize("name,billions", [("phi-3-mini", 3.8), ("phi-3-medium", 14.0),
                                           ("llama-3-8b", 8.0), ("mistral-7b", 7.2)])
def test_preset_parameter_counts_match_model_names(name, billions):
    assert load_model_shape(name).num_params / 1e9 == pytest.approx(billions, rel=0.03)


def test_derived_sizes_follow_the_swiglu_shapes():
    m = load_model_shape("phi-3-medium")
    assert m.mlp_params_per_layer == 3 * 5120 * 17920
    assert m.head_dim == 128 and m.kv_values_per_token_per_layer == 2 * 10 * 128


def test_shape_from_hf_config_json(tmp_path):
    cfg = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
           "intermediate_size": 160, "num_attention_heads": 4, "vocab_size": 100}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    m = load_model_shape(str(tmp_path))
    assert m.num_key_value_heads == 4 and m.intermediate_size == 160


def test_unknown_model_lists_presets():
    with pytest.raises(ConfigError) as info:
        load_model_shape("gpt-5")
    assert all(name in str(info.value) for name in MODEL_PRESETS)
