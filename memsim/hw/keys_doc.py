"""Every YAML key of a config dataclass as a markdown table (docs/hw_config.md is its output)."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING

from memsim.core.schema import _allowed, dataclass_tuple_item, optional_dataclass


def _rows(cls: type, prefix: str) -> list[tuple[str, ...]]:
    rows = []
    hints = typing.get_type_hints(cls)
    for f in (f for f in dataclasses.fields(cls) if f.init):
        key, hint, meta = f"{prefix}{f.name}", hints[f.name], f.metadata
        if meta.get("impls") is not None:
            for impl in meta["impls"].names():
                impl_cls = meta["impls"].get(impl)
                rows.append((f"{key}", "mapping", "", "", f"impl: {impl}",
                             (impl_cls.__doc__ or "").strip().splitlines()[0]))
                rows += [r for r in _rows(impl_cls, f"{key}.") if not r[0].endswith(".impl")]
            continue
        if optional_dataclass(hint) is not None:  # an optional section (thermal)
            rows.append((key, "mapping or name", "", "none", "", meta.get("help", "")))
            rows += _rows(optional_dataclass(hint), f"{key}.")
            continue
        if dataclass_tuple_item(hint) is not None:  # a list of sections (background)
            rows.append((key, "list", "", "[]", "", meta.get("help", "")))
            rows += _rows(dataclass_tuple_item(hint), f"{key}[].")
            continue
        if dataclasses.is_dataclass(hint):
            rows += _rows(hint, f"{key}.")
            continue
        if typing.get_origin(hint) is dict:
            rows += _rows(typing.get_args(hint)[1], f"{key}.<name>.")
            continue
        default = "required" if f.default is MISSING and f.default_factory is MISSING else \
            repr(f.default)
        kind = getattr(hint, "__name__", str(hint).replace("typing.", ""))
        rows.append((key, kind, meta.get("unit", ""), default, _allowed(f, ""),
                     meta.get("help", "")))
    return rows


def keys_markdown(cls: type) -> str:
    lines = ["| key | type | unit | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |"
              for row in _rows(cls, "")]
    return "\n".join(lines)
