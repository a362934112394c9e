"""The trace: the one interface between workloads/ (the transformer) and memsim/ (the phone).

For T tokens and each of L layers, masks over MLP weight vectors say which ones the token
reads (PAPER.md section 2):
  up       (T, L, H)  columns of W_up, and of W_gate too unless `gate` is given; all-true
                      where a method reads them densely (GLU pruning)
  gate     (T, L, H)  optional: columns of W_gate when masked apart from up (all-true for CATS,
                      which computes the gate densely)
  up_rows  (T, L, I)  optional, instead of `up`: rows of W_up, for methods that prune W_up by
                      output neuron (CATS keeps row i of W_up with column i of W_down)
  down     (T, L, I)  columns of W_down
  neurons  (T, L, I)  instead of all of the above: intermediate neurons, each the bundle of
                      row i of W_up, row i of W_gate and column i of W_down (a trained
                      predictor picks neurons before the MLP runs; LLM in a flash bundles them)
A plain MLP (no gate: OPT, Falcon; `ModelShape.mlp == "plain"`) has only W_up and W_down:
`up` covers W_up alone, a neuron bundle is row i of W_up plus column i of W_down, and `gate`
and `up_rows` (methods that need a gate) are refused.
Metadata: the model shape, method name and parameters, prompt length, how the T rows split
into independent sequences (each starts with a cold cache), and the parameters kept resident
and read every token besides the weights (LoRA adapters, a mask predictor).

Masks are held bit-packed (memsim/traces/bits.py: uint64 words, 64 columns each) from
construction or `load` through the cache replay and flash requests; `trace.down` etc. unpack
to booleans on first use only, for users who ask. Stored as .npz holding the packed words and
a JSON metadata string; loading never unpickles and never imports torch. Format version 1
covers up / gate / up_rows / down; version 2 adds `neurons` and `predictor_params` and is
written only by traces that use them, so every other trace stays readable by version-1 code.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memsim.core.errors import TraceError
from memsim.core.files import as_path, atomic_write_with, is_folder, npz_path
from memsim.traces.bits import (
    PackedMasks,
    num_words,
    pack_words,
    popcount,
    unpack_words,
)
from memsim.traces.model_shape import ModelShape

FORMAT_VERSION = 2  # the newest this code reads and writes
READABLE_VERSIONS = (1, 2)
MASK_NAMES = ("up", "gate", "up_rows", "down", "neurons")
V2_MASKS = ("neurons",)


def mask_width(name: str, model: ModelShape) -> int:
    """Columns of mask `name`: H for masks over W_up/W_gate inputs, I over neurons."""
    return model.hidden_size if name in ("up", "gate") else model.intermediate_size


@dataclass(frozen=True)
class MaskGroup:
    """Weight vectors that share one mask and hence one cache state per layer.

    `vector_weights` is the number of weights in one vector (a column of W_up holds I);
    `num_matrices` how many matrices the mask covers (up and gate sharing one mask = 2; a
    neuron bundle = 3), used to split the DRAM budget per masked matrix as the authors do
    (PAPER.md section 4). `bits` holds the (T, L, N) masks packed.
    """

    name: str
    bits: PackedMasks
    vector_weights: int
    num_matrices: int
    mask_name: str = ""  # the Trace field holding the mask

    @classmethod
    def from_mask(cls, name: str, mask: np.ndarray, vector_weights: int, num_matrices: int,
                  mask_name: str = "") -> "MaskGroup":
        """A group from a (T, L, N) boolean mask (packed here)."""
        return cls(name, PackedMasks.pack(mask), vector_weights, num_matrices, mask_name)

    @property
    def num_columns(self) -> int:
        return self.bits.num_columns

    @property
    def mask(self) -> np.ndarray:
        """(T, L, N) bool, unpacked on every call: for callers that need booleans."""
        return self.bits.unpack()


@dataclass(frozen=True, eq=False, init=False)
class Trace:
    """Per-token, per-layer MLP masks plus what produced them. See the module docstring.

    Build it from boolean masks (`Trace(up=..., down=..., model=...)`) or from packed words
    (`words={"up": ..., "down": ...}`, what `load` and `dataclasses.replace` use); a mask
    given both ways takes the boolean one (`dataclasses.replace(trace, up=new_up)`).
    """

    model: ModelShape
    words: dict  # mask name -> (T, L, ceil(N/64)) uint64, for the masks present
    method: str = "unknown"
    method_params: dict = field(default_factory=dict)
    prompt_len: int = 0  # tokens before the first traced token (KV length at start)
    sequence_lengths: tuple[int, ...] = ()  # () = one sequence of all T tokens
    source: str = ""  # e.g. "workloads", "synthetic", "synthetic (calibrated on smollm2-135m)"
    adapter_params: int = 0  # LoRA parameters resident in DRAM, read every token
    predictor_params: int = 0  # mask-predictor parameters resident in DRAM, read every token

    def __init__(self, down: np.ndarray | None = None, model: ModelShape | None = None,
                 up: np.ndarray | None = None, gate: np.ndarray | None = None,
                 up_rows: np.ndarray | None = None, neurons: np.ndarray | None = None, *,
                 method: str = "unknown", method_params: dict | None = None,
                 prompt_len: int = 0, sequence_lengths: tuple[int, ...] = (), source: str = "",
                 adapter_params: int = 0, predictor_params: int = 0,
                 words: dict | None = None):
        if not isinstance(model, ModelShape):
            raise TraceError(f"needs a ModelShape, got {type(model).__name__}", key_path="model",
                             allowed="memsim.load_model_shape(name)")
        masks = dict(up=up, gate=gate, up_rows=up_rows, down=down, neurons=neurons)
        given = {k: v for k, v in masks.items() if v is not None}
        packed = dict(words or {})  # masks given as booleans replace packed ones (replace())
        packed.update({k: _pack_checked(k, v, model) for k, v in given.items()})
        set_ = object.__setattr__
        set_(self, "model", model)
        set_(self, "words", {k: packed[k] for k in MASK_NAMES if k in packed})
        set_(self, "method", method)
        set_(self, "method_params", dict(method_params or {}))
        set_(self, "prompt_len", prompt_len)
        set_(self, "source", source)
        set_(self, "adapter_params", adapter_params)
        set_(self, "predictor_params", predictor_params)
        T = self._validate_words()
        lengths = tuple(sequence_lengths) or (T,)
        set_(self, "sequence_lengths", lengths)
        self._validate_metadata()
        set_(self, "sequence_lengths", tuple(int(n) for n in lengths))

    # ------------------------------------------------------------------ checks
    def _validate_words(self) -> int:
        """Mask combination, shapes and dtype of the packed words; returns T."""
        present = set(self.words)
        if "neurons" in present:
            if present != {"neurons"}:
                raise TraceError("`neurons` replaces every other mask", key_path="neurons",
                                 allowed="neurons alone")
        else:
            if "down" not in present:
                raise TraceError("a trace needs `down` (or `neurons`)", key_path="down",
                                 allowed="down (T,L,I) bool")
            if ("up" in present) == ("up_rows" in present):
                raise TraceError("give exactly one of `up` (columns of W_up) or `up_rows` (rows)",
                                 key_path="up", allowed="up (T,L,H) or up_rows (T,L,I)")
            if "up_rows" in present and "gate" not in present:
                raise TraceError("`up_rows` needs `gate` (W_gate is not covered by row masks)",
                                 key_path="gate", allowed="(T,L,H) bool")
        if self.model.is_plain and present & {"gate", "up_rows"}:
            name = sorted(present & {"gate", "up_rows"})[0]
            raise TraceError(f"model {self.model.name} has a plain MLP (no W_gate): `{name}` "
                             "does not apply", key_path=name,
                             allowed="up + down, or neurons")
        L = self.model.num_hidden_layers
        first = next(iter(self.words.values()))
        T = first.shape[0] if first.ndim == 3 else -1
        for name, w in self.words.items():
            width = mask_width(name, self.model)
            if w.shape != (T, L, num_words(width)) or w.dtype != np.uint64:
                raise TraceError(f"packed shape {w.shape} {w.dtype} does not fit model "
                                 f"{self.model.name}", key_path=name,
                                 allowed=f"(T, {L}, {width}) masks with one T")
            if width % 64 and (w[..., -1] >> np.uint64(width % 64)).any():
                raise TraceError("bits set beyond the last column (damaged packed words)",
                                 key_path=name, allowed=f"{width} columns")
        if T <= 0:
            raise TraceError("a trace needs at least one token", key_path="down")
        return T

    def _validate_metadata(self) -> None:
        T = self.num_tokens
        lengths = self.sequence_lengths
        if not all(_is_int(n) and n > 0 for n in lengths) or sum(lengths) != T:
            raise TraceError(f"sequence_lengths {lengths} must be positive integers summing "
                             f"to the {T} tokens", key_path="sequence_lengths")
        for key in ("prompt_len", "adapter_params", "predictor_params"):
            value = getattr(self, key)
            if not _is_int(value) or value < 0:
                raise TraceError(f"must be an integer >= 0, got {value!r}", key_path=key,
                                 allowed=">= 0")
        if not isinstance(self.method, str) or not isinstance(self.source, str):
            raise TraceError("method and source must be strings", key_path="method")

    # ------------------------------------------------------------------ views
    @property
    def num_tokens(self) -> int:
        return int(next(iter(self.words.values())).shape[0])

    @property
    def num_layers(self) -> int:
        return self.model.num_hidden_layers

    def packed(self, name: str) -> PackedMasks | None:
        """Mask `name` as packed words (None if the trace has no such mask)."""
        if name not in self.words:
            return None
        return PackedMasks(self.words[name], mask_width(name, self.model))

    def mask(self, name: str) -> np.ndarray | None:
        """Mask `name` as (T, L, N) booleans, unpacked once and kept (8x the packed bytes)."""
        if name not in self.words:
            return None
        cache = self.__dict__.setdefault("_unpacked", {})
        if name not in cache:
            cache[name] = unpack_words(self.words[name], mask_width(name, self.model))
        return cache[name]

    up = property(lambda self: self.mask("up"), doc="(T, L, H) bool or None")
    gate = property(lambda self: self.mask("gate"), doc="(T, L, H) bool or None")
    up_rows = property(lambda self: self.mask("up_rows"), doc="(T, L, I) bool or None")
    down = property(lambda self: self.mask("down"), doc="(T, L, I) bool or None")
    neurons = property(lambda self: self.mask("neurons"), doc="(T, L, I) bool or None")

    def column_counts(self, name: str) -> np.ndarray:
        """(T, L) int64 columns each token reads from mask `name`; computed once per trace
        (a sweep replays one trace for many cache sizes)."""
        cache = self.__dict__.setdefault("_counts", {})
        if name not in cache:
            cache[name] = popcount(self.words[name]).sum(axis=2, dtype=np.int64)
        return cache[name]

    def groups(self) -> list[MaskGroup]:
        """The cached units this trace reads, each with its own per-layer cache."""
        H, I = self.model.hidden_size, self.model.intermediate_size
        p = self.packed
        if "neurons" in self.words:  # row i of W_up (and W_gate) + column i of W_down
            return [MaskGroup("neurons", p("neurons"), H, self.model.num_mlp_matrices,
                              "neurons")]
        out = []
        if "up" in self.words:
            shares_gate = "gate" not in self.words and not self.model.is_plain
            out.append(MaskGroup("up_gate", p("up"), I, 2, "up") if shares_gate
                       else MaskGroup("up", p("up"), I, 1, "up"))
        else:
            out.append(MaskGroup("up_rows", p("up_rows"), H, 1, "up_rows"))
        if "gate" in self.words:
            out.append(MaskGroup("gate", p("gate"), I, 1, "gate"))
        out.append(MaskGroup("down", p("down"), H, 1, "down"))
        return out

    def mlp_density(self) -> np.ndarray:
        """(T, L) fraction of MLP weights each token reads (PAPER.md section 2)."""
        read = sum(self.column_counts(g.mask_name) * g.vector_weights * g.num_matrices
                   for g in self.groups())
        return read / self.model.mlp_params_per_layer

    def sequences(self) -> list[slice]:
        """Token slices of the independent sequences, in order."""
        ends = np.cumsum(self.sequence_lengths)
        return [slice(int(e - n), int(e)) for n, e in zip(self.sequence_lengths, ends)]

    # ------------------------------------------------------------------ persistence
    @property
    def format_version(self) -> int:
        """1 unless the trace uses a version-2 field (so old readers read old traces)."""
        uses_v2 = any(k in self.words for k in V2_MASKS) or self.predictor_params > 0
        return 2 if uses_v2 else 1

    def metadata(self) -> dict:
        meta = {"format_version": self.format_version, "model": self.model.to_dict(),
                "method": self.method, "method_params": self.method_params,
                "prompt_len": self.prompt_len, "sequence_lengths": list(self.sequence_lengths),
                "source": self.source, "adapter_params": self.adapter_params}
        if self.format_version >= 2:
            meta["predictor_params"] = self.predictor_params
        return meta

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename): a crash never leaves half a trace."""
        path = npz_path(path)
        if is_folder(path):
            raise TraceError("is a folder; give the trace file's path", source=str(path),
                             allowed="a .npz file path")
        arrays = {"meta": np.array(json.dumps(self.metadata()))}
        arrays.update({f"{name}_bits": w for name, w in self.words.items()})
        # packed masks are near-random bits: no compression. A failed write (disk full, no
        # permission) leaves nothing and is a ConfigError naming the file.
        atomic_write_with(path, lambda fh: np.savez(fh, **arrays))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Trace":
        """Read a trace file; anything wrong with it is a TraceError naming the file."""
        path = as_path(path, "trace file", "trace", error=TraceError)
        meta, bits = _read_npz(path)
        try:
            return cls._from_stored(meta, bits, path)
        except TraceError as exc:
            raise exc.relocated(source=str(path)) from None

    @classmethod
    def _from_stored(cls, meta: dict, bits: dict, path: Path) -> "Trace":
        version = meta.get("format_version")
        if not _is_int(version) or version not in READABLE_VERSIONS:
            raise TraceError(f"format_version {version!r} unsupported", key_path="format_version",
                             allowed=", ".join(map(str, READABLE_VERSIONS)))
        model = ModelShape.from_dict(_typed(meta, "model", dict), source=str(path))
        unknown = sorted(set(bits) - set(MASK_NAMES[:4] if version == 1 else MASK_NAMES))
        if unknown:
            raise TraceError(f"unknown array {unknown[0]}_bits", key_path=unknown[0],
                             allowed=", ".join(f"{n}_bits" for n in MASK_NAMES))
        words = {name: _stored_words(name, w) for name, w in bits.items()}
        return cls(model=model, words=words, method=_typed(meta, "method", str),
                   method_params=_typed(meta, "method_params", dict),
                   prompt_len=_typed(meta, "prompt_len", int),
                   sequence_lengths=tuple(_typed(meta, "sequence_lengths", list)),
                   source=_typed(meta, "source", str, ""),
                   adapter_params=_typed(meta, "adapter_params", int, 0),
                   predictor_params=_typed(meta, "predictor_params", int, 0))

    @classmethod
    def concatenate(cls, traces: list["Trace"]) -> "Trace":
        """Join traces of one model and method as independent sequences."""
        if not traces:
            raise TraceError("nothing to concatenate")
        first = traces[0]
        names = set(first.words)
        if any(set(t.words) != names for t in traces):
            raise TraceError("traces mix mask kinds", key_path=sorted(names)[0])
        words = {n: np.concatenate([t.words[n] for t in traces], axis=0) for n in names}
        lengths = tuple(n for t in traces for n in t.sequence_lengths)
        return cls(model=first.model, words=words, method=first.method,
                   method_params=first.method_params, prompt_len=first.prompt_len,
                   sequence_lengths=lengths, source=first.source,
                   adapter_params=first.adapter_params, predictor_params=first.predictor_params)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _pack_checked(name: str, mask, model: ModelShape) -> np.ndarray:
    """A boolean (T, L, N) mask, checked against the model, packed into words."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise TraceError(f"masks are boolean; got values other than 0/1 ({mask.dtype})",
                             key_path=name, allowed="bool")
        mask = mask.astype(bool)
    L, width = model.num_hidden_layers, mask_width(name, model)
    if mask.ndim != 3 or mask.shape[1:] != (L, width):
        raise TraceError(f"shape {mask.shape} does not fit model {model.name}", key_path=name,
                         allowed=f"(T, {L}, {width}) with one T")
    return pack_words(mask)


def _read_npz(path: Path) -> tuple[dict, dict]:
    """The metadata mapping and the packed arrays of a trace file, or a TraceError."""
    if not path.is_file():
        raise TraceError("no such trace file" if not path.exists() else "not a file",
                         source=str(path), allowed="a .npz written by Trace.save")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy holds one bare array
            raise TraceError("not a trace: a single numpy array (.npy), not an .npz archive",
                             source=str(path), allowed="a .npz written by Trace.save")
        with loaded as data:
            if "meta" not in data.files:
                raise TraceError("not a trace: no `meta` entry", source=str(path),
                                 allowed="a .npz written by Trace.save")
            meta = json.loads(str(data["meta"]))
            bits = {n[:-5]: data[n] for n in data.files if n.endswith("_bits")}
    except TraceError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError,
            TypeError, RuntimeError) as exc:  # truncated, corrupted, empty, not a zip
        raise TraceError(f"cannot read trace ({type(exc).__name__}: {exc}); the file is "
                         "damaged or not a trace", source=str(path),
                         allowed="a .npz written by Trace.save") from None
    except Exception as exc:  # noqa: BLE001 - zlib/zipfile raise odd types on damaged data
        raise TraceError(f"cannot read trace ({type(exc).__name__}); the file is damaged",
                         source=str(path)) from None
    if not isinstance(meta, dict):
        raise TraceError("metadata is not a JSON object", source=str(path), key_path="meta")
    return meta, bits


def _stored_words(name: str, words: np.ndarray) -> np.ndarray:
    if words.dtype.kind != "u" or words.dtype.itemsize != 8 or words.ndim != 3:
        raise TraceError(f"packed words must be (T, L, W) uint64, got {words.shape} "
                         f"{words.dtype}", key_path=name, allowed="uint64 words")
    return np.ascontiguousarray(words.astype(np.uint64, copy=False))


_MISSING = object()


def _typed(meta: dict, key: str, kind: type, default=_MISSING):
    """meta[key], checked to be of `kind` (a missing optional key gives `default`)."""
    if key not in meta:
        if default is _MISSING:
            raise TraceError("missing metadata field", key_path=key, allowed=kind.__name__)
        return default
    value = meta[key]
    ok = _is_int(value) if kind is int else isinstance(value, kind)
    if not ok:
        raise TraceError(f"metadata field has type {type(value).__name__}", key_path=key,
                         allowed=kind.__name__)
    return value
