"""YAML and JSON: A key given twice is an error (it used to silently
replace the first, in hardware configs and sweep files); unreadable, non-UTF-8, empty or
malformed files, and a malformed model config.json, are clean errors naming the file."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.core.errors import ConfigError
from memsim.hw.config import hw_from_dict, load_hw
from memsim.sweeps.spec import load_sweep, sweep_from_dict
from memsim.traces.model_shape import MODEL_PRESETS, load_model_shape
from tests.badinput import expect_clean, record, run_cli
from tests.helpers import BASE_HW

CAT = "YAML and JSON"  # its category in the bad-input tally (tests/badinput.py)
HW_TEXT = yaml.safe_dump(BASE_HW, sort_keys=False)
SWEEP = {"name": "s", "base": {"hw": "flagship", "model": "smollm2-135m",
                               "trace": {"source": "synthetic", "tokens": 8, "windows": 1}},
         "axes": {"hw.dram.capacity_GB": [0.03, 0.05], "method": ["dip"]}}

HW_DUPLICATES = {
    "top-level key": HW_TEXT + "name: other-phone\n",
    "dram key": HW_TEXT.replace("  capacity_GB: 1.0\n",
                                "  capacity_GB: 1.0\n  capacity_GB: 2.0\n"),
    "compute unit": HW_TEXT.replace("    npu:\n", "    npu:\n      peak_TOPS: 1\n", 1)
                           .replace("      peak_TOPS: 10.0\n", "      peak_TOPS: 10.0\n"
                                    "    npu:\n      peak_TOPS: 20\n"),
    "flow mapping": "name: x\nflash: {impl: simple, impl: ufs}\n",
    "same number twice": "name: x\n1: a\n1.0: b\n",
}


@pytest.mark.parametrize("case", sorted(HW_DUPLICATES))
def test_a_key_given_twice_in_a_hardware_file_is_an_error_naming_file_and_lines(tmp_path,
                                                                                 case):
    path = tmp_path / "phone.yaml"
    path.write_text(HW_DUPLICATES[case])
    exc = expect_clean(CAT, lambda: load_hw(path), str(path), "appears twice")
    assert "lines" in str(exc)


def _sweep_text(**replace: str) -> str:
    text = yaml.safe_dump(SWEEP, sort_keys=False)
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


SWEEP_DUPLICATES = {
    "axis twice": ("axes:\n", "axes:\n  method: [dense]\n"),
    "base key twice": ("  model: smollm2-135m\n", "  model: smollm2-135m\n  model: phi-3-mini\n"),
    "top key twice": ("name: s\n", "name: s\nname: t\n"),
}


@pytest.mark.parametrize("case", sorted(SWEEP_DUPLICATES))
def test_a_key_given_twice_in_a_sweep_file_is_an_error(tmp_path, case):
    old, new = SWEEP_DUPLICATES[case]
    path = tmp_path / "sweep.yaml"
    path.write_text(_sweep_text(**{old: new}))
    expect_clean(CAT, lambda: load_sweep(path), str(path), "appears twice")


@pytest.mark.parametrize("short,full", [("cache.impl", "hw.cache.impl"),
                                        ("cache.split", "hw.cache.split")])
def test_an_axis_given_by_its_short_and_its_long_name_is_an_error(short, full):
    data = copy.deepcopy(SWEEP)
    data["axes"].update({short: ["lru"] if "impl" in short else ["equal"],
                         full: ["lfu"] if "impl" in short else ["proportional"]})
    expect_clean(CAT, lambda: sweep_from_dict(data, source="s.yaml"), "s.yaml", "same axis")


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    cases = {"not UTF-8": b"name: caf\xe9\n", "empty": b"", "only a comment": b"# nothing\n",
             "syntax error": b"name: [unclosed\n", "a list": b"- 1\n- 2\n",
             "a scalar": b"just text\n", "a python tag": b"name: !!python/object:os.system x\n",
             "tabs": b"name:\tx\n\tflash: 1\n", "binary": bytes(range(256))}
    out = {}
    for case, data in cases.items():
        path = tmp_path / f"{case.replace(' ', '_')}.yaml"
        path.write_bytes(data)
        out[case] = path
    out["a folder"] = tmp_path / "folder.yaml"
    out["a folder"].mkdir()
    return out


BAD_FILES = ["not UTF-8", "empty", "only a comment", "syntax error", "a list", "a scalar",
             "a python tag", "tabs", "binary", "a folder"]


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_malformed_hardware_or_sweep_file_is_named(tmp_path, case):
    path = _bad_files(tmp_path)[case]
    if case != "a folder":  # a folder is not a file: memsim looks for a preset of that name
        expect_clean(CAT, lambda: load_hw(path), str(path))
    expect_clean(CAT, lambda: load_sweep(path), str(path))
    run_cli(CAT, ["hw", "validate", str(path)], str(path.name))
    run_cli(CAT, ["sweep", str(path), "--out", str(tmp_path / "o")], str(path))


def test_an_unreadable_file_is_named(tmp_path):
    """Mode 000 (root reads it anyway: then it is read, and its content judged)."""
    path = tmp_path / "secret.yaml"
    path.write_text("name: [\n")
    os.chmod(path, 0)
    try:
        expect_clean(CAT, lambda: load_sweep(path), str(path))
    finally:
        os.chmod(path, 0o600)


CONFIG = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 96,
          "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}
CONFIG_CASES = {
    "bad JSON": b"{\"hidden_size\": 64,",
    "a list": b"[1, 2, 3]",
    "a string": b"\"llama\"",
    "not UTF-8": b"{\"name\": \"caf\xe9\"}",
    "empty": b"",
    "size as a string": json.dumps({**CONFIG, "hidden_size": "64"}).encode(),
    "size as a float": json.dumps({**CONFIG, "hidden_size": 64.5}).encode(),
    "size as a bool": json.dumps({**CONFIG, "num_hidden_layers": True}).encode(),
    "negative size": json.dumps({**CONFIG, "vocab_size": -5}).encode(),
    "absurd size": json.dumps({**CONFIG, "intermediate_size": 10 ** 40}).encode(),
    "missing size": json.dumps({k: v for k, v in CONFIG.items() if k != "hidden_size"}).encode(),
    "heads not a multiple": json.dumps({**CONFIG, "num_key_value_heads": 3}).encode(),
    "text_config a list": json.dumps({"text_config": [1]}).encode(),
    "NaN": b"{\"hidden_size\": NaN}",
    "tied as text": json.dumps({**CONFIG, "tie_word_embeddings": "yes"}).encode(),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_a_malformed_model_config_json_is_named(tmp_path, case):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_bytes(CONFIG_CASES[case])
    expect_clean(CAT, lambda: load_model_shape(str(folder)), "config.json")
    run_cli(CAT, ["trace", "synth", "--model", str(folder), "--tokens", "2", "--out",
                  str(tmp_path / "t.npz")], "config.json")
    assert not (tmp_path / "t.npz").exists()


# ---------------------------------------------------------------- random structures
leaves = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                   st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _paths(data, prefix=()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))


def _mutate(data: dict, path: tuple, action: str, leaf) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    if action == "replace":
        node[path[-1]] = leaf
    elif action == "delete":
        del node[path[-1]]
    else:
        node[f"{path[-1]}_extra"] = leaf
    return data


def _clean_or_valid(fn) -> None:
    try:
        fn()
    except ConfigError as exc:
        record(CAT, "clean")
        assert "<api>" not in str(exc)
    except Exception as exc:  # noqa: BLE001
        record(CAT, "traceback")
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    # a mutation may still be a valid config (a changed default): not a bad input


HW_PATHS = list(_paths(BASE_HW))
SWEEP_PATHS = list(_paths(SWEEP))
FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(path=st.sampled_from(HW_PATHS), action=st.sampled_from(["replace", "delete", "add"]),
       leaf=leaves)
def test_random_damage_to_a_hardware_config_is_a_clean_error_or_valid(path, action, leaf):
    _clean_or_valid(lambda: hw_from_dict(_mutate(BASE_HW, path, action, leaf),
                                         source="phone.yaml"))


@FUZZ
@given(path=st.sampled_from(SWEEP_PATHS), action=st.sampled_from(["replace", "delete", "add"]),
       leaf=leaves)
def test_random_damage_to_a_sweep_file_is_a_clean_error_or_valid(path, action, leaf):
    _clean_or_valid(lambda: sweep_from_dict(_mutate(SWEEP, path, action, leaf),
                                            source="sweep.yaml"))


def test_presets_still_load():
    assert {load_model_shape(name).name for name in MODEL_PRESETS} == set(MODEL_PRESETS)


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(max_size=3)),
                      min_size=1, max_size=5))
def test_random_byte_damage_to_a_hardware_file_is_a_clean_error_or_valid(tmp_path, edits):
    data = bytearray(HW_TEXT.encode())
    for where, new in edits:
        at = int(where * len(data))
        data[at:at + len(new)] = new
    path = tmp_path / "phone.yaml"
    path.write_bytes(bytes(data))
    _clean_or_valid(lambda: load_hw(path))
