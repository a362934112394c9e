"""DIP-CA sized by a hardware file sees exactly the hits memsim's simulator replays."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

import workloads
from memsim.hw.config import hw_from_dict
from memsim.sim.costs import cache_outcome
from memsim.sim.footprint import Footprint
from memsim.sim.plan import kv_budget_tokens, resident_weight_bytes
from memsim.sim.simulator import _kv_budget_tokens, plan_dram
from tests.helpers import BASE_HW, merge
from workloads.model import load_model
from workloads.testing import sample_text, save_tiny_checkpoint, single_thread


@pytest.mark.parametrize("kv_length", ["actual", "average"])
def test_dip_ca_masking_hits_equal_the_simulators_replay(tmp_path, kv_length):
    (tmp_path / "text.txt").write_text(sample_text(2000, seed=3))
    with single_thread():
        loaded = load_model(save_tiny_checkpoint(tmp_path / "llama", "llama"))
        shape = loaded.shape
        probe = hw_from_dict(merge(BASE_HW, {"timing": {"kv_length": kv_length}}))
        fp = Footprint.of(shape, probe)
        kv_tokens = kv_budget_tokens(probe, 0, 32)
        static = resident_weight_bytes(probe, shape, fp) + kv_tokens \
            * fp.kv_bytes_per_token_per_layer * shape.num_hidden_layers
        mlp = shape.num_hidden_layers * fp.mlp_bytes_per_layer
        data = merge(BASE_HW, {"dram": {"capacity_GB": (static + 0.4 * mlp) / 1e9},
                               "timing": {"kv_length": kv_length}})
        (tmp_path / "hw.yaml").write_text(yaml.safe_dump(data))
        result = workloads.evaluate(loaded, "dip_ca", {"density": 0.5, "gamma": 0.2},
                                    corpus=str(tmp_path / "text.txt"), windows=3,
                                    window_len=32, progress=False, hw=str(tmp_path / "hw.yaml"))
    hw, trace = hw_from_dict(data), result.trace
    plan = plan_dram(hw, shape, trace.groups(), _kv_budget_tokens(hw, trace))
    caps = trace.method_params["up_gate_capacity"]
    assert 0 < min(caps) < shape.hidden_size  # a real, partial cache
    assert [c.tolist() for c in plan.capacities] == [caps, trace.method_params["down_capacity"]]
    replayed = cache_outcome(hw, trace, plan).hits
    np.testing.assert_array_equal(replayed, result.cache_hits)
