"""Sweep files: a base point and a grid of axes, expanded into frozen, validated points.

    name: smollm2-cache
    base:
      hw: flagship                      # preset name or YAML path (relative to this file)
      model: smollm2-135m
      trace: {source: model, windows: 8, window_len: 256}
      method: dip
      density: 0.5
    axes:
      hw.dram.capacity_GB: [0.03, 0.05, 0.08]   # any hardware key, `hw.` + its path
      method: [dense, dip, dip_ca]
      dip_ca.gamma: [0.1, 0.3]
      cache.impl: [lru, belady]                 # short for hw.cache.impl

The grid is the product of the axes. Points that make no sense are dropped with a stated
reason (a `dip_ca.*` value for another method, a density for dense, Belady driving
cache-aware masking); points that resolve to the same configuration are run once. Each point
is built by validating a fresh copy of the base (strict loaders, no shared mutable state).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from memsim.core.errors import ConfigError
from memsim.core.schema import load_dataclass, spec, to_plain
from memsim.hw.config import HardwareConfig, hw_from_dict, load_hw

METHODS = ("dense", "glu", "cats", "dip", "dip_ca")  # workloads/masks registers these
SYNTHETIC_METHODS = ("dense", "dip")
SHORT_AXES = {"cache.": "hw.cache."}  # `cache.impl` == `hw.cache.impl`
LAYOUT_AXIS = "hw.flash.layout"  # a file path: a relative one is taken from the sweep file
# (floor, floor itself reachable, what is read densely): the lowest MLP density a method can
# reach (PAPER.md section 3): GLU computes W_up and W_gate densely, CATS computes W_gate.
DENSE_READ_FLOOR = {"glu": (2 / 3, True, "W_up and W_gate"), "cats": (1 / 3, False, "W_gate")}


@dataclass(frozen=True, kw_only=True)
class TraceSpec:
    """Where a point's masks come from."""

    source: str = spec("`model`: a real masked forward pass (workloads/, gives perplexity); "
                       "`synthetic`: memsim's generator (no perplexity)", default="model",
                       choices=("model", "synthetic"))
    corpus: str = spec("corpus: `shakespeare` or a text file / saved dataset path",
                       default="shakespeare")
    split: str | None = spec("corpus split (default: test)", default=None)
    windows: int = spec("evaluation windows (sequences)", default=8, ge=1)
    window_len: int = spec("tokens per window", default=256, ge=2)
    seed: int = spec("window sampling / synthetic seed", default=0, ge=0)
    tokens: int = spec("synthetic: tokens per sequence", default=256, ge=1)
    prompt_len: int = spec("synthetic: prompt tokens before the trace", default=0, ge=0)


@dataclass(frozen=True, kw_only=True)
class DipCaSpec:
    """Cache-aware masking parameters (PAPER.md section 3)."""

    gamma: float = spec("score scale of uncached columns (1 = plain DIP)", default=0.3, ge=0,
                        le=1)
    fixed_top_n: int = spec("largest scores never scaled down", default=0, ge=0)
    warm_up: bool = spec("ramp gamma in over the first tokens", default=False)


@dataclass(frozen=True, kw_only=True)
class PointSpec:
    """Everything but the hardware that decides a point."""

    model: str = spec("model preset or checkpoint path", default="smollm2-135m")
    trace: TraceSpec = spec("mask source", default=TraceSpec())
    method: str = spec("masking method", default="dip", choices=METHODS)
    density: float = spec("target MLP density", default=0.5, gt=0, le=1)
    dip_ca: DipCaSpec = spec("DIP-CA parameters", default=DipCaSpec())
    adapter: str = spec("LoRA adapter folder, or `none`", default="none")
    mode: str = spec("simulation mode", default="event", choices=("event", "analytic"))


@dataclass(frozen=True)
class SweepPoint:
    """One resolved point: its hardware, its workload, and the axis values that made it."""

    hw: HardwareConfig
    spec: PointSpec
    axis_values: tuple[tuple[str, Any], ...]

    @property
    def config(self) -> dict:
        return {"hw": to_plain(self.hw), "point": to_plain(self.spec)}

    @property
    def point_id(self) -> str:
        """Hash of the resolved configuration: a changed config is a new point."""
        return "p-" + _digest(self.config)

    @property
    def method_params(self) -> dict:
        s = self.spec
        if s.method == "dense":
            return {}
        params = {"density": s.density}
        if s.method == "dip_ca":
            params.update(gamma=s.dip_ca.gamma, fixed_top_n=s.dip_ca.fixed_top_n,
                          warm_up=s.dip_ca.warm_up)
        return params


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str  # the sweep file, for error messages
    base_hw: dict
    base_point: dict
    axes: dict[str, list]


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read sweep file: {exc}", source=str(path)) from None
    return sweep_from_dict(data, source=str(path), root=path.parent)


def sweep_from_dict(data: Any, *, source: str = "<api>", root: Path = Path(".")) -> SweepSpec:
    if not isinstance(data, dict):
        raise ConfigError("a sweep file is a mapping", source=source, key_path="<top>")
    unknown = sorted(set(data) - {"name", "base", "axes"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}", source=source, key_path=unknown[0],
                          allowed="name, base, axes")
    base = dict(data.get("base") or {})
    if "hw" not in base:
        raise ConfigError("required key is missing: hardware preset or YAML path",
                          source=source, key_path="base.hw")
    hw_ref = base.pop("hw")
    hw_path = root / str(hw_ref)
    hw = load_hw(hw_path if hw_path.is_file() else hw_ref)
    axes = data.get("axes") or {}
    if not isinstance(axes, dict) or any(not isinstance(v, list) or not v for v in axes.values()):
        raise ConfigError("axes map an axis name to a non-empty list of values", source=source,
                          key_path="axes")
    axes = {_canonical_axis(k): v for k, v in axes.items()}
    if isinstance(axes.get(LAYOUT_AXIS), list):  # relative to the sweep file, like base.hw
        axes[LAYOUT_AXIS] = [str((root / v).resolve()) if isinstance(v, str)
                             and not Path(v).is_absolute() else v for v in axes[LAYOUT_AXIS]]
        for value in axes[LAYOUT_AXIS]:
            if isinstance(value, str) and not Path(value).is_file():
                raise ConfigError(f"no such layout file {value!r}", source=source,
                                  key_path=f"axes.{LAYOUT_AXIS}",
                                  allowed="a .npz written by `memsim layout build` (a path "
                                          "relative to the sweep file), or null")
    spec_ = SweepSpec(str(data.get("name", Path(source).stem)), source, to_plain(hw), base,
                      axes)
    point_fields = {f.name for f in dataclasses.fields(PointSpec)}
    for axis in spec_.axes:
        if not axis.startswith("hw.") and axis.split(".")[0] not in point_fields:
            raise ConfigError(f"unknown axis {axis!r}", source=source, key_path=f"axes.{axis}",
                              allowed="hw.<hardware key>, cache.<key>, "
                                      + ", ".join(sorted(point_fields)))
    for axis, values in spec_.axes.items():  # every axis and value checked before any work
        for value in values:
            _apply(spec_, ((axis, value),))
    return spec_


def _canonical_axis(name: str) -> str:
    for short, full in SHORT_AXES.items():
        if name.startswith(short):
            return full + name[len(short):]
    return name


def _apply(sweep: SweepSpec, values: tuple[tuple[str, Any], ...]) -> SweepPoint:
    """Validate base + axis values into a point (fresh copies; strict loaders)."""
    hw_data, point_data = copy.deepcopy(sweep.base_hw), copy.deepcopy(sweep.base_point)
    for axis, value in values:
        if axis.startswith("hw."):
            _set_path(hw_data, axis[3:], value, axis, sweep.source)
        else:
            _set_path(point_data, axis, value, axis, sweep.source)
    hw = hw_from_dict(hw_data, source=sweep.source, path="hw")
    point = load_dataclass(PointSpec, point_data, source=sweep.source, path="base")
    return SweepPoint(hw, _normalised(point), values)


def _normalised(point: PointSpec) -> PointSpec:
    """Drop parameters the method ignores, so equal workloads hash equal."""
    if point.method != "dip_ca":
        point = dataclasses.replace(point, dip_ca=DipCaSpec())
    if point.method == "dense":
        point = dataclasses.replace(point, density=1.0)
    return point


def _set_path(data: dict, path: str, value: Any, axis: str, source: str) -> None:
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}  # a section the base left to defaults; the loader checks the key
        node = node[key]
    if not leaf:
        raise ConfigError("empty axis name", source=source, key_path=axis)
    node[leaf] = value


def expand(sweep: SweepSpec) -> tuple[list[SweepPoint], list[tuple[dict, str]]]:
    """All points of the grid, and the (axis values, reason) of those dropped."""
    names = list(sweep.axes)
    points, dropped, seen = [], [], {}
    for combo in itertools.product(*(sweep.axes[n] for n in names)):
        values = tuple(zip(names, combo))
        point = _apply(sweep, values)
        reason = invalid_reason(point)
        if reason is None and point.point_id in seen:
            reason = _duplicate_reason(point, dict(values), seen[point.point_id])
        if reason is not None:
            dropped.append((dict(values), reason))
            continue
        seen[point.point_id] = dict(values)
        points.append(point)
    return points, dropped


def invalid_reason(point: SweepPoint) -> str | None:
    """Why a point makes no sense, or None (Vidur's `is_valid`, with the reason said)."""
    method, policy = point.spec.method, point.hw.cache.impl
    if method == "dip_ca" and _is_offline(policy):
        return (f"cache-aware masking reads the live cache state; {policy} is an offline "
                "oracle that needs the future masks")
    if method in DENSE_READ_FLOOR:
        floor, reachable, what = DENSE_READ_FLOOR[method]
        d = point.spec.density
        if (d < floor - 1e-9) if reachable else (d <= floor + 1e-9):
            return f"{method} reads {what} in full: its MLP density is " \
                   f"{'>=' if reachable else '>'} {floor:.3f}"
    if point.spec.trace.source == "synthetic" and method not in SYNTHETIC_METHODS:
        return f"synthetic traces exist for {', '.join(SYNTHETIC_METHODS)} only"
    return None


def _duplicate_reason(point: SweepPoint, values: dict, first: dict) -> str:
    method, why = point.spec.method, []
    if method != "dip_ca" and any(k.startswith("dip_ca.") for k in values):
        why.append(f"dip_ca parameters do not apply to {method}")
    if method == "dense" and "density" in values:
        why.append("dense reads every column: density does not apply")
    return f"{'; '.join(why) or 'same configuration'} (runs once, as {first})"


def _is_offline(policy_name: str) -> bool:
    from memsim.cache import POLICIES
    return bool(getattr(POLICIES.get(policy_name), "is_offline", False))


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
