"""The real forward pass of a plain-FFN family (OPT: fc1, relu, fc2; no gate), on a tiny
random OPT the test saves itself: loaded as a plain FFN, dense masking is the model itself
bit for bit, DIP masks W_up columns by |x| and W_down columns by |h| exactly, and the trace
it records simulates with the plain shape."""
from __future__ import annotations

import pytest
import torch

import memsim
import workloads
from memsim.core.errors import ConfigError
from memsim.traces.trace import Trace
from workloads.masked_mlp import MaskRecorder, masked
from workloads.masks import build_generator
from workloads.model import PlainFFN, load_model
from workloads.testing import sample_text, save_tiny_checkpoint


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("opt")
    (root / "text.txt").write_text(sample_text(2000, seed=2))
    folder = save_tiny_checkpoint(root / "opt", "opt", seed=1)
    return {"loaded": load_model(folder, dtype="float64"), "text": root / "text.txt"}


def test_opt_loads_as_a_plain_ffn_with_its_config_shape(tiny):
    loaded = tiny["loaded"]
    assert loaded.shape.is_plain and loaded.shape.hidden_act == "relu"
    assert (loaded.shape.hidden_size, loaded.shape.intermediate_size) == (64, 96)
    assert all(isinstance(m, PlainFFN) for m in loaded.mlps) and len(loaded.mlps) == 2


def test_dense_masking_is_the_model_itself_bit_for_bit(tiny):
    loaded = tiny["loaded"]
    ids = torch.tensor([[3, 17, 42, 8, 99, 5]])
    with torch.no_grad():
        plain = loaded.model(input_ids=ids).logits
        with masked(loaded, build_generator("dense", {}, loaded.shape)):
            dense = loaded.model(input_ids=ids).logits
    assert torch.equal(plain, dense)


def test_dip_masks_w_up_columns_by_x_and_w_down_columns_by_h_exactly(tiny):
    loaded = tiny["loaded"]
    gen = build_generator("dip", {"up_keep": 0.25, "down_keep": 0.5}, loaded.shape)
    ffn = loaded.mlps[0]
    layer = loaded.model.get_decoder().layers[0]
    x = torch.randn(5, 64, dtype=torch.float64)  # OPT feeds fc1 (tokens, H)
    recorder = MaskRecorder(2)
    with torch.no_grad(), masked(loaded, gen, recorder):
        got = ffn.down_proj(layer.activation_fn(ffn.up(x)))
    w_up, w_down = ffn.weights()
    keep_x = torch.zeros_like(x, dtype=torch.bool).scatter_(
        1, x.abs().topk(16, dim=1).indices, True)  # 0.25 of 64
    h = torch.relu((x * keep_x) @ w_up.T + ffn.up.bias)
    keep_h = torch.zeros_like(h, dtype=torch.bool).scatter_(1, h.abs().topk(48, dim=1).indices,
                                                            True)  # 0.5 of 96
    want = (h * keep_h) @ w_down.T + ffn.down_proj.bias
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert recorder.up[0][0].sum(axis=1).tolist() == [16] * 5
    assert recorder.down[0][0].sum(axis=1).tolist() == [48] * 5


def test_evaluated_trace_has_the_plain_shape_and_simulates(tiny, tmp_path):
    result = workloads.evaluate(tiny["loaded"], "dip", {"density": 0.5},
                                corpus=str(tiny["text"]), out_dir=tmp_path, windows=2,
                                window_len=24, progress=False)
    trace = Trace.load(tmp_path / "trace.npz")
    assert trace.model.is_plain and [g.name for g in trace.groups()] == ["up", "down"]
    k_up, k_down = trace.method_params["k_up"][0], trace.method_params["k_down"][0]
    assert (k_up, k_down) == (37, 41)  # 0.574 of 64; 2 x 0.5 - 0.574 = 0.426 of 96
    assert trace.mlp_density().mean() == pytest.approx((37 / 64 + 41 / 96) / 2)
    assert result.perplexity > 1
    r = memsim.simulate("flagship", None, trace)
    assert r.tokens_per_s > 0 and r.flash_bytes_per_token > 0


def test_gate_methods_are_refused_for_a_plain_ffn_naming_the_method(tiny):
    for method in ("cats", "glu"):
        with pytest.raises(ConfigError) as err:
            build_generator(method, {}, tiny["loaded"].shape)
        assert err.value.key_path == "method" and "plain" in str(err.value)
