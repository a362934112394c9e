"""A damaged or wrong trace file is a TraceError naming the file,
never a traceback, and never a different trace accepted silently."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.core.errors import TraceError
from memsim.traces.trace import Trace
from tests.badinput import expect_clean, record, run_cli
from tests.helpers import TINY, random_trace

CAT = "damaged or wrong trace files"  # its category in the bad-input tally (tests/badinput.py)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _v2_trace() -> Trace:
    rng = np.random.default_rng(3)
    neurons = rng.random((6, TINY.num_hidden_layers, TINY.intermediate_size)) < 0.3
    return Trace(neurons=neurons, model=TINY, method="predictor", predictor_params=1234,
                 sequence_lengths=(4, 2))


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, tuple[bytes, Trace]]:
    """Two small trace files (format 1 and 2) as bytes, with the traces they hold."""
    folder = tmp_path_factory.mktemp("traces")
    out = {}
    for name, trace in (("v1", random_trace(T=5, prompt_len=3)), ("v2", _v2_trace())):
        path = trace.save(folder / f"{name}.npz")
        out[name] = (path.read_bytes(), Trace.load(path))
    return out


def _same(a: Trace, b: Trace) -> bool:
    return (a.metadata() == b.metadata() and set(a.words) == set(b.words)
            and all(np.array_equal(a.words[k], b.words[k]) for k in a.words))


def _load_damaged(path: Path, original: Trace) -> None:
    """Loading must fail cleanly, naming the file, or give back the very same trace (the
    damage hit bytes the format ignores, e.g. a zip timestamp)."""
    try:
        loaded = Trace.load(path)
    except TraceError as exc:
        record(CAT, "clean")
        assert str(path) in str(exc) and "<api>" not in str(exc), str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        record(CAT, "traceback")
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    if not _same(loaded, original):
        record(CAT, "silent")
        raise AssertionError("a damaged trace loaded as a different trace")
    record(CAT, "clean")  # harmless damage: the same trace, nothing wrong accepted


damage = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                  min_size=1, max_size=8)


@FUZZ
@given(version=st.sampled_from(["v1", "v2"]), edits=damage)
def test_random_byte_damage_to_a_trace_never_gives_a_traceback(originals, tmp_path, version,
                                                               edits):
    data, trace = originals[version]
    buf = bytearray(data)
    for where, byte in edits:
        buf[int(where * len(buf))] = byte
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(buf))
    _load_damaged(path, trace)


@FUZZ
@given(version=st.sampled_from(["v1", "v2"]), cut=st.floats(0, 1, exclude_max=True),
       junk=st.binary(max_size=64))
def test_truncated_or_padded_trace_is_refused_naming_the_file(originals, tmp_path, version,
                                                              cut, junk):
    data, trace = originals[version]
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:int(cut * len(data))] + junk)
    _load_damaged(path, trace)


def _npz(path: Path, meta, **arrays) -> Path:
    payload = {"meta": np.array(meta if isinstance(meta, str) else json.dumps(meta))}
    payload.update(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **payload)
    return path


def _good_parts() -> tuple[dict, dict]:
    trace = random_trace(T=4)
    return trace.metadata(), {f"{k}_bits": v for k, v in trace.words.items()}


def _meta_cases() -> dict[str, tuple[dict | str, dict]]:
    meta, bits = _good_parts()
    cases: dict[str, tuple[dict | str, dict]] = {}
    for key in meta:  # each field missing
        if key not in ("source", "adapter_params"):  # optional ones default
            cases[f"missing {key}"] = ({k: v for k, v in meta.items() if k != key}, bits)
    wrong = {"format_version": [9, "1", None, 1.0], "model": ["tiny", [1], None],
             "method": [3, None, ["dip"]], "method_params": ["a", [1], 2],
             "prompt_len": ["0", -1, 1.5, True, None], "sequence_lengths": [4, "4", [1.5, 2.5],
                                                                             [5], [-1, 5], None],
             "source": [1, ["x"]], "adapter_params": [-3, "1", 2.0, False]}
    for key, values in wrong.items():
        for value in values:
            cases[f"{key}={value!r}"] = ({**meta, key: value}, bits)
    model = meta["model"]
    for key, value in (("hidden_size", "64"), ("hidden_size", 0), ("num_hidden_layers", 2.5),
                       ("vocab_size", -1), ("tie_word_embeddings", "yes"), ("head_dim", -4),
                       ("intermediate_size", 10 ** 30), ("unknown_key", 1),
                       ("num_key_value_heads", 3)):
        cases[f"model.{key}={value!r}"] = ({**meta, "model": {**model, key: value}}, bits)
    cases["model missing a key"] = ({**meta, "model": {k: v for k, v in model.items()
                                                       if k != "vocab_size"}}, bits)
    cases["meta not JSON"] = ("{not json", bits)
    cases["meta a list"] = ("[1, 2]", bits)
    cases["meta a number"] = ("3", bits)
    cases["words float"] = (meta, {k: v.astype(np.float64) for k, v in bits.items()})
    cases["words 2-D"] = (meta, {k: v[0] for k, v in bits.items()})
    cases["words other T"] = (meta, {**bits, "down_bits": bits["down_bits"][:2]})
    cases["bits beyond width"] = (meta, {**bits, "down_bits": np.full_like(bits["down_bits"],
                                                                          2 ** 64 - 1)})
    cases["unknown array"] = (meta, {**bits, "extra_bits": bits["down_bits"]})
    cases["v2 array in v1"] = (meta, {**bits, "neurons_bits": bits["down_bits"]})
    cases["no down"] = (meta, {k: v for k, v in bits.items() if k != "down_bits"})
    cases["no masks"] = (meta, {})
    return cases


@pytest.mark.parametrize("case", sorted(_meta_cases()))
def test_trace_with_missing_or_mistyped_content_is_refused_naming_the_file(tmp_path, case):
    meta, bits = _meta_cases()[case]
    path = _npz(tmp_path / "t.npz", meta, **bits)
    exc = expect_clean(CAT, lambda: Trace.load(path), str(path))
    assert isinstance(exc, TraceError) or "model" in case


def _not_a_trace(tmp_path: Path) -> dict[str, Path]:
    paths = {"empty": tmp_path / "empty.npz", "text": tmp_path / "notes.npz",
             "npy": tmp_path / "array.npy", "npy as npz": tmp_path / "array2.npz",
             "folder": tmp_path / "folder.npz", "missing": tmp_path / "missing.npz",
             "zip without meta": tmp_path / "other.npz", "pickle": tmp_path / "pickled.npz"}
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("time,tokens\n1,2\n")
    np.save(paths["npy"], np.zeros(3))
    with open(paths["npy as npz"], "wb") as fh:
        np.save(fh, np.zeros((2, 2)))
    paths["folder"].mkdir()
    with zipfile.ZipFile(paths["zip without meta"], "w") as zf:
        zf.writestr("readme.txt", "hello")
    np.savez(paths["pickle"], meta=np.array([{"a": 1}], dtype=object))
    return paths


@pytest.mark.parametrize("kind", ["empty", "text", "npy", "npy as npz", "folder", "missing",
                                  "zip without meta", "pickle"])
def test_a_file_that_is_not_a_trace_is_refused_naming_it(tmp_path, kind):
    path = _not_a_trace(tmp_path)[kind]
    expect_clean(CAT, lambda: Trace.load(path), str(path))


@pytest.mark.parametrize("command", ["simulate", "info", "calibrate", "layout"])
def test_every_command_reading_a_trace_names_the_damaged_file(originals, tmp_path, command):
    data, _ = originals["v1"]
    path = tmp_path / "half.npz"
    path.write_bytes(data[:len(data) // 2])
    argv = {"simulate": ["simulate", "--hw", "flagship", "--trace", str(path)],
            "info": ["trace", "info", str(path)],
            "calibrate": ["trace", "calibrate", "--from", str(path), "--model", "smollm2-135m",
                          "--tokens", "4", "--seed", "0", "--out", str(tmp_path / "c.npz")],
            "layout": ["layout", "build", "--trace", str(path), "--method", "frequency",
                       "--out", str(tmp_path / "l.npz")]}[command]
    run_cli(CAT, argv, str(path))
    assert not list(tmp_path.glob("c.npz")) and not list(tmp_path.glob("l.npz"))
