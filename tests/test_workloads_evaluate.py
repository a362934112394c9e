"""workloads.evaluate and the `memsim eval` command line (tiny model, tiny text corpus)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import workloads
from memsim.traces.trace import Trace
from workloads.cli import add_eval_arguments, main, method_params
from workloads.corpus import Corpus
from workloads.model import load_model
from workloads.testing import sample_text, save_tiny_checkpoint

RUN = dict(windows=3, window_len=32, progress=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    (root / "text.txt").write_text(sample_text(3000, seed=5))
    return {"dir": save_tiny_checkpoint(root / "llama", "llama"), "text": root / "text.txt"}


@pytest.fixture(scope="module")
def loaded(tiny):
    return load_model(tiny["dir"])


def test_evaluate_writes_results_config_and_a_trace_that_round_trips(loaded, tiny, tmp_path):
    result = workloads.evaluate(loaded, "dip", {"density": 0.5}, corpus=str(tiny["text"]),
                                out_dir=tmp_path, **RUN)
    assert {p.name for p in tmp_path.iterdir()} == {"trace.npz", "config.json", "results.json"}
    trace = Trace.load(tmp_path / "trace.npz")
    assert trace.sequence_lengths == (32, 32, 32) and trace.source == "workloads"
    assert trace.method == "dip" and trace.method_params["k_up"] == [37, 37]  # 0.574 of 64
    assert (trace.up == result.trace.up).all() and (trace.down == result.trace.down).all()
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["num_windows"], config["window_len"], config["stride"], config["seed"]) \
        == (3, 32, 32, 0) and len(config["windows"]) == 3
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["perplexity"] == result.perplexity and result.num_scored_tokens == 3 * 31
    assert np.isclose(result.nll_per_token, np.log(result.perplexity))


def test_same_seed_gives_the_same_numbers(loaded, tiny):
    runs = [workloads.evaluate(loaded, "dip_ca", {"density": 0.5}, corpus=str(tiny["text"]),
                               seed=seed, **RUN) for seed in (3, 3, 4)]
    assert runs[0].perplexity == runs[1].perplexity
    assert (runs[0].trace.up == runs[1].trace.up).all()
    assert runs[0].config["windows"] != runs[2].config["windows"]


def test_reported_density_is_the_traces_mlp_density(loaded, tiny):
    result = workloads.evaluate(loaded, "dip", {"up_keep": 0.5, "down_keep": 0.25},
                                corpus=str(tiny["text"]), **RUN)
    expected = (2 * 0.5 + 0.25) / 3
    assert np.allclose(result.mlp_density_per_layer, expected) and len(
        result.mlp_density_per_layer) == 2


def test_dense_perplexity_is_below_a_sparse_ones(loaded, tiny):
    dense = workloads.evaluate(loaded, "dense", corpus=str(tiny["text"]), **RUN)
    sparse = workloads.evaluate(loaded, "dip", {"density": 0.2}, corpus=str(tiny["text"]), **RUN)
    assert dense.mlp_density == 1.0 and sparse.mlp_density < 0.25
    assert dense.perplexity != sparse.perplexity


def test_thresholds_calibrate_on_the_train_split(loaded):
    corpus = Corpus("two", {"train": [("a", sample_text(2000, 1))],
                            "test": [("b", sample_text(2000, 2))]})
    result = workloads.evaluate(loaded, "cats", {"keep_fraction": 0.5}, corpus=corpus, **RUN)
    assert result.config["split"] == "test"
    assert result.config["calibration"]["split"] == "train"
    assert None not in result.trace.method_params["thresholds"]
    assert result.trace.groups()[0].name == "up_rows"


def test_dip_ca_reports_hit_rates_and_writes_its_hits(loaded, tiny, tmp_path):
    result = workloads.evaluate(loaded, "dip_ca", {"density": 0.5, "gamma": 0.0},
                                corpus=str(tiny["text"]), out_dir=tmp_path, **RUN)
    assert set(result.cache_hit_rate) == {"up_gate", "down"}
    assert 0 < result.cache_hit_rate["up_gate"] < 1
    with np.load(tmp_path / "cache_hits.npz") as data:
        assert (data["cache_hits"] == result.cache_hits).all()
    assert result.trace.method_params["up_gate_capacity"] == [32, 32]


def test_hw_config_sets_dip_ca_cache_policy_and_capacities(loaded, tiny):
    config = pytest.importorskip("memsim.hw.config")
    from memsim.sim.plan import cache_capacities
    from workloads.evaluation import _dip_groups

    preset = config.list_presets()[0]
    result = workloads.evaluate(loaded, "dip_ca", {"density": 0.5}, corpus=str(tiny["text"]),
                                hw=preset, **RUN)
    caps = cache_capacities(config.load_hw(preset), loaded.shape,
                            _dip_groups({"density": 0.5}, loaded), kv_tokens=16)
    params = result.trace.method_params
    assert params["up_gate_capacity"] == caps[0].tolist()
    assert params["down_capacity"] == caps[1].tolist()
    assert params["cache_policy"] == config.load_hw(preset).cache.impl


def test_cli_runs_an_evaluation(tiny, tmp_path, capsys):
    code = main(["--model", str(tiny["dir"]), "--method", "dip", "--up-keep", "0.5,0.25",
                 "--down-keep", "0.5", "--corpus", str(tiny["text"]), "--windows", "2",
                 "--window-len", "16", "--no-progress", "--out", str(tmp_path)])
    assert code == 0 and "perplexity" in capsys.readouterr().out
    trace = Trace.load(tmp_path / "trace.npz")
    assert trace.method_params["k_up"] == [32, 16]


def test_cli_reports_loading_and_evaluating_time_and_a_cache_holding_everything(
        tiny, tmp_path, capsys):
    code = main(["--model", str(tiny["dir"]), "--method", "dip_ca", "--density", "0.5",
                 "--hw", "flagship", "--corpus", str(tiny["text"]), "--windows", "2",
                 "--window-len", "16", "--no-progress", "--out", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and " s loading + " in out[0] and " s evaluating" in out[0]
    assert len(out) == 2 and out[1].startswith("note: flagship gives DIP-CA caches that hold "
                                               "every MLP column")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["load_s"] > 0 and saved["eval_s"] > 0
    assert saved["wall_s"] == pytest.approx(saved["load_s"] + saved["eval_s"])


@pytest.mark.parametrize("argv,needle", [
    (["--method", "nope"], "unknown mask generator"),
    (["--method", "dense", "--density", "0.5"], "--density: unknown parameter"),
    (["--method", "dip", "--density", "2"], "--density: bad value 2"),
    (["--method", "dip", "--windows", "0"], "--windows"),
    (["--method", "dip_ca", "--param", "gama=0.5"], "--param gama: unknown parameter"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(tiny, tmp_path, capsys, argv, needle):
    code = main(["--model", str(tiny["dir"]), "--corpus", str(tiny["text"]), "--window-len",
                 "16", "--no-progress", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("memsim eval:")]
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_cli_missing_model_is_exit_code_2(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "no model called" in capsys.readouterr().err


def test_cli_params_pass_only_what_was_given():
    import argparse

    args = add_eval_arguments(argparse.ArgumentParser()).parse_args(
        ["--out", "x", "--gamma", "0.3", "--warm-up", "--param", "fixed_top_n=4"])
    assert method_params(args) == {"gamma": 0.3, "warm_up": True, "fixed_top_n": 4}


def test_importing_the_cli_does_not_import_torch():
    code = ("import sys, argparse, workloads.cli as c; "
            "c.add_eval_arguments(argparse.ArgumentParser()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
