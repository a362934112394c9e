"""The dequantised-model cache: a GGUF file is dequantised once, then loads as safetensors.

Transformers' GGUF loader dequantises every tensor and converts the tokenizer on every load
(~15 s for SmolLM2-135M on one core, most of it parsing the file's metadata, three times).
The first load writes what that loader produced to
    <cache_root>/models/<sha256 of the GGUF file>/<dtype>-transformers-<v>-gguf-<v>/
        config.json  model.safetensors  tokenizer.json  tokenizer_config.json  ...
        manifest.json   (written last: the GGUF's sha256, each file's size, mtime, sha256)
and every later load reads that folder through transformers' ordinary safetensors path: the
same tensors in the same dtype, so the same logits bit for bit (tests/test_workloads_model_
cache.py). The key is the file's content, the dtype and the loader versions, so a different
file, dtype or transformers/gguf version never reuses an entry. An entry is written to a temp
folder and renamed into place under a lock (memsim.core.cache_dir.exclusive), so concurrent
loaders (sweep workers) build it once and nobody sees half an entry; an entry whose files do
not match its manifest is rebuilt, not trusted. Only JSON, text and safetensors files: nothing
pickled is written or read.
Speed shortcut (building only): gguf's `GGUFReader` and `get_tensor_name_map` are memoised
while transformers converts, because it parses the same file three times and rebuilds the
name map once per module, and the reader reads a plain array instead of a numpy.memmap
(~15 s -> ~4 s for SmolLM2; same tensors, checked by the tests).
What this ignores: eviction (entries stay until the folder is deleted; SmolLM2 in float32
takes 540 MB) and files changed while being read.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import uuid
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from memsim.core.cache_dir import cache_root, exclusive
from memsim.core.files import sha256_file

FORMAT_VERSION = 1  # bump when the entry layout changes: old entries are then ignored
MANIFEST = "manifest.json"
SAFE_SUFFIXES = (".json", ".safetensors", ".jinja", ".txt")  # never pickles
FREE_SPACE_MARGIN_BYTES = 256 * 2**20  # keep this much free after writing an entry

Converted = tuple[Any, Any]  # (model, tokenizer)


def load_gguf_cached(gguf_path: Path, dtype: str, convert: Callable[[], Converted],
                     load: Callable[[Path], Converted],
                     progress: bool = True) -> tuple[Any, Any, dict]:
    """(model, tokenizer, cache info): `load(entry)` from a valid cache entry for this file
    and dtype, built first with `convert()` (the GGUF loader) when missing or damaged.
    If the cache cannot be written (read-only folder, full disk) the converted model is
    returned as is and the info says why."""
    digest = file_sha256(gguf_path)
    entry = entry_path(digest, dtype)
    if is_valid(entry, digest):
        return (*load(entry), {"cache": str(entry)})
    converted = None
    try:
        with exclusive(entry.parent / f".{entry.name}.lock"):
            if not is_valid(entry, digest):  # nobody built it while we waited
                if progress:
                    print(f"dequantising {gguf_path.name} once; cached in {entry}",
                          file=sys.stderr)
                with memoised_gguf_parsing():
                    converted = convert()
                write_entry(entry, *converted, info={"gguf": str(gguf_path),
                                                      "gguf_sha256": digest, "dtype": dtype})
    except (OSError, CacheRefused) as exc:
        if progress:
            print(f"not caching the dequantised {gguf_path.name} ({exc}); loading it directly",
                  file=sys.stderr)
        if converted is None:
            with memoised_gguf_parsing():
                converted = convert()
        return (*converted, {"cache": None, "cache_skipped": str(exc)})
    return (*load(entry), {"cache": str(entry)})


class CacheRefused(Exception):
    """The entry would not be safe or would not fit; the caller loads without the cache."""


def entry_path(gguf_sha256: str, dtype: str) -> Path:
    """Where the entry for this file content and dtype lives (loader versions included)."""
    variant = (f"{dtype}-transformers-{_version('transformers')}-gguf-{_version('gguf')}"
               f"-v{FORMAT_VERSION}")
    return cache_root() / "models" / gguf_sha256 / variant


def _version(distribution: str) -> str:
    """The installed version, read from package metadata (importing gguf costs ~0.3 s)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


file_sha256 = sha256_file  # looked up here at each call: tests count the files hashed


def is_valid(entry: Path, gguf_sha256: str) -> bool:
    """True if the entry's manifest names this GGUF and every file matches its size and
    sha256 (a truncated, edited or half-copied entry fails). Speed shortcut, as git's index
    and make do: a file whose size and modification time are still those recorded when it
    was written is not re-hashed (saves ~0.5 s a load for SmolLM2's 540 MB); any write to
    it changes its mtime and brings the hash check back."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        if manifest.get("gguf_sha256") != gguf_sha256 or not manifest.get("files"):
            return False
        return all(_file_matches(entry, name, want)
                   for name, want in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _file_matches(entry: Path, name: str, want: dict) -> bool:
    if Path(name).name != name:  # a manifest never points outside its entry
        return False
    path = entry / name
    stat = path.stat()
    if stat.st_size != want["size_bytes"]:
        return False
    return stat.st_mtime_ns == want["mtime_ns"] or file_sha256(path) == want["sha256"]


def write_entry(entry: Path, model: Any, tokenizer: Any, info: dict) -> None:
    """Config, weights and tokenizer into a temp folder, manifest last, then renamed into
    place (replacing a damaged entry). Raises CacheRefused if it would not fit or the
    tokenizer writes anything but JSON/text."""
    from safetensors.torch import save_model

    weights_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    entry.parent.mkdir(parents=True, exist_ok=True)
    free_bytes = shutil.disk_usage(entry.parent).free
    if free_bytes < weights_bytes + FREE_SPACE_MARGIN_BYTES:
        raise CacheRefused(f"{free_bytes / 1e6:.0f} MB free in {entry.parent}, the entry "
                           f"needs ~{weights_bytes / 1e6:.0f} MB")
    tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / "config.json").write_text(json.dumps(_plain_config(model.config), indent=2))
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        unsafe = [p.name for p in tmp.iterdir() if p.suffix not in SAFE_SUFFIXES]
        if unsafe:
            raise CacheRefused(f"the tokenizer wrote {unsafe}; only {SAFE_SUFFIXES} are cached")
        files = {p.name: {"size_bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns,
                          "sha256": file_sha256(p)} for p in sorted(tmp.iterdir())}
        manifest = {**info, "format_version": FORMAT_VERSION, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _replace_dir(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already if the rename succeeded


def _plain_config(config: Any) -> dict:
    """The model config as saved by the safetensors path: without the GGUF quantizer's
    entry (the cached weights are plain tensors) and without the source folder."""
    out = config.to_dict()
    out.pop("quantization_config", None)
    out.pop("_name_or_path", None)
    return out


def _replace_dir(tmp: Path, entry: Path) -> None:
    """Rename `tmp` to `entry`; a (damaged) old entry is moved aside first, then deleted."""
    old = None
    if entry.exists():
        old = entry.parent / f".{entry.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        entry.rename(old)
    tmp.rename(entry)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def memoised_gguf_parsing() -> Iterator[None]:
    """Inside the block, `gguf.GGUFReader(path)` returns one reader per path and
    `gguf.get_tensor_name_map` is memoised (transformers imports both inside its functions,
    so it picks these up). Both are pure functions of their arguments; the reader is opened
    read-only, so sharing it cannot change what is read. The reader also slices a plain
    ndarray view of its memory map: the same bytes, but each of its ~10^6 small reads skips
    numpy.memmap's Python-level `__getitem__`/`__array_finalize__` (3 s -> 0.9 s a parse)."""
    import gguf

    reader_cls, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    class PlainArrayReader(reader_cls):
        @property
        def data(self) -> Any:
            return self._plain_data

        @data.setter
        def data(self, value: Any) -> None:  # set once, by GGUFReader.__init__
            self._plain_data = np.asarray(value)  # the memmap's pages, as a base ndarray

    @functools.lru_cache(maxsize=4)
    def shared_reader(path: Any, mode: str = "r") -> Any:
        return PlainArrayReader(path, mode)

    gguf.GGUFReader = lambda path, mode="r": shared_reader(str(path), mode)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_cls, name_map
