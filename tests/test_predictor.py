"""The predictor method (workloads/masks/predictor.py), its training (`memsim train-predictor`,
workloads/train_predictor.py) and its costs in memsim, on a tiny 2-layer Llama (H=64, I=96).

One short training run (module fixture) is shared: rank 8, density 0.5 (k = 48 neurons),
6 steps on 8 training windows of 32 tokens, recall on 3 held-out windows.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import memsim
import workloads
from memsim.core.errors import ConfigError
from memsim.traces import Trace
from workloads import train_predictor as tp
from workloads.corpus import Corpus, make_windows
from workloads.lora import ConstantMasks
from workloads.masked_mlp import MaskRecorder, masked
from workloads.masks import build_generator, keep_to_k
from workloads.masks.predictor import RECORD_FILE, WEIGHTS_FILE, predictor_param_count
from workloads.model import load_model
from workloads.testing import (
    TINY_PREDICTOR,
    sample_text,
    save_tiny_checkpoint,
    train_tiny_predictor,
    two_split_corpus,
)

WINDOW = TINY_PREDICTOR["window_len"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("predictor")
    path = save_tiny_checkpoint(root / "llama", "llama")
    loaded = load_model(path, progress=False)
    corpus = two_split_corpus()
    out = root / "pred"
    record = train_tiny_predictor(out, loaded, corpus=corpus)
    config = tp.PredictorTrainConfig(**record["config"])
    return {"root": root, "path": path, "loaded": loaded, "corpus": corpus, "out": out,
            "record": record, "config": config}


def evaluate(tiny, params=None, **kwargs):
    return workloads.evaluate(tiny["loaded"], "predictor",
                              {"predictor": str(tiny["out"]), **(params or {})},
                              corpus=tiny["corpus"], windows=2, window_len=WINDOW,
                              progress=False, **kwargs)


# ---------------------------------------------------------------- masks
@pytest.mark.parametrize("density", [0.3, 0.5])
def test_masks_keep_exactly_the_requested_neurons_every_token_and_layer(tiny, density):
    if density == 0.5:
        folder = tiny["out"]
    else:
        folder = tiny["root"] / f"pred-{density}"
        train_tiny_predictor(folder, tiny["loaded"], density=density, corpus=tiny["corpus"],
                             steps=2)
    result = workloads.evaluate(tiny["loaded"], "predictor", {"predictor": str(folder)},
                                corpus=tiny["corpus"], windows=2, window_len=WINDOW,
                                progress=False)
    k = int(keep_to_k(density, 96))
    neurons = result.trace.neurons  # (T, L, I)
    assert set(result.trace.words) == {"neurons"}  # no up / gate / up_rows / down masks
    assert (neurons.sum(axis=2) == k).all()
    assert result.mlp_density == pytest.approx(k / 96, abs=1e-12)
    assert result.mlp_density == pytest.approx(density, abs=0.5 / 96)


def test_predicted_neurons_are_the_topk_of_the_networks_scores(tiny):
    loaded, ids = tiny["loaded"], np.arange(1, 17)
    generator = build_generator("predictor", {"predictor": str(tiny["out"])}, loaded.shape)
    inputs, recorder = {}, MaskRecorder(2)
    hooks = [mlp.mlp.register_forward_pre_hook(
        lambda module, args, layer=layer: inputs.__setitem__(layer, args[0][0]))
        for layer, mlp in enumerate(loaded.mlps)]
    try:
        with torch.no_grad(), masked(loaded, generator, recorder):
            loaded.model(torch.from_numpy(ids)[None])
    finally:
        for hook in hooks:
            hook.remove()
    weights = load_file(str(tiny["out"] / WEIGHTS_FILE))
    down = recorder.stack(96, "down")  # (T, L, I): the neuron masks
    for layer in range(2):
        scores = inputs[layer] @ weights["reduce"][layer].T @ weights["expand"][layer].T  # (T, I)
        expected = torch.zeros_like(scores, dtype=torch.bool)
        expected.scatter_(1, scores.topk(48, dim=1).indices, True)
        assert torch.equal(torch.from_numpy(down[:, layer]), expected)


def test_neurons_the_predictor_drops_are_never_read(tiny):
    """Scrambling W_up/W_gate rows and W_down columns of neurons no token selected leaves
    the logits bit for bit: a dropped neuron contributes exactly nothing."""
    import copy

    loaded = tiny["loaded"]
    ids = torch.arange(3, 7)[None]  # 4 tokens: many neurons stay unselected by all
    generator = build_generator("predictor", {"predictor": str(tiny["out"])}, loaded.shape)
    recorder = MaskRecorder(2)
    with torch.no_grad(), masked(loaded, generator, recorder):
        before = loaded.model(ids).logits
    unused = ~recorder.stack(96, "down").any(axis=0)  # (L, I) never selected
    assert unused.sum() > 10
    scrambled = copy.deepcopy(loaded)
    with torch.no_grad():
        for layer, mlp in enumerate(scrambled.mlps):
            drop = torch.from_numpy(unused[layer])
            gate, up, down = mlp.weights()
            gate[drop] = 1e3
            up[drop] = -1e3
            down[:, drop] = 7.0
        with masked(scrambled, generator):
            after = scrambled.model(ids).logits
    assert torch.equal(before, after)


def test_masks_through_the_training_wrapper_are_the_same(tiny):
    loaded, ids = tiny["loaded"], torch.arange(1, 17)[None]
    generator = build_generator("predictor", {"predictor": str(tiny["out"])}, loaded.shape)
    with torch.no_grad():
        with masked(loaded, generator):
            plain = loaded.model(ids).logits
        with masked(loaded, ConstantMasks(generator)):
            wrapped = loaded.model(ids).logits
    assert torch.equal(plain, wrapped)


# ---------------------------------------------------------------- training and recall
def test_recall_equals_a_direct_computation(tiny):
    """Top-k recall per layer recomputed from scratch: the model's own modules, the
    safetensors weights, torch.topk."""
    loaded, record = tiny["loaded"], tiny["record"]
    k = record["k"]
    windows = make_windows(tiny["corpus"], "test", loaded.tokenizer, WINDOW,
                           TINY_PREDICTOR["recall_windows"], record["config"]["seed"] + 1)
    assert [list(w) for w in windows.starts] == record["recall"]["windows"]
    weights = load_file(str(tiny["out"] / WEIGHTS_FILE))
    hits, count = np.zeros(2), 0
    inputs = {}
    hooks = [mlp.mlp.register_forward_pre_hook(
        lambda module, args, layer=layer: inputs.__setitem__(layer, args[0].reshape(-1, 64)))
        for layer, mlp in enumerate(loaded.mlps)]
    try:
        with torch.no_grad():
            for window in windows.ids:
                loaded.model(torch.from_numpy(window)[None])
                for layer, mlp in enumerate(loaded.mlps):
                    x = inputs[layer]  # (W, H)
                    h = torch.nn.functional.silu(mlp.mlp.gate_proj(x)) * mlp.mlp.up_proj(x)
                    scores = x @ weights["reduce"][layer].T @ weights["expand"][layer].T
                    true = h.abs().topk(k, dim=1).indices
                    predicted = scores.topk(k, dim=1).indices
                    hits[layer] += sum(len(set(p.tolist()) & set(t.tolist()))
                                       for p, t in zip(predicted, true))
                count += window.size
    finally:
        for hook in hooks:
            hook.remove()
    direct = hits / (count * k)
    assert record["recall"]["per_layer"] == pytest.approx(direct.tolist(), abs=1e-12)
    assert record["recall"]["mean"] == pytest.approx(direct.mean(), abs=1e-12)
    assert record["recall"]["num_tokens"] == count


def test_training_lowers_the_loss_and_records_disjoint_data(tiny):
    record = tiny["record"]
    losses = record["loss_curve"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    data = record["data"]
    assert (data["train_split"], data["heldout_split"]) == ("train", "test")
    assert data["train_documents"] == ["a"] and data["heldout_documents"] == ["b"]
    assert data["num_train_tokens"] == 8 * WINDOW
    assert record["num_params"] == predictor_param_count(tiny["loaded"].shape, 8) \
        == 2 * 8 * (64 + 96)
    assert not (tiny["out"] / "checkpoints").exists()  # removed once the predictor is written


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tiny, monkeypatch):
    out = tiny["root"] / "resumed"
    real_save = tp.save_checkpoint

    def save_then_crash(*args):
        real_save(*args)
        raise KeyboardInterrupt  # as if killed right after the step-2 checkpoint

    monkeypatch.setattr(tp, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        tp.train_predictor(tiny["config"], out, model=tiny["loaded"], corpus=tiny["corpus"],
                           progress=False)
    assert tp.latest_checkpoint(out).name == "step-000002"
    with pytest.raises(ConfigError, match="not finished"):  # eval refuses it meanwhile
        evaluate({**tiny, "out": out})
    monkeypatch.setattr(tp, "save_checkpoint", real_save)
    record = tp.train_predictor(tiny["config"], out, model=tiny["loaded"],
                                corpus=tiny["corpus"], progress=False)
    assert record["resumed_at_steps"] == [2]
    assert record["loss_curve"] == tiny["record"]["loss_curve"]
    resumed, whole = load_file(str(out / WEIGHTS_FILE)), load_file(str(tiny["out"] /
                                                                        WEIGHTS_FILE))
    assert resumed.keys() == whole.keys()
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert record["recall"] == tiny["record"]["recall"]


def test_finished_run_is_returned_and_other_settings_are_refused(tiny):
    again = tp.train_predictor(tiny["config"], tiny["out"], model=tiny["loaded"],
                               corpus=tiny["corpus"], progress=False)
    assert again == json.loads((tiny["out"] / RECORD_FILE).read_text())
    with pytest.raises(ConfigError, match="rank"):
        tp.train_predictor(dataclasses.replace(tiny["config"], rank=4), tiny["out"],
                           model=tiny["loaded"], corpus=tiny["corpus"], progress=False)


@pytest.mark.parametrize("name,text", [
    (RECORD_FILE, '{"config": '), (RECORD_FILE, "[1, 2]"), (RECORD_FILE, '{"config": 3}'),
    (tp.RUN_FILE, "not json"), (tp.RUN_FILE, '"a string"'),
])
def test_a_damaged_record_or_settings_file_in_out_is_an_error_naming_it(tiny, tmp_path, name,
                                                                       text):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text(text)
    with pytest.raises(ConfigError) as err:
        tp.train_predictor(tiny["config"], out, model=tiny["loaded"], corpus=tiny["corpus"],
                           progress=False)
    assert err.value.source == str(out / name)


@pytest.mark.parametrize("change,key", [
    ({"rank": 0}, "rank"), ({"density": 0.0}, "density"), ({"density": 1.5}, "density"),
    ({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"batch_tokens": 0}, "batch_tokens"),
    ({"dtype": "int8"}, "dtype"), ({"split": "test", "heldout_split": "test"},
                                   "heldout_split"),
    ({"split": "nope"}, "split"), ({"heldout_split": "nope"}, "split"),
    ({"batch_tokens": 8 * WINDOW + 1}, "batch_tokens"),  # more than the training tokens
    ({"rank": 65}, "rank"),  # wider than the hidden size
])
def test_bad_settings_are_errors_naming_the_key(tiny, tmp_path, change, key):
    with pytest.raises(ConfigError) as err:
        config = dataclasses.replace(tiny["config"], **change)
        tp.train_predictor(config, tmp_path / "out", model=tiny["loaded"],
                           corpus=tiny["corpus"], progress=False)
    assert err.value.key_path == key


def test_a_corpus_without_a_heldout_split_is_refused_before_the_model_loads(tmp_path,
                                                                             monkeypatch):
    import workloads.model

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(workloads.model, "load_model", no_loading)
    text = tmp_path / "one.txt"
    text.write_text(sample_text(300))
    config = tp.PredictorTrainConfig(model="nowhere", corpus=str(text), density=0.5)
    with pytest.raises(ConfigError, match="no held-out split") as err:
        tp.train_predictor(config, tmp_path / "out", progress=False)
    assert err.value.key_path == "heldout_split"


# ---------------------------------------------------------------- evaluation errors
def test_eval_refuses_a_missing_folder_another_model_or_density_and_the_training_split(
        tiny, tmp_path):
    with pytest.raises(ConfigError, match="needs a trained predictor folder"):
        workloads.evaluate(tiny["loaded"], "predictor", {}, corpus=tiny["corpus"])
    with pytest.raises(ConfigError, match="no predictor folder"):
        evaluate({**tiny, "out": tmp_path / "nope"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no predictor.json"):
        evaluate({**tiny, "out": tmp_path / "empty"})
    with pytest.raises(ConfigError, match="trained for density 0.5, not 0.3") as err:
        evaluate(tiny, {"density": 0.3})
    assert err.value.key_path == "predictor.density"
    assert evaluate(tiny, {"density": 0.5}).mlp_density == 0.5
    with pytest.raises(ConfigError, match="trained on split 'train'") as err:
        evaluate(tiny, split="train")
    assert err.value.key_path == "split"
    other = save_tiny_checkpoint(tmp_path / "wide", "llama", intermediate_size=128)
    with pytest.raises(ConfigError, match="trained on model"):  # checked before loading
        workloads.evaluate(str(other), "predictor", {"predictor": str(tiny["out"])},
                           corpus=tiny["corpus"], progress=False)
    with pytest.raises(ConfigError, match="intermediate_size 96"):  # shapes differ
        build_generator("predictor", {"predictor": str(tiny["out"])},
                        load_model(other, progress=False).shape)


def test_eval_config_and_trace_record_the_predictor(tiny, tmp_path):
    result = evaluate(tiny, out_dir=tmp_path)
    params = result.config["resolved_method_params"]
    assert params["predictor"] == str(tiny["out"].resolve())
    assert params["rank"] == 8 and params["k"] == 48 and params["train_split"] == "train"
    assert result.config["split"] == "test"
    trace = Trace.load(tmp_path / "trace.npz")
    assert trace.predictor_params == tiny["record"]["num_params"] == 2560
    assert np.array_equal(trace.neurons, result.trace.neurons)


# ---------------------------------------------------------------- memsim's costs
def test_predictor_params_are_resident_in_dram_and_read_every_token(tiny):
    trace = evaluate(tiny).trace
    without = dataclasses.replace(trace, predictor_params=0)
    hw = memsim.load_hw("flagship")
    bits = hw.precision.predictor_bits
    predictor_bytes = trace.predictor_params * bits / 8
    with_p, without_p = memsim.simulate(hw, None, trace), memsim.simulate(hw, None, without)
    # plenty of DRAM: both caches hold every neuron, so only the predictor differs
    assert with_p.cache_capacity_columns == without_p.cache_capacity_columns
    assert with_p.dram_used_breakdown_bytes["resident_weights"] - \
        without_p.dram_used_breakdown_bytes["resident_weights"] == pytest.approx(predictor_bytes)
    assert with_p.dram_read_bytes_per_token - without_p.dram_read_bytes_per_token == \
        pytest.approx(predictor_bytes)
    assert with_p.ops_per_token - without_p.ops_per_token == \
        pytest.approx(2 * trace.predictor_params)
    assert with_p.tokens_per_s < without_p.tokens_per_s


def test_predictor_bytes_come_out_of_the_cache_budget(tiny):
    trace = evaluate(tiny).trace
    without = dataclasses.replace(trace, predictor_params=0)
    hw = memsim.load_hw("flagship")
    used = memsim.simulate(hw, None, without).dram_used_breakdown_bytes
    half_cache_bytes = used["resident_weights"] + used["kv"] + used["cache"] / 2
    tight = dataclasses.replace(hw, dram=dataclasses.replace(hw.dram,
                                                             capacity_GB=half_cache_bytes / 1e9))
    with_p, without_p = memsim.simulate(tight, None, trace), memsim.simulate(tight, None, without)
    neuron_bytes = 3 * 64 * hw.precision.mlp_bits / 8  # one bundle: W_up, W_gate rows, W_down col
    per_layer_bytes = trace.predictor_params * hw.precision.predictor_bits / 8 / 2
    lost = np.subtract(without_p.cache_capacity_columns["neurons"],
                       with_p.cache_capacity_columns["neurons"])  # (L,)
    assert (np.abs(lost - per_layer_bytes / neuron_bytes) <= 1).all() and (lost > 0).all()
    assert with_p.hit_rate < without_p.hit_rate


# ---------------------------------------------------------------- command line
def test_cli_trains_a_predictor_and_eval_uses_it(tiny, tmp_path, capsys, monkeypatch):
    import workloads.corpus
    import workloads.evaluation
    from memsim.cli import main as memsim_main

    real = workloads.corpus.load_corpus

    def load(spec="shakespeare", text_column="text"):  # `tiny` names the two-split corpus
        return tiny["corpus"] if spec == "tiny" else real(spec, text_column)

    monkeypatch.setattr(workloads.corpus, "load_corpus", load)
    monkeypatch.setattr(workloads.evaluation, "load_corpus", load)
    out, model = tmp_path / "pred", str(tiny["path"])
    args = ["train-predictor", "--model", model, "--corpus", "tiny", "--density", "0.5",
            "--rank", "4", "--steps", "2", "--train-windows", "4", "--window-len", str(WINDOW),
            "--batch-tokens", "32", "--recall-windows", "1", "--no-progress", "--out", str(out)]
    assert memsim_main(args) == 0
    printed = capsys.readouterr().out
    assert "held-out top-k recall" in printed and "per layer: 0:" in printed
    evaluation = ["eval", "--model", model, "--corpus", "tiny", "--method", "predictor",
                  "--predictor", str(out), "--windows", "2", "--window-len", str(WINDOW),
                  "--no-progress", "--out", str(tmp_path / "eval")]
    assert memsim_main(evaluation) == 0
    assert "MLP density 0.5000" in capsys.readouterr().out
    for argv, needle in [([*args, "--rank", "3"], "rank=4"),  # another run in the same --out
                         ([*args[:5], "--density", "2", *args[7:]], "density"),
                         ([*evaluation, "--density", "0.3"], "trained for density 0.5"),
                         ([*evaluation, "--predictor", str(tmp_path / "none")],
                          "no predictor folder")]:
        assert memsim_main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1


def test_importing_the_train_predictor_cli_does_not_import_torch():
    code = ("import sys, argparse, workloads.train_predictor as t, memsim.cli as c; "
            "t.add_train_predictor_arguments(argparse.ArgumentParser()); c.build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_summary_names_size_recall_and_time(tiny):
    text = tp.summary(tiny["record"], "OUT")
    assert "2,560 params" in text and "held-out top-k recall" in text
    assert "per layer: 0:" in text and "wrote OUT" in text


def test_training_windows_are_disjoint_from_the_default_eval_windows(tiny):
    corpus: Corpus = tiny["corpus"]
    train = {tuple(w) for w in tiny["record"]["data"]["train_windows"]}
    result = evaluate(tiny)
    evaluated = {(d, s) for d, s in result.config["windows"]}
    assert {d for d, _ in train} & {d for d, _ in evaluated} == set()
    assert result.config["split"] != tiny["record"]["data"]["train_split"]
    assert set(corpus.splits) == {"train", "test"}


def test_a_refused_rank_leaves_the_folder_free_for_the_corrected_command(tiny, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError):
        tp.train_predictor(dataclasses.replace(tiny["config"], rank=65), out,
                           model=tiny["loaded"], corpus=tiny["corpus"], progress=False)
    assert not (out / tp.RUN_FILE).exists()
    record = tp.train_predictor(tiny["config"], out, model=tiny["loaded"],
                                corpus=tiny["corpus"], progress=False)
    assert record["rank"] == tiny["config"].rank
