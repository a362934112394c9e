"""Errors name what the user typed (the flag, the file, the axis),
never an internal tag like `<api>` or `<cli>`."""
from __future__ import annotations

import copy

import pytest

from memsim.core.errors import ConfigError, user_input
from memsim.sweeps.spec import sweep_from_dict
from tests.badinput import expect_clean, run_cli
from tests.robust_inputs import SYNTH_SWEEP, finished_sweep, trace_file

CAT = "errors name what the user typed"  # its category in the bad-input tally (tests/badinput.py)


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> str:
    return str(trace_file(tmp_path_factory.mktemp("msg")))


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> str:
    return str(finished_sweep(tmp_path_factory.mktemp("msg_sweep")))


def _cases(trace: str, tmp: str) -> dict[str, tuple[list[str], str]]:
    out = f"{tmp}/t.npz"
    synth = ["trace", "synth", "--model", "smollm2-135m", "--out", out]
    calib = ["trace", "calibrate", "--from", trace, "--model", "smollm2-135m", "--seed", "0",
             "--out", out]
    sim = ["simulate", "--trace", trace]
    return {
        "simulate --hw": ([*sim, "--hw", "no-such-phone"], "--hw"),
        "simulate --trace": (["simulate", "--hw", "flagship", "--trace", f"{tmp}/none.npz"],
                             f"{tmp}/none.npz"),
        "simulate --model": ([*sim, "--hw", "flagship", "--model", "gpt-17"], "--model"),
        "simulate --model shape": ([*sim, "--hw", "flagship", "--model", "llama-3-8b"],
                                   "--model"),
        "simulate --layout": ([*sim, "--hw", "flagship", "--layout", f"{tmp}/none.npz"],
                              f"{tmp}/none.npz"),
        "simulate small DRAM": ([*sim, "--hw", "HW_TINY"], "tiny.yaml"),
        "synth --tokens 0": ([*synth, "--tokens", "0"], "--tokens"),
        "synth --tokens -3": ([*synth, "--tokens", "-3"], "--tokens"),
        "synth --sequences": ([*synth, "--tokens", "5", "--sequences", "2"], "--tokens"),
        "synth --sequences 0": ([*synth, "--tokens", "4", "--sequences", "0"], "--sequences"),
        "synth --seed": ([*synth, "--tokens", "4", "--seed", "-1"], "--seed"),
        "synth --prompt-len": ([*synth, "--tokens", "4", "--prompt-len", "-2"], "--prompt-len"),
        "synth --density 2": ([*synth, "--tokens", "4", "--density", "2"], "--density"),
        "synth --density nan": ([*synth, "--tokens", "4", "--density", "nan"], "--density"),
        "synth --model": (["trace", "synth", "--model", "gpt-17", "--tokens", "4", "--out",
                           out], "--model"),
        "calibrate --tokens": ([*calib, "--tokens", "0"], "--tokens"),
        "calibrate --density": ([*calib, "--tokens", "4", "--density", "0"], "--density"),
        "calibrate --model": (["trace", "calibrate", "--from", trace, "--model", "gpt-17",
                               "--tokens", "4", "--seed", "0", "--out", out], "--model"),
        "calibrate --from": (["trace", "calibrate", "--from", f"{tmp}/none.npz", "--model",
                              "smollm2-135m", "--tokens", "4", "--seed", "0", "--out", out],
                             "--from"),
        "layout --method": (["layout", "build", "--trace", trace, "--method", "magic",
                             "--out", out], "--method"),
        "trace info": (["trace", "info", f"{tmp}/none.npz"], f"{tmp}/none.npz"),
        "hw validate": (["hw", "validate", f"{tmp}/none.yaml"], "none.yaml"),
        "hw probe": (["hw", "probe", "no-such-phone"], "no-such-phone"),
        "plot": (["plot", f"{tmp}/no-results"], f"{tmp}/no-results"),
        "sweep file": (["sweep", f"{tmp}/none.yaml", "--out", f"{tmp}/o"], "none.yaml"),
        "eval --windows": (["eval", "--windows", "0", "--out", f"{tmp}/e"], "--windows"),
        "eval --method": (["eval", "--method", "magic", "--out", f"{tmp}/e"], "--method"),
        "eval --density": (["eval", "--method", "dip", "--density", "3", "--out", f"{tmp}/e"],
                           "--density"),
        "eval --dtype": (["eval", "--dtype", "float7", "--out", f"{tmp}/e"], "--dtype"),
        "finetune --steps": (["finetune", "--steps", "0", "--out", f"{tmp}/f"], "--steps"),
        "finetune --batch-size": (["finetune", "--batch-size", "0", "--out", f"{tmp}/f"],
                                  "--batch-size"),
        "finetune --lr": (["finetune", "--lr", "nan", "--out", f"{tmp}/f"], "--lr"),
        "finetune --target": (["finetune", "--target", "nose", "--out", f"{tmp}/f"],
                              "--target"),
        "finetune --density": (["finetune", "--method", "dip", "--density", "7", "--out",
                                f"{tmp}/f"], "--density"),
        "demo --workers": (["demo", "--workers", "0", "--out", f"{tmp}/d"], "--workers"),
        "plot --points": (["plot", "RESULTS", "--points", "p-nope"], "--points"),
        "plot --ppl-tolerance": (["plot", "RESULTS", "--ppl-tolerance", "-1"],
                                 "--ppl-tolerance"),
    }


NAMES = sorted(_cases("T", "D"))


@pytest.mark.parametrize("case", NAMES)
def test_a_cli_error_names_the_flag_or_file_the_user_typed(trace, results, tmp_path, case):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("name: tiny\nflash: {impl: simple, read_bandwidth_GBps: 1}\n"
                    "dram: {capacity_GB: 1.0e-6, read_bandwidth_GBps: 60, "
                    "write_bandwidth_GBps: 30}\ncompute: {units: {npu: {peak_TOPS: 10}}, "
                    "decode_unit: npu, prefill_unit: npu}\nprecision: {mlp_bits: 4, "
                    "attention_bits: 4, embedding_bits: 4, lm_head_bits: 4, kv_cache_bits: 16}\n")
    argv, needle = _cases(trace, str(tmp_path))[case]
    argv = [{"HW_TINY": str(tiny), "RESULTS": results}.get(a, a) for a in argv]
    run_cli(CAT, argv, needle)


AXES = {"hw.dram.capacity_GB": -1, "hw.dram.size_GB": 1, "cache.impl": "fifo",
        "cache.split": "half", "method": "magic", "density": 2, "dip_ca.gamma": 5,
        "dip_ca.fixed_top_n": -1, "trace.windows": 0, "trace.source": "dream",
        "trace.window_len": 1, "model": "gpt-17", "mode": "quantum", "adapter": 3,
        "hw.compute.decode_unit": "gpu", "hw.flash.impl": "tape", "hw.timing.kv_length": "max"}


@pytest.mark.parametrize("axis", sorted(AXES))
def test_every_axis_error_names_the_axis_as_typed(axis):
    data = copy.deepcopy(SYNTH_SWEEP)
    data["axes"] = {axis: [AXES[axis]]}
    exc = expect_clean(CAT, lambda: sweep_from_dict(data, source="sweep.yaml"),
                       f"axes.{axis}", "sweep.yaml")
    assert exc.key_path == f"axes.{axis}"


def test_an_error_raised_without_a_file_is_told_against_the_flag():
    with pytest.raises(ConfigError) as info:
        with user_input(key_path="--hw"):
            raise ConfigError("no such preset", source="<hw>", key_path="hw")
    assert str(info.value) == "--hw: no such preset"
    with pytest.raises(ConfigError) as info:  # one from a file keeps the file and its key
        with user_input(key_path="--hw"):
            raise ConfigError("bad", source="phone.yaml", key_path="dram.capacity_GB")
    assert str(info.value) == "phone.yaml: dram.capacity_GB: bad"
    assert str(ConfigError("bad", source="<api>")) == "bad"
    assert ConfigError("x", source="<cli>", key_path="--out").source == "<cli>"  # kept


@pytest.mark.parametrize("value", [123, None, 4.5, ["a.npz"], ""])
def test_api_readers_given_something_that_is_not_a_path_say_so(value):
    """The Python API too: a number or None where a file is expected is a ConfigError."""
    import memsim
    from memsim.hw import load_hw
    from memsim.hw.layouts import load_layout
    from memsim.sweeps import load_sweep, read_results
    from memsim.traces import Trace, load_model_shape

    for reader in (load_hw, Trace.load, load_model_shape, load_sweep, read_results,
                   load_layout, lambda v: memsim.simulate("flagship", None, v)):
        expect_clean(CAT, lambda: reader(value))
