"""The trace: the one interface between workloads/ (the transformer) and memsim/ (the phone).

For T tokens and each of L layers, boolean masks over MLP weight vectors say which ones the
token reads (PAPER.md section 2):
  up       (T, L, H)  columns of W_up, and of W_gate too unless `gate` is given; all-true
                      where a method reads them densely (GLU pruning)
  gate     (T, L, H)  optional: columns of W_gate when masked apart from up (all-true for CATS,
                      which computes the gate densely)
  up_rows  (T, L, I)  optional, instead of `up`: rows of W_up, for methods that prune W_up by
                      output neuron (CATS keeps row i of W_up with column i of W_down)
  down     (T, L, I)  columns of W_down
Metadata: the model shape, method name and parameters, prompt length, and how the T rows split
into independent sequences (each starts with a cold cache). Stored as .npz with bit-packed
masks and a JSON metadata string; loading never unpickles and never imports torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from memsim.core.errors import TraceError
from memsim.traces.bits import num_words, pack_words, popcount, unpack_words
from memsim.traces.model_shape import ModelShape

FORMAT_VERSION = 1
MASK_NAMES = ("up", "gate", "up_rows", "down")


class MaskGroup(NamedTuple):
    """Weight vectors that share one mask and hence one cache state per layer.

    `vector_weights` is the number of weights in one vector (a column of W_up holds I);
    `num_matrices` how many matrices the mask covers (up and gate sharing one mask = 2), used
    to split the DRAM budget per masked matrix as the authors do (PAPER.md section 4).
    """

    name: str
    mask: np.ndarray  # (T, L, N) bool
    vector_weights: int
    num_matrices: int
    mask_name: str = ""  # the Trace field holding the mask ("up", "gate", "up_rows", "down")


@dataclass(frozen=True, eq=False)
class Trace:
    """Per-token, per-layer MLP masks plus what produced them. See the module docstring."""

    down: np.ndarray  # (T, L, I) bool
    model: ModelShape
    up: np.ndarray | None = None  # (T, L, H) bool
    gate: np.ndarray | None = None  # (T, L, H) bool
    up_rows: np.ndarray | None = None  # (T, L, I) bool
    method: str = "unknown"
    method_params: dict = field(default_factory=dict)
    prompt_len: int = 0  # tokens before the first traced token (KV length at start)
    sequence_lengths: tuple[int, ...] = ()  # () = one sequence of all T tokens
    source: str = ""  # e.g. "workloads", "synthetic", "synthetic (calibrated on smollm2-135m)"
    adapter_params: int = 0  # LoRA (or predictor) parameters resident in DRAM, read per token

    def __post_init__(self) -> None:
        for name in MASK_NAMES:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, np.asarray(value, dtype=bool))
        if not self.sequence_lengths:
            object.__setattr__(self, "sequence_lengths", (self.num_tokens,))
        object.__setattr__(self, "sequence_lengths", tuple(int(n) for n in self.sequence_lengths))
        self._validate()

    # ------------------------------------------------------------------ shape checks
    def _validate(self) -> None:
        if (self.up is None) == (self.up_rows is None):
            raise TraceError("give exactly one of `up` (columns of W_up) or `up_rows` (rows)",
                             key_path="up", allowed="up (T,L,H) or up_rows (T,L,I)")
        if self.up_rows is not None and self.gate is None:
            raise TraceError("`up_rows` needs `gate` (W_gate is not covered by row masks)",
                             key_path="gate", allowed="(T,L,H) bool")
        L, H, I = self.model.num_hidden_layers, self.model.hidden_size, self.model.intermediate_size
        T = self.down.shape[0] if self.down.ndim == 3 else -1
        widths = {"up": H, "gate": H, "up_rows": I, "down": I}
        for name in MASK_NAMES:
            mask = getattr(self, name)
            if mask is not None and mask.shape != (T, L, widths[name]):
                raise TraceError(f"shape {mask.shape} does not fit model {self.model.name}",
                                 key_path=name, allowed=f"(T, {L}, {widths[name]}) with one T")
        if T <= 0:
            raise TraceError("a trace needs at least one token", key_path="down")
        if sum(self.sequence_lengths) != T or min(self.sequence_lengths) <= 0:
            raise TraceError(f"sequence_lengths {self.sequence_lengths} must be positive and "
                             f"sum to the {T} tokens", key_path="sequence_lengths")
        for key in ("prompt_len", "adapter_params"):
            if getattr(self, key) < 0:
                raise TraceError("must be >= 0", key_path=key, allowed=">= 0")

    # ------------------------------------------------------------------ views
    @property
    def num_tokens(self) -> int:
        return int(self.down.shape[0])

    @property
    def num_layers(self) -> int:
        return int(self.down.shape[1])

    def column_counts(self, name: str) -> np.ndarray:
        """(T, L) int64 columns each token reads from mask `name`; computed once per trace
        (a sweep replays one trace for many cache sizes)."""
        cache = self.__dict__.setdefault("_counts", {})
        if name not in cache:
            cache[name] = popcount(pack_words(getattr(self, name))).sum(axis=2, dtype=np.int64)
        return cache[name]

    def groups(self) -> list[MaskGroup]:
        """The cached units this trace reads, each with its own per-layer cache."""
        H, I = self.model.hidden_size, self.model.intermediate_size
        out = []
        if self.up is not None:
            out.append(MaskGroup("up_gate", self.up, I, 2, "up") if self.gate is None
                       else MaskGroup("up", self.up, I, 1, "up"))
        else:
            out.append(MaskGroup("up_rows", self.up_rows, H, 1, "up_rows"))
        if self.gate is not None:
            out.append(MaskGroup("gate", self.gate, I, 1, "gate"))
        out.append(MaskGroup("down", self.down, H, 1, "down"))
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
    def metadata(self) -> dict:
        return {"format_version": FORMAT_VERSION, "model": self.model.to_dict(),
                "method": self.method, "method_params": self.method_params,
                "prompt_len": self.prompt_len, "sequence_lengths": list(self.sequence_lengths),
                "source": self.source, "adapter_params": self.adapter_params}

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename): a crash never leaves half a trace."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays = {"meta": np.array(json.dumps(self.metadata()))}
        for name in MASK_NAMES:
            mask = getattr(self, name)
            if mask is not None:
                arrays[f"{name}_bits"] = pack_words(mask)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # packed masks are near-random bits: compression only costs time
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Trace":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                bits = {n: data[f"{n}_bits"] for n in MASK_NAMES if f"{n}_bits" in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise TraceError(f"cannot read trace: {exc}", source=str(path)) from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise TraceError(f"format_version {meta.get('format_version')!r} unsupported",
                             source=str(path), allowed=str(FORMAT_VERSION))
        model = ModelShape.from_dict(meta["model"], source=str(path))
        widths = {"up": model.hidden_size, "gate": model.hidden_size,
                  "up_rows": model.intermediate_size, "down": model.intermediate_size}
        masks = {}
        for name, words in bits.items():
            if words.shape[-1] != num_words(widths[name]):
                raise TraceError("packed width does not match the model", source=str(path),
                                 key_path=name)
            masks[name] = unpack_words(words, widths[name])
        trace = cls(model=model, method=meta["method"], method_params=meta["method_params"],
                    prompt_len=meta["prompt_len"], sequence_lengths=tuple(meta["sequence_lengths"]),
                    source=meta.get("source", ""),
                    adapter_params=int(meta.get("adapter_params", 0)), **masks)
        trace.__dict__["_counts"] = {n: popcount(w).sum(axis=2, dtype=np.int64)
                                     for n, w in bits.items()}  # free while packed
        return trace

    @classmethod
    def concatenate(cls, traces: list["Trace"]) -> "Trace":
        """Join traces of one model and method as independent sequences."""
        if not traces:
            raise TraceError("nothing to concatenate")
        first = traces[0]
        masks = {}
        for name in MASK_NAMES:
            parts = [getattr(t, name) for t in traces]
            if any((p is None) != (parts[0] is None) for p in parts):
                raise TraceError("traces mix mask kinds", key_path=name)
            masks[name] = None if parts[0] is None else np.concatenate(parts, axis=0)
        lengths = tuple(n for t in traces for n in t.sequence_lengths)
        return cls(model=first.model, method=first.method, method_params=first.method_params,
                   prompt_len=first.prompt_len, sequence_lengths=lengths, source=first.source,
                   adapter_params=first.adapter_params,
                   **masks)
