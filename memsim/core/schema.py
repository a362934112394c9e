"""A strict YAML -> frozen-dataclass loader (Ramulator/Vidur style config flow).

Every config dataclass declares its fields with `spec(...)`: a help string, the unit, and the
allowed range or choices. `load_dataclass` walks a parsed YAML mapping against the dataclass
and raises one `ConfigError` naming the file, the dotted key path and what is allowed for:
unknown keys, missing required keys, wrong types and out-of-range values. A field whose type
is a `Registry` of dataclasses (see `impl_field`) is dispatched on its `impl:` key.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import MISSING, field
from typing import Any

from memsim.core.errors import ConfigError
from memsim.core.registry import Registry


def spec(help: str, *, default: Any = MISSING, unit: str = "", ge: float | None = None,
         gt: float | None = None, le: float | None = None, choices: tuple | None = None,
         registry: Registry | None = None, allow_inf: bool = False) -> Any:
    """A dataclass field with the metadata the loader and `docs/` need (`allow_inf`: a float
    that may be `.inf` in YAML, e.g. "no limit")."""
    meta = dict(help=help, unit=unit, ge=ge, gt=gt, le=le, choices=choices, registry=registry,
                allow_inf=allow_inf)
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def _allowed(f: dataclasses.Field, kind: str) -> str:
    m = f.metadata
    if m.get("registry") is not None:
        return ", ".join(m["registry"].names())
    if m.get("choices"):
        return ", ".join(map(str, m["choices"]))
    bounds = []
    if m.get("gt") is not None:
        bounds.append(f"> {m['gt']}")
    if m.get("ge") is not None:
        bounds.append(f">= {m['ge']}")
    if m.get("le") is not None:
        bounds.append(f"<= {m['le']}")
    if m.get("allow_inf"):
        bounds.append("or .inf")
    unit = f" ({m['unit']})" if m.get("unit") else ""
    return (f"{kind} " + " and ".join(bounds)).strip() + unit


MAX_INT = 2**63 - 1  # every integer setting: what numpy and the results table's int64 hold


def _check_scalar(value: Any, hint: Any, f: dataclasses.Field, where: str, source: str) -> Any:
    """Type and range check of one leaf value; returns it converted (int -> float)."""
    optional = typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType"))
    base = [a for a in typing.get_args(hint) if a is not type(None)][0] if optional else hint
    if value is None:
        if optional:
            return None
        raise ConfigError("must not be empty", source=source, key_path=where,
                          allowed=_allowed(f, base.__name__))
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and abs(value) > MAX_INT:  # a 400-digit seed would crash far downstream
            raise ConfigError(f"out of range: {short_repr(value)}", source=source, key_path=where,
                              allowed=f"{_allowed(f, 'int')}, at most {MAX_INT} (64 bits)")
    elif base is float:
        number = _as_float(value)
        ok = number is not None and (math.isfinite(number) or (f.metadata.get("allow_inf")
                                                                and number == math.inf))
        value = number if ok else value
    else:
        ok = isinstance(value, base)
    if not ok:
        raise ConfigError(f"expected {base.__name__}, got {type(value).__name__} "
                          f"{short_repr(value)}",
                          source=source, key_path=where, allowed=_allowed(f, base.__name__))
    _check_range(value, f, where, source, base.__name__)
    return value


def short_repr(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters (a pasted blob or a 400-digit number)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _as_float(value: Any) -> float | None:
    """A YAML number as a float; None for non-numbers and for integers too large for a
    float (a 400-digit integer would otherwise raise OverflowError, not a ConfigError)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _check_range(value: Any, f: dataclasses.Field, where: str, source: str, kind: str) -> None:
    m = f.metadata
    bad = ((m.get("gt") is not None and not value > m["gt"])
           or (m.get("ge") is not None and not value >= m["ge"])
           or (m.get("le") is not None and not value <= m["le"])
           or (m.get("choices") and value not in m["choices"])
           or (m.get("registry") is not None and value not in m["registry"]))
    if bad:
        what = "unknown value" if (m.get("choices") or m.get("registry")) else "out of range:"
        raise ConfigError(f"{what} {short_repr(value)}", source=source, key_path=where,
                          allowed=_allowed(f, kind))


def load_dataclass(cls: type, data: Any, *, source: str, path: str = "") -> Any:
    """Build `cls` from a YAML mapping, strictly. `path` is the dotted prefix for errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", source=source,
                          key_path=path or "<top>")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}", source=source,
                          key_path=_join(path, unknown[0]), allowed=", ".join(fields))
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        where = _join(path, name)
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                unit = f" ({f.metadata['unit']})" if f.metadata.get("unit") else ""
                raise ConfigError(f"required key is missing: {f.metadata.get('help', '')}{unit}",
                                  source=source, key_path=where)
            continue
        values[name] = _load_value(data[name], hints[name], f, where, source)
    return cls(**values)


def _load_value(value: Any, hint: Any, f: dataclasses.Field, where: str, source: str) -> Any:
    impls = f.metadata.get("impls")
    if impls is not None:
        return _load_impl(value, impls, where, source)
    inner = optional_dataclass(hint)
    if inner is not None and value is None:
        return None  # an optional section left out (`thermal: none` is resolved before)
    if inner is not None:
        hint = inner
    if dataclasses.is_dataclass(hint):
        return load_dataclass(hint, value, source=source, path=where)
    item = dataclass_tuple_item(hint)
    if item is not None:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {type(value).__name__}", source=source,
                              key_path=where, allowed="[{...}, ...]")
        return tuple(load_dataclass(item, v, source=source, path=f"{where}[{i}]")
                     for i, v in enumerate(value))
    if typing.get_origin(hint) is dict:
        _, value_type = typing.get_args(hint)
        if not isinstance(value, dict) or not value:
            raise ConfigError("expected a non-empty mapping of name -> settings", source=source,
                              key_path=where)
        return {str(k): load_dataclass(value_type, v, source=source, path=_join(where, str(k)))
                for k, v in value.items()}
    return _check_scalar(value, hint, f, where, source)


def optional_dataclass(hint: Any) -> type | None:
    """D for a `D | None` field whose D is a dataclass, else None."""
    if typing.get_origin(hint) not in (typing.Union, getattr(__import__("types"), "UnionType")):
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else None


def dataclass_tuple_item(hint: Any) -> type | None:
    """D for a `tuple[D, ...]` field whose D is a dataclass (a YAML list of mappings)."""
    if typing.get_origin(hint) is not tuple:
        return None
    args = typing.get_args(hint)
    return args[0] if len(args) == 2 and args[1] is Ellipsis and \
        dataclasses.is_dataclass(args[0]) else None


def _load_impl(value: Any, impls: Registry, where: str, source: str) -> Any:
    """A component chosen by its `impl:` key; the registry maps impl -> config dataclass."""
    if not isinstance(value, dict) or "impl" not in value:
        raise ConfigError("needs an `impl:` key", source=source, key_path=_join(where, "impl"),
                          allowed=", ".join(impls.names()))
    cls = impls.get(value["impl"], source=source, key_path=_join(where, "impl"))
    return load_dataclass(cls, value, source=source, path=where)


def impl_field(help: str, impls: Registry) -> Any:
    """A field whose dataclass is picked by the value's `impl:` key from `impls`."""
    return field(metadata=dict(help=help, impls=impls, unit=""))


def to_plain(obj: Any) -> Any:
    """A config dataclass back to plain YAML-able data (init fields only)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and any(dataclasses.is_dataclass(v) for v in obj):
        return [to_plain(v) for v in obj]  # a list of sections (background apps)
    return obj


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
