"""LoRA adapters (workloads.lora) and `memsim finetune` (workloads.finetune) on tiny models.

One short training run (module fixture) is shared: a 2-layer Llama with hidden size 64,
trained for a few steps on four 32-token windows with DIP masks active.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import workloads
from memsim.core.errors import ConfigError
from memsim.traces.trace import Trace
from workloads import finetune as ft
from workloads import resumable
from workloads.corpus import Corpus, make_windows
from workloads.lora import (
    ADAPTER_WEIGHTS,
    FINETUNE_FILE,
    LoraSettings,
    adapter_param_count,
    add_adapter,
    target_modules,
    with_adapter,
)
from workloads.masked_mlp import masked
from workloads.masks import build_generator
from workloads.model import load_model
from workloads.testing import sample_text, save_tiny_checkpoint

WINDOW = 32


def tiny_corpus() -> Corpus:
    """Four 32-token training windows (so every step sees the same batch), and a test split."""
    return Corpus("tiny", {"train": [("a", sample_text(50, seed=1))],
                           "test": [("b", sample_text(200, seed=2))]})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    path = save_tiny_checkpoint(root / "llama", "llama")
    corpus = tiny_corpus()
    loaded = load_model(path, progress=False)
    num = len(make_windows(corpus, "train", loaded.tokenizer, WINDOW, None, 0).starts)
    assert num == 4, f"the training split should hold 4 windows, holds {num}"
    config = ft.FinetuneConfig(model=str(path), method="dip", method_params={"density": 0.5},
                               corpus="tiny", rank=4, steps=6, lr=2e-2, warmup_steps=1,
                               batch_size=4, window_len=WINDOW, checkpoint_every=2)
    out = root / "adapter"
    record = ft.finetune(config, out, model=loaded, corpus=corpus, progress=False)
    return {"root": root, "path": path, "corpus": corpus, "loaded": loaded, "config": config,
            "out": out, "record": record}


def logits(loaded, ids: torch.Tensor, generator=None) -> torch.Tensor:
    with torch.inference_mode():
        if generator is None:
            return loaded.model(input_ids=ids, use_cache=False).logits
        with masked(loaded, generator):
            return loaded.model(input_ids=ids, use_cache=False).logits


def test_fresh_adapter_wraps_every_projection_and_starts_as_the_identity(tiny):
    import copy

    base = tiny["loaded"]
    ids = torch.arange(1, 17)[None]
    before = logits(base, ids)
    adapted = add_adapter(copy.deepcopy(base), LoraSettings(rank=2))
    assert target_modules(adapted) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                       "up_proj", "down_proj"]
    assert type(adapted.mlps[0].mlp.gate_proj).__name__ == "Linear"  # peft's lora.Linear
    assert hasattr(adapted.mlps[0].mlp.gate_proj, "lora_A")
    assert torch.equal(logits(adapted, ids), before)  # B = 0 at init


def test_training_with_masks_active_lowers_the_masked_loss(tiny):
    losses = tiny["record"]["loss_curve"]  # every step trains on the same four windows
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.3
    kwargs = dict(corpus=tiny["corpus"], split="train", windows=4, window_len=WINDOW,
                  progress=False)
    plain = workloads.evaluate(tiny["loaded"], "dip", {"density": 0.5}, **kwargs)
    adapted = workloads.evaluate(tiny["loaded"], "dip", {"density": 0.5},
                                 adapter=tiny["out"], **kwargs)
    assert adapted.perplexity < 0.8 * plain.perplexity


def test_saved_adapter_round_trips_and_changes_the_output(tiny):
    from peft import get_peft_model_state_dict

    out, base = tiny["out"], tiny["loaded"]
    assert (out / ADAPTER_WEIGHTS).is_file() and (out / "adapter_config.json").is_file()
    assert not (out / resumable.CHECKPOINTS).exists()  # removed once the adapter is written
    saved = load_file(str(out / ADAPTER_WEIGHTS))
    first, second = with_adapter(base, out), with_adapter(base, out)
    loaded_state = get_peft_model_state_dict(first.model)
    assert saved.keys() == loaded_state.keys()
    assert all(torch.equal(saved[k], loaded_state[k]) for k in saved)
    ids = torch.arange(1, 17)[None]
    generator = build_generator("dip", {"density": 0.5}, base.shape)
    assert torch.equal(logits(first, ids, generator), logits(second, ids, generator))
    assert not torch.allclose(logits(first, ids), logits(base, ids), atol=1e-4)


def test_with_adapter_leaves_the_base_model_without_adapters(tiny):
    base = tiny["loaded"]
    ids = torch.arange(1, 17)[None]
    before = logits(base, ids)
    adapted = with_adapter(base, tiny["out"])
    assert adapter_param_count(base.model) == 0 and adapter_param_count(adapted.model) > 0
    assert adapted.mlps[0].mlp is not base.mlps[0].mlp  # the copy's MLPs, wrapped
    assert torch.equal(logits(base, ids), before)
    with pytest.raises(ConfigError, match="already has an adapter"):
        with_adapter(adapted, tiny["out"])


def test_adapter_of_another_model_shape_is_refused(tiny, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny["out"], other)
    record = json.loads((other / FINETUNE_FILE).read_text())
    record["model_shape"]["hidden_size"] = 128
    (other / FINETUNE_FILE).write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="hidden_size"):
        with_adapter(tiny["loaded"], other)


def test_resumed_run_ends_with_the_same_adapter_as_an_uninterrupted_one(tiny, monkeypatch):
    out = tiny["root"] / "resumed"
    real_save = ft.save_checkpoint

    def save_then_crash(*args):
        real_save(*args)
        raise KeyboardInterrupt  # as if killed right after the step-2 checkpoint

    monkeypatch.setattr(ft, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(tiny["config"], out, model=tiny["loaded"], corpus=tiny["corpus"],
                    progress=False)
    assert ft.latest_checkpoint(out).name == "step-000002"
    monkeypatch.setattr(ft, "save_checkpoint", real_save)
    record = ft.finetune(tiny["config"], out, model=tiny["loaded"], corpus=tiny["corpus"],
                         progress=False)
    assert record["resumed_at_steps"] == [2]
    assert record["loss_curve"] == tiny["record"]["loss_curve"]
    resumed, whole = load_file(str(out / ADAPTER_WEIGHTS)), \
        load_file(str(tiny["out"] / ADAPTER_WEIGHTS))
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)  # same seed, same adapter


def test_finished_run_is_returned_and_other_settings_are_refused(tiny):
    again = ft.finetune(tiny["config"], tiny["out"], model=tiny["loaded"],
                        corpus=tiny["corpus"], progress=False)
    assert again == json.loads((tiny["out"] / FINETUNE_FILE).read_text())
    with pytest.raises(ConfigError, match="rank"):
        ft.finetune(dataclasses.replace(tiny["config"], rank=8), tiny["out"],
                    model=tiny["loaded"], corpus=tiny["corpus"], progress=False)


def test_eval_trace_records_adapter_params_and_the_adapter_path(tiny, tmp_path):
    result = workloads.evaluate(tiny["loaded"], "dip", {"density": 0.5}, corpus=tiny["corpus"],
                                windows=2, window_len=WINDOW, progress=False,
                                adapter=tiny["out"], out_dir=tmp_path)
    # rank 4 x (in + out) per projection: q 64+64, k 64+32, v 64+32, o 64+64, gate and up
    # 64+96, down 96+64; two layers
    expected = 2 * 4 * (128 + 96 + 96 + 128 + 160 + 160 + 160)
    assert tiny["record"]["adapter_params"] == expected
    assert result.trace.adapter_params == expected
    assert Trace.load(tmp_path / "trace.npz").adapter_params == expected
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["adapter"] == str(tiny["out"].resolve()) and config["adapter_params"] == expected
    plain = workloads.evaluate(tiny["loaded"], "dense", corpus=tiny["corpus"], windows=2,
                               window_len=WINDOW, progress=False)
    assert plain.trace.adapter_params == 0 and plain.config["adapter"] is None


def test_sweep_task_evaluates_with_an_adapter_and_keeps_the_cached_base_clean(tiny, tmp_path):
    from workloads import sweep_task

    text = tmp_path / "text.txt"
    text.write_text(sample_text(400, seed=3))
    job = {"model": str(tiny["path"]), "method": "dip", "params": {"density": 0.5},
           "adapter": str(tiny["out"]),
           "trace": {"corpus": str(text), "windows": 2, "window_len": WINDOW, "seed": 0,
                     "split": None}}
    figures = sweep_task.evaluate_for_sweep(job, tmp_path / "with", None)
    plain = sweep_task.evaluate_for_sweep({**job, "adapter": "none"}, tmp_path / "without",
                                          None)
    assert figures["perplexity"] != plain["perplexity"]
    assert Trace.load(tmp_path / "with" / "trace.npz").adapter_params == \
        tiny["record"]["adapter_params"]
    assert Trace.load(tmp_path / "without" / "trace.npz").adapter_params == 0
    assert adapter_param_count(sweep_task._model(str(tiny["path"])).model) == 0


def test_threshold_methods_are_calibrated_before_training(tiny, tmp_path):
    config = dataclasses.replace(tiny["config"], method="cats",
                                 method_params={"keep_fraction": 0.5}, steps=2,
                                 calibration_windows=2)
    record = ft.finetune(config, tmp_path / "cats", model=tiny["loaded"],
                         corpus=tiny["corpus"], progress=False)
    assert record["calibration"] == {"split": "train", "num_windows": 2, "seed": 1}
    assert None not in record["method_params"]["thresholds"]
    assert len(record["loss_curve"]) == 2


def test_phi3_fused_projections_take_adapters(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "phi3", "phi3")
    loaded = load_model(path, progress=False)
    assert target_modules(loaded) == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    config = ft.FinetuneConfig(model=str(path), method_params={"density": 0.5}, corpus="tiny",
                               rank=2, steps=2, lr=2e-2, warmup_steps=0, batch_size=2,
                               window_len=WINDOW)
    record = ft.finetune(config, tmp_path / "adapter", model=loaded, corpus=tiny_corpus(),
                         progress=False)
    # rank 2 x (in + out): qkv 64+(64+2*32), o 64+64, gate_up 64+192, down 96+64; 2 layers
    assert record["adapter_params"] == 2 * 2 * (192 + 128 + 256 + 160)
    assert record["target_modules"] == sorted(["qkv_proj", "o_proj", "gate_up_proj",
                                               "down_proj"])
    result = workloads.evaluate(loaded, "dip", {"density": 0.5}, corpus=tiny_corpus(),
                                windows=2, window_len=WINDOW, progress=False,
                                adapter=tmp_path / "adapter")
    assert result.trace.adapter_params == record["adapter_params"]


@pytest.mark.parametrize("change,key", [
    ({"rank": 0}, "rank"), ({"alpha": 0}, "alpha"), ({"target": "ffn"}, "target"),
    ({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"batch_size": 0}, "batch_size"),
    ({"method": "nope"}, "method"), ({"method": "dip_ca"}, "method"),
    ({"method_params": {"density": 2}}, "dip.density"),
    ({"batch_size": 5}, "batch_size"),  # more than the 4 windows the split has
])
def test_bad_settings_are_errors_naming_the_key(tiny, tmp_path, change, key):
    with pytest.raises(ConfigError) as err:
        config = dataclasses.replace(tiny["config"], **change)
        ft.finetune(config, tmp_path / "out", model=tiny["loaded"], corpus=tiny["corpus"],
                    progress=False)
    assert err.value.key_path == key


def test_cli_trains_an_adapter_and_eval_uses_it(tiny, tmp_path, capsys):
    from workloads.cli import main as eval_main

    text = tmp_path / "text.txt"
    text.write_text(sample_text(50, seed=1))
    args = ["--model", str(tiny["path"]), "--density", "0.5", "--corpus", str(text),
            "--rank", "2", "--steps", "2", "--batch-size", "2", "--window-len", str(WINDOW),
            "--no-progress", "--out", str(tmp_path / "adapter")]
    assert ft.main(args) == 0
    assert "adapter params" in capsys.readouterr().out
    assert eval_main(["--model", str(tiny["path"]), "--method", "dip", "--density", "0.5",
                      "--corpus", str(text), "--windows", "2", "--window-len", str(WINDOW),
                      "--adapter", str(tmp_path / "adapter"), "--no-progress",
                      "--out", str(tmp_path / "eval")]) == 0
    assert "with adapter" in capsys.readouterr().out
    assert ft.main([*args[:-1], str(tmp_path / "adapter"), "--rank", "3"]) == 2
    assert "rank" in capsys.readouterr().err
    assert eval_main(["--model", str(tiny["path"]), "--adapter", str(tmp_path / "none"),
                      "--out", str(tmp_path / "eval2")]) == 2
    assert "not an adapter folder" in capsys.readouterr().err


def test_importing_the_finetune_cli_does_not_import_torch():
    code = ("import sys, argparse, workloads.finetune as f; "
            "f.add_finetune_arguments(argparse.ArgumentParser()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
