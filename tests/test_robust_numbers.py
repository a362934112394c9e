"""Absurd numbers: Values outside the documented ranges are refused
with the key and the range; every configuration inside them simulates without NaN or inf
and within the physical bounds; a trace too large for memory is refused before allocating.
"""
from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.core.errors import ConfigError
from memsim.hw.config import (ComputeUnitConfig, DramConfig, HardwareConfig, PrecisionConfig,
                              hw_from_dict)
from memsim.hw.flash.simple import SimpleFlash
from memsim.hw.flash.ufs import UfsFlash
from memsim.sim import simulate
from memsim.sweeps.spec import sweep_from_dict
from memsim.traces import ModelShape, Trace
from tests.badinput import expect_clean, record, run_cli
from tests.helpers import BASE_HW, UFS, merge

CAT = "absurd numbers"  # its category in the bad-input tally (tests/badinput.py)


# ---------------------------------------------------------------- refused
ABSURD = [("dram.capacity_GB", 1e300), ("dram.capacity_GB", 1e7), ("dram.capacity_GB", 0),
          ("dram.capacity_GB", -1e-300), ("dram.capacity_GB", math.nan),
          ("dram.capacity_GB", math.inf), ("dram.capacity_GB", 10 ** 400),
          ("dram.read_bandwidth_GBps", 5e-324), ("dram.read_bandwidth_GBps", 1e-7),
          ("dram.read_bandwidth_GBps", 1e300), ("dram.write_bandwidth_GBps", 5e-324),
          ("dram.read_energy_pJ_per_byte", 1e300), ("dram.read_energy_pJ_per_byte", -1),
          ("compute.units.npu.peak_TOPS", 1e-300), ("compute.units.npu.peak_TOPS", 1e300),
          ("compute.units.npu.efficiency", 5e-324), ("compute.units.npu.efficiency", 1.5),
          ("compute.units.npu.energy_pJ_per_op", 1e300),
          ("precision.mlp_bits", 1e-300), ("precision.kv_cache_bits", 0.5),
          ("precision.attention_bits", 64), ("flash.read_bandwidth_GBps", 5e-324),
          ("flash.read_bandwidth_GBps", 1e9), ("flash.latency_us", 1e300),
          ("flash.latency_us", -5e-324)]
UFS_ABSURD = [("flash.page_size_KiB", 1e-9), ("flash.page_size_KiB", 5e-324),
              ("flash.max_read_iops_K", 5e-324), ("flash.local_read_iops_K", 1e-300),
              ("flash.local_range_MiB", 5e-324), ("flash.far_range_GiB", 5e-324),
              ("flash.queue_depth", 10 ** 400), ("flash.queue_depth", 0),
              ("flash.random_read_bandwidth_GBps", 5e-324),
              ("flash.host_request_overhead_us", 1e300)]


def _with(data: dict, dotted: str, value) -> dict:
    out = merge(data, {})
    *parents, leaf = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[leaf] = value
    return out


@pytest.mark.parametrize("key,value", ABSURD + UFS_ABSURD)
def test_absurd_values_are_refused_naming_the_key_and_range(key, value):
    data = merge(BASE_HW, {"flash": UFS}) if (key, value) in UFS_ABSURD else BASE_HW
    exc = expect_clean(CAT, lambda: hw_from_dict(_with(data, key, value), source="phone.yaml"),
                       "phone.yaml", key)
    assert exc.allowed


@pytest.mark.parametrize("text", ["1e400", ".inf", "-.inf", ".nan", "0x1p-1074",
                                  "1" + "0" * 400])
def test_absurd_numbers_written_in_yaml_are_refused(tmp_path, text):
    path = tmp_path / "phone.yaml"
    import yaml
    path.write_text(yaml.safe_dump(BASE_HW).replace("capacity_GB: 1.0",
                                                    f"capacity_GB: {text}"))
    run_cli(CAT, ["hw", "validate", str(path)], "dram.capacity_GB")


def test_capacity_is_whole_bytes_rounded():
    assert DramConfig(capacity_GB=0.03, read_bandwidth_GBps=1,
                      write_bandwidth_GBps=1).capacity_bytes == 30_000_000
    dram = DramConfig(capacity_GB=5e-324, read_bandwidth_GBps=1, write_bandwidth_GBps=1)
    assert dram.capacity_bytes == 0 and isinstance(dram.capacity_bytes, int)


# ---------------------------------------------------------------- memory
@pytest.mark.parametrize("argv", [
    ["trace", "synth", "--model", "llama-3-8b", "--tokens", str(10 ** 9)],
    ["trace", "synth", "--model", "smollm2-135m", "--tokens", str(10 ** 15)],
    ["trace", "calibrate", "--from", "none.npz", "--model", "llama-3-8b", "--tokens",
     str(10 ** 9), "--seed", "0"]])
def test_a_trace_too_large_for_memory_is_refused_before_allocating(tmp_path, argv):
    run_cli(CAT, [*argv, "--out", str(tmp_path / "t.npz")], "--tokens", "GB of memory")
    assert not list(tmp_path.iterdir())


def test_a_sweep_whose_synthetic_trace_cannot_fit_is_refused_at_load():
    data = {"base": {"hw": "flagship", "model": "llama-3-8b",
                     "trace": {"source": "synthetic", "tokens": 10 ** 9, "windows": 4}}}
    expect_clean(CAT, lambda: sweep_from_dict(data, source="s.yaml"), "s.yaml",
                 "trace.tokens", "GB of memory")
    data = {"base": {"hw": "flagship", "model": "llama-3-8b",
                     "trace": {"source": "synthetic", "tokens": 8}},
            "axes": {"trace.windows": [1, 10 ** 12]}}
    expect_clean(CAT, lambda: sweep_from_dict(data, source="s.yaml"), "axes.trace.windows")


HUGE = str(10 ** 400)  # a pasted blob: no float holds it


@pytest.mark.parametrize("argv,flag", [
    (["trace", "synth", "--model", "phi-3-mini", "--tokens", HUGE], "--tokens"),
    (["trace", "synth", "--model", "phi-3-mini", "--tokens", "8", "--seed", HUGE], "--seed"),
    (["eval", "--windows", HUGE], "--windows"),
    (["eval", "--seed", HUGE], "--seed")])
def test_an_integer_flag_beyond_64_bits_is_refused(tmp_path, argv, flag):
    run_cli(CAT, [*argv, "--out", str(tmp_path / "out")], flag, "out of range")


@pytest.mark.parametrize("key", ["tokens", "windows", "window_len", "seed", "prompt_len"])
def test_an_integer_setting_beyond_64_bits_is_refused_at_load(key):
    """Each used to end in a traceback far downstream (memory check, DRAM plan, or, for the
    seed, the results table after every point had run)."""
    trace = {"source": "synthetic", "tokens": 8, key: 10 ** 400}
    data = {"base": {"hw": "flagship", "model": "phi-3-mini", "trace": trace}}
    expect_clean(CAT, lambda: sweep_from_dict(data, source="s.yaml"), "s.yaml",
                 f"trace.{key}", "64 bits")


# ---------------------------------------------------------------- inside the ranges
def _bounds(f: dataclasses.Field) -> tuple[float, float]:
    m = f.metadata
    low = m["ge"] if m.get("ge") is not None else m["gt"]
    return low, m["le"]


def _number(f: dataclasses.Field) -> st.SearchStrategy:
    """Edges and log-uniform draws across a float field's documented range."""
    low, high = _bounds(f)
    tiny = low if low > 0 else 5e-324
    edges = [high, tiny, math.nextafter(tiny, math.inf)]
    if f.metadata.get("ge") is not None:
        edges.append(low)
    log = st.floats(math.log10(max(tiny, 1e-300)), math.log10(high)).map(
        lambda e: min(high, max(tiny, 10 ** e)))
    return st.one_of(st.sampled_from(edges), log)


def _config(cls: type, skip: tuple = ()) -> st.SearchStrategy:
    """Random values for every bounded float / int field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip or "help" not in f.metadata:
            continue
        hint = hints[f.name]
        base = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if base[0] is float and f.metadata.get("le") is not None:
            fields[f.name] = _number(f)
        elif base[0] is int and f.metadata.get("le") is not None:
            fields[f.name] = st.integers(f.metadata["ge"], f.metadata["le"])
    return st.fixed_dictionaries(fields)


flash = st.one_of(_config(SimpleFlash).map(lambda d: {"impl": "simple", **d}),
                  _config(UfsFlash).map(lambda d: {"impl": "ufs", **d}),
                  st.just({**UFS, "merge_gap_KiB": math.inf}))
hardware = st.fixed_dictionaries({
    "flash": flash,
    "dram": _config(DramConfig),
    "unit": _config(ComputeUnitConfig),
    "precision": _config(PrecisionConfig),
    "ignore": st.booleans(),
    "placement": st.fixed_dictionaries({
        "attention": st.sampled_from(["resident", "streamed"]),
        "embedding": st.sampled_from(["resident", "streamed"]),
        "lm_head": st.sampled_from(["resident", "streamed"]),
        "mlp": st.sampled_from(["dynamic", "resident", "streamed"])}),
    "cache": st.fixed_dictionaries({"impl": st.sampled_from(["lru", "lfu", "belady", "none"]),
                                    "split": st.sampled_from(["equal", "proportional"]),
                                    "admit_overread": st.booleans()}),
    "timing": st.fixed_dictionaries({
        "flash_dram_concurrent": st.booleans(), "prefetch_next_layer": st.booleans(),
        "dram_writes": st.sampled_from(["costed", "free"]),
        "kv_length": st.sampled_from(["actual", "average"])}),
})


@st.composite
def workloads(draw):
    heads = draw(st.sampled_from([1, 2, 4]))
    model = ModelShape(name="m", num_hidden_layers=draw(st.integers(1, 3)),
                       hidden_size=heads * draw(st.integers(2, 24)),
                       intermediate_size=draw(st.integers(1, 200)), num_attention_heads=heads,
                       num_key_value_heads=draw(st.sampled_from([1, heads])),
                       vocab_size=draw(st.integers(1, 300)),
                       tie_word_embeddings=draw(st.booleans()))
    lengths = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    T, L, H, I = sum(lengths), model.num_hidden_layers, model.hidden_size, \
        model.intermediate_size
    density = draw(st.floats(0, 1))
    trace = Trace(up=rng.random((T, L, H)) < density, down=rng.random((T, L, I)) < density,
                  model=model, method="dip", sequence_lengths=tuple(lengths),
                  prompt_len=draw(st.integers(0, 64)))
    return model, trace


def _hw(d: dict) -> HardwareConfig:
    data = {"name": "random", "flash": d["flash"], "dram": d["dram"],
            "compute": {"units": {"npu": d["unit"]}, "decode_unit": "npu",
                        "prefill_unit": "npu", "ignore": d["ignore"]},
            "precision": d["precision"], "placement": d["placement"], "cache": d["cache"],
            "timing": d["timing"]}
    return hw_from_dict(data, source="random.yaml")


def _check_physical(result, hw: HardwareConfig) -> None:
    figures = {k: v for k, v in result.to_dict().items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    figures.update({f"breakdown.{k}": v for k, v in result.breakdown_s.items()})
    figures.update({f"busy.{k}": v for k, v in result.busy_s.items()})
    for name, value in figures.items():
        assert math.isfinite(value), (name, value)
        assert value >= 0, (name, value)
    assert all(math.isfinite(v) for vs in result.per_token.values() for v in vs)
    assert 0 <= result.hit_rate <= 1
    assert result.tokens_per_s > 0 and result.time_per_token_s > 0
    rel = 1 - 1e-9
    flash_bw = max(hw.flash.read_bandwidth_Bps,
                   (getattr(hw.flash, "random_read_bandwidth_GBps", None) or 0) * 1e9)
    assert result.time_per_token_s * flash_bw >= result.flash_bytes_per_token * rel
    assert result.time_per_token_s * hw.dram.read_bandwidth_Bps \
        >= result.dram_read_bytes_per_token * rel
    assert result.flash_device_bytes_per_token >= result.flash_bytes_per_token * rel
    assert result.dram_used_bytes <= hw.dram.capacity_bytes * (1 + 1e-9) + 1e-6
    if result.energy_per_token_J is not None:
        assert math.isfinite(result.energy_per_token_J) and result.energy_per_token_J >= 0


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(d=hardware, work=workloads(), mode=st.sampled_from(["event", "analytic"]))
def test_any_config_inside_the_documented_ranges_gives_finite_physical_results(d, work, mode):
    hw = _hw(d)
    model, trace = work
    try:
        result = simulate(hw, model, trace, mode=mode)
    except ConfigError as exc:  # the one refusal a valid config can meet: KV exceeds DRAM
        record(CAT, "clean")
        assert "exceeds DRAM" in str(exc), str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        record(CAT, "traceback")
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    try:
        _check_physical(result, hw)
    except AssertionError:
        record(CAT, "silent")  # a NaN, an inf or an unphysical number, reported as fine
        raise
    record(CAT, "clean")
