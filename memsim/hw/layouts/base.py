"""The flash layout file: an order of columns per layer and mask group.

`order[g][l, s]` is the column stored in slot s of layer l's region of group g (a
permutation of 0..N-1); a layout used on a trace reading a group it does not name
is an error (`positions`). Stored as .npz:
`order_<group>` int32 arrays and `meta`, a JSON string with the format version, the model
shape, the method and the trace it was built from (path, checksum, tokens). Loading never
unpickles. Checks on load: every order a permutation of the group's columns, shapes that fit
the model; on use: the same model as the trace simulated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from memsim.core.errors import ConfigError
from memsim.core.files import (
    as_path,
    atomic_write_with,
    is_folder,
    npz_path,
    sha256_file,
)
from memsim.core.registry import Registry
from memsim.traces import ModelShape, Trace

FORMAT_VERSION = 1
LAYOUT_METHODS: Registry[Callable[[np.ndarray], np.ndarray]] = Registry("layout method")
GROUP_WIDTH = {"up_gate": "H", "up": "H", "gate": "H", "up_rows": "I", "down": "I",
               "neurons": "I"}


@dataclass(frozen=True, eq=False)
class Layout:
    """Per mask group, (L, N) int32: slot -> column. See the module docstring."""

    model: ModelShape
    orders: dict[str, np.ndarray]
    method: str = "identity"
    built_from: dict = field(default_factory=dict)
    source: str = "<api>"  # the file it was read from, for errors

    def __post_init__(self) -> None:
        L = self.model.num_hidden_layers
        for name, order in self.orders.items():
            if name not in GROUP_WIDTH:
                raise ConfigError(f"unknown mask group {name!r}", source=self.source,
                                  key_path=f"order_{name}", allowed=", ".join(GROUP_WIDTH))
            width = _width(name, self.model)
            if order.shape != (L, width):
                raise ConfigError(f"order shape {order.shape} does not fit model "
                                  f"{self.model.name}", source=self.source,
                                  key_path=f"order_{name}", allowed=f"({L}, {width})")
            if not (np.sort(order, axis=1) == np.arange(width)).all():
                raise ConfigError("not a permutation of the columns in every layer",
                                  source=self.source, key_path=f"order_{name}",
                                  allowed=f"each row a permutation of 0..{width - 1}")

    def positions(self, group: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """((L, N) column -> slot, (L, N) slot -> column), or (None, None) in model order.
        A group the layout names no order for is an error naming it: applied to another
        method's trace (a DIP layout on a CATS or predictor trace) a layout would otherwise
        change nothing without a word."""
        order = self.orders.get(group)
        if order is None:
            raise ConfigError(f"the layout has no order for mask group {group!r}, which the "
                              f"trace reads (it orders {', '.join(sorted(self.orders))}; "
                              f"built from a {self.built_from.get('method', '?')} trace)",
                              source=self.source, key_path=f"order_{group}",
                              allowed="a layout built on a trace of the same masking method "
                                      "(`memsim layout build --trace ...`)")
        if self.is_identity(group):
            return None, None
        cache = self.__dict__.setdefault("_pos", {})
        if group not in cache:
            pos = np.empty_like(order)
            np.put_along_axis(pos, order, np.arange(order.shape[1], dtype=order.dtype)[None],
                              axis=1)
            cache[group] = (pos, order)
        return cache[group]

    def is_identity(self, group: str) -> bool:
        order = self.orders.get(group)
        return order is None or bool((order == np.arange(order.shape[1])).all())

    def check_model(self, model: ModelShape, source: str) -> None:
        """A layout only fits the model it was built for (layers and widths)."""
        keys = ("num_hidden_layers", "hidden_size", "intermediate_size")
        if any(getattr(model, k) != getattr(self.model, k) for k in keys):
            raise ConfigError(f"layout was built for {self.model.name} "
                              f"(L={self.model.num_hidden_layers}, H={self.model.hidden_size}, "
                              f"I={self.model.intermediate_size}), not {model.name}",
                              source=source, key_path="flash.layout",
                              allowed=f"a layout built on a {model.name} trace")

    def save(self, path: str | Path) -> Path:
        path = npz_path(path)
        if is_folder(path):
            raise ConfigError("is a folder; give the layout file's path", source=str(path),
                              allowed="a .npz file path")
        meta = {"format_version": FORMAT_VERSION, "model": self.model.to_dict(),
                "method": self.method, "built_from": self.built_from,
                "groups": sorted(self.orders)}
        arrays = {f"order_{k}": v.astype(np.int32) for k, v in self.orders.items()}
        atomic_write_with(path, lambda fh: np.savez(fh, meta=np.array(json.dumps(meta)),
                                                    **arrays))
        return path


def _width(group: str, model: ModelShape) -> int:
    return model.hidden_size if GROUP_WIDTH[group] == "H" else model.intermediate_size


def load_layout(path: str | Path) -> Layout:
    """Read and check a layout file; every problem is a ConfigError naming the file."""
    path = as_path(path, "layout file", "flash.layout")
    where = str(path)
    if not path.is_file():
        raise ConfigError("no such layout file", source=where, key_path="flash.layout",
                          allowed="a .npz written by `memsim layout build`")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy: one bare array
            raise ConfigError("not a layout file (a single .npy array)", source=where,
                              allowed="a .npz written by `memsim layout build`")
        with loaded as data:
            if "meta" not in data.files:
                raise ConfigError("not a layout file", source=where,
                                  allowed="a .npz written by `memsim layout build`")
            meta = json.loads(str(data["meta"]))
            orders = {n[6:]: data[n] for n in data.files if n.startswith("order_")}
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip/zlib/numpy raise many types on damage
        raise ConfigError(f"cannot read layout ({type(exc).__name__}: {exc}); damaged?",
                          source=where,
                          allowed="a .npz written by `memsim layout build`") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError("unsupported or missing format_version", source=where,
                          key_path="format_version", allowed=str(FORMAT_VERSION))
    if not orders:  # e.g. a trace file: same container, same version key
        raise ConfigError("holds no column orders: not a layout file", source=where,
                          key_path="flash.layout",
                          allowed="a .npz written by `memsim layout build`")
    for name, order in orders.items():
        if order.dtype.kind not in "iu" or order.ndim != 2:
            raise ConfigError(f"order must be a 2-D integer array, got {order.dtype} "
                              f"{order.shape}", source=where, key_path=f"order_{name}")
    model = ModelShape.from_dict(meta.get("model"), source=where)
    return Layout(model, {k: v.astype(np.int32) for k, v in orders.items()},
                  str(meta.get("method", "?")), dict(meta.get("built_from") or {}), where)


def build_layout(trace: Trace, method: str, *, trace_path: str | None = None) -> Layout:
    """A layout for every mask group of `trace`, each layer ordered by `method`."""
    order_of = LAYOUT_METHODS.get(method, key_path="--method")
    orders = {}
    for group in trace.groups():
        words = group.bits.words  # (T, L, W)
        orders[group.name] = np.stack([
            order_of(np.ascontiguousarray(words[:, layer]), group.num_columns)
            for layer in range(trace.num_layers)]).astype(np.int32)
    built_from = {"tokens": trace.num_tokens, "method": trace.method,
                  "method_params": trace.method_params, "source": trace.source}
    if trace_path is not None:
        built_from.update(trace=str(trace_path), sha256=sha256_file(trace_path))
    return Layout(trace.model, orders, method, built_from)
