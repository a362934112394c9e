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

      variant:                                  # a bundle axis: settings changed together
        - {name: naive}
        - {name: frequency + merge 4 KiB, layout.method: frequency, hw.flash.merge_gap_KiB: 4}

The grid is the product of the axes. An axis whose values are mappings, each with a `name`,
is a bundle: each value applies all its settings at once and the table shows its name. A
bundle value with `best_of: [candidates]` is a search: per point, the fastest candidate
(memsim/sweeps/best_of.py).
`layout.method` builds a flash layout from the point's own calibration windows (a model
trace on `layout.split`, disjoint from the evaluated ones) inside the sweep.
Points that make no sense are dropped with a stated reason (a `dip_ca.*` value for another
method, a density for dense, Belady driving cache-aware masking, a layout for dense
streaming, a window setting for another cache policy); points that resolve to the same configuration are run once. Each point is built
by validating a fresh copy of the base (strict loaders, no shared mutable state).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import itertools
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsim.core.errors import ConfigError, is_internal, user_input
from memsim.core.files import as_path
from memsim.core.schema import load_dataclass, spec, to_plain
from memsim.core.strict_yaml import read_yaml_mapping
from memsim.hw.config import HardwareConfig, hw_from_dict, load_hw
from memsim.hw.layouts import LAYOUT_METHODS
from memsim.sim.session import SessionSpec
from memsim.sweeps.best_of import (
    CHOICE_KEY,
    check_one_search,
    check_search,
    expand_searches,
    is_search,
)

METHODS = ("dense", "glu", "cats", "dip", "dip_ca", "dip_ra")  # workloads/masks registers these
CACHE_AWARE = ("dip_ca", "dip_ra")  # masks that read the live cache (dip_ra: and the flash)
SYNTHETIC_METHODS = ("dense", "dip")
SHORT_AXES = {"cache.": "hw.cache."}  # `cache.impl` == `hw.cache.impl`
# Models a real forward pass loads by name (workloads/model.py's DEFAULT_MODEL); any other
# `trace.source: model` point needs a checkpoint folder.
MODEL_SOURCE_PRESETS = ("smollm2-135m",)
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
class DipRaSpec:
    """Request-aware DIP parameters (docs/request_aware.md); it also takes dip_ca's."""

    request_weight: float = spec("flash cost weight: a read costing one lone page must bring "
                                 "this many marginal columns' score (0 = DIP-CA)", default=1.0,
                                 ge=0)


LAYOUT_CHOICES = ("none", *LAYOUT_METHODS.names())  # memsim/hw/layouts/, one file each


@dataclass(frozen=True, kw_only=True)
class LayoutSpec:
    """A flash layout the sweep builds for the point (memsim/hw/layouts/), from calibration
    windows of the same model and corpus on another split."""

    method: str = spec("placement method, or `none` (model order, or hw.flash.layout)",
                       default="none", choices=LAYOUT_CHOICES)
    split: str = spec("corpus split of the calibration windows (disjoint from the "
                      "evaluated split)", default="train")
    windows: int = spec("calibration windows", default=4, ge=1)


@dataclass(frozen=True, kw_only=True)
class PointSpec:
    """Everything but the hardware that decides a point."""

    model: str = spec("model preset or checkpoint path", default="smollm2-135m")
    trace: TraceSpec = spec("mask source", default=TraceSpec())
    method: str = spec("masking method", default="dip", choices=METHODS)
    density: float = spec("target MLP density", default=0.5, gt=0, le=1)
    dip_ca: DipCaSpec = spec("DIP-CA parameters (dip_ra too)", default=DipCaSpec())
    dip_ra: DipRaSpec = spec("request-aware DIP parameters", default=DipRaSpec())
    adapter: str = spec("LoRA adapter folder, or `none`", default="none")
    mode: str = spec("simulation mode", default="event", choices=("event", "analytic"))
    layout: LayoutSpec = spec("flash layout built from calibration windows", default=LayoutSpec())
    session: SessionSpec | None = spec("a chat session whose answers loop the trace (a "
                                       "mapping or a session YAML path; memsim/sim/session.py)"
                                       ", or none", default=None)


@dataclass(frozen=True)
class SweepPoint:
    """One resolved point: its hardware, its workload, and the axis values that made it."""

    hw: HardwareConfig
    spec: PointSpec
    axis_values: tuple[tuple[str, Any], ...]

    @property
    def config(self) -> dict:
        return {"hw": to_plain(self.hw), "point": to_plain(self.spec)}

    @functools.cached_property
    def point_id(self) -> str:
        """Hash of the resolved configuration: a changed config is a new point (computed
        once: the point is frozen, and the driver asks for it many times)."""
        return "p-" + _digest(self.config)

    @property
    def method_params(self) -> dict:
        s = self.spec
        if s.method == "dense":
            return {}
        params = {"density": s.density}
        if s.method in CACHE_AWARE:
            params.update(gamma=s.dip_ca.gamma, fixed_top_n=s.dip_ca.fixed_top_n,
                          warm_up=s.dip_ca.warm_up)
        if s.method == "dip_ra":
            params.update(request_weight=s.dip_ra.request_weight)
        return params


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str  # the sweep file, for error messages
    base_hw: dict
    base_point: dict
    axes: dict[str, list]
    root: str = "."  # the sweep file's folder: relative paths in it (a flash layout) start here


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file: every axis, value and model, before any work."""
    path = as_path(path, "sweep file")
    data = read_yaml_mapping(path, what="sweep file")  # a repeated key is an error
    return sweep_from_dict(data, source=str(path), root=path.parent)


def sweep_from_dict(data: Any, *, source: str = "<api>", root: Path = Path(".")) -> SweepSpec:
    if not isinstance(data, dict):
        raise ConfigError("a sweep file is a mapping", source=source, key_path="<top>",
                          allowed="name, base, axes")
    unknown = sorted(set(map(str, data)) - {"name", "base", "axes"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}", source=source, key_path=unknown[0],
                          allowed="name, base, axes")
    base = _mapping(data.get("base"), "base", source)
    if "hw" not in base:
        raise ConfigError("required key is missing: hardware preset or YAML path",
                          source=source, key_path="base.hw")
    hw_ref = base.pop("hw")
    hw_path = root / str(hw_ref)
    with user_input(source=source, key_path="base.hw"):
        hw = load_hw(hw_path if hw_path.is_file() else str(hw_ref))
    axes = _axes(data.get("axes"), source)
    name = data.get("name", Path(source).stem)
    if not isinstance(name, (str, int, float)) or isinstance(name, bool):
        raise ConfigError(f"expected a short text, got {type(name).__name__}", source=source,
                          key_path="name")
    check_one_search(axes, source)
    canonical = {_canonical_axis(k): expand_searches(v) for k, v in axes.items()}
    spec_ = SweepSpec(str(name), source, to_plain(hw), base, canonical, str(root))
    check_sweep(spec_, typed={_canonical_axis(k): k for k in axes})
    return spec_


def _mapping(value: Any, key: str, source: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping, got {type(value).__name__}", source=source,
                          key_path=key)
    return dict(value)


def _axes(value: Any, source: str) -> dict:
    """The `axes:` mapping: text names, each a non-empty list, no axis given twice (also
    not as its short and long name, `cache.impl` and `hw.cache.impl`)."""
    axes = _mapping(value, "axes", source)
    seen: dict[str, str] = {}
    for name, values in axes.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"an axis name is text, got {name!r}", source=source,
                              key_path="axes", allowed="hw.<hardware key>, cache.<key>, "
                              "method, density, ...")
        if not isinstance(values, list) or not values:
            raise ConfigError("an axis maps to a non-empty list of values", source=source,
                              key_path=f"axes.{name}", allowed="[value, value, ...]")
        _check_bundle(name, values, source)
        full = _canonical_axis(name)
        if full in seen:
            raise ConfigError(f"the same axis as {seen[full]!r}: one would silently replace "
                              "the other", source=source, key_path=f"axes.{name}",
                              allowed="each axis once")
        seen[full] = name
    return axes


def is_bundle(values: list) -> bool:
    """An axis whose values are mappings (each with a `name`): settings applied together."""
    return any(isinstance(v, dict) for v in values)


def _check_bundle(axis: str, values: list, source: str) -> None:
    if not is_bundle(values):
        return
    names = []
    for i, value in enumerate(values):
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) \
                or not value["name"]:
            raise ConfigError("every value of a bundle axis is a mapping with a `name`",
                              source=source, key_path=f"axes.{axis}[{i}]",
                              allowed="{name: label, <axis>: value, ...}")
        if CHOICE_KEY in value:  # set by a search's expansion only
            raise ConfigError(f"`{CHOICE_KEY}` is not a setting", source=source,
                              key_path=f"axes.{axis}[{i}].{CHOICE_KEY}",
                              allowed="hw.<hardware key>, cache.<key>, method, ...")
        if is_search(value):
            check_search(axis, i, value, source)
        names.append(value["name"])
    if len(set(names)) != len(names):
        raise ConfigError(f"bundle names repeat: {names}", source=source,
                          key_path=f"axes.{axis}", allowed="distinct names")


def _settings(axis: str, value: Any) -> tuple[tuple[str, Any], ...]:
    """(axis, value) pairs one axis value applies: itself, or a bundle's settings."""
    if isinstance(value, dict):
        return tuple((_canonical_axis(str(k)), v) for k, v in value.items()
                     if k not in ("name", CHOICE_KEY))
    return ((axis, value),)


def check_sweep(sweep: SweepSpec, typed: dict[str, str] | None = None) -> None:
    """Everything that can be checked before any work: the base alone, each axis value on
    the base (an error names the axis as typed), the models, and that synthetic traces fit
    in memory."""
    typed = typed or {}
    point_fields = {f.name for f in dataclasses.fields(PointSpec)}
    for axis, values in sweep.axes.items():
        inner = [(f"{axis}.{a}", a) for v in values if isinstance(v, dict)
                 for a, _ in _settings(axis, v)] if is_bundle(values) else [(axis, axis)]
        for where, name in inner:
            if not name.startswith("hw.") and name.split(".")[0] not in point_fields:
                shown = typed.get(axis, axis) + where[len(axis):]
                raise ConfigError(f"unknown axis {shown!r}", source=sweep.source,
                                  key_path=f"axes.{shown}",
                                  allowed="hw.<hardware key>, cache.<key>, "
                                          + ", ".join(sorted(point_fields)))
    base = _apply(sweep, ())  # the base alone: its errors name base.* / hw.*
    keys = {k for axis, values in sweep.axes.items() for v in values for k, _ in _settings(axis, v)}
    if not any(_is_input_axis(k) for k in keys):
        check_point_inputs(base, sweep.source)
    for axis, values in sweep.axes.items():
        for value in values:
            with _on_axis(sweep.source, typed.get(axis, axis), value):
                point = _apply(sweep, ((axis, value),))
                if any(_is_input_axis(k) for k, _ in _settings(axis, value)):
                    check_point_inputs(point, sweep.source)


def _is_input_axis(axis: str) -> bool:
    """Axes that choose what a point reads: its model, trace, adapter (or a bundle)."""
    return axis.split(".")[0] in ("model", "trace", "adapter")


@contextmanager
def _on_axis(source: str, axis: str, value: Any):
    """An error about one axis value, told against the axis as the user typed it (and the
    key or file it broke, when that is not the axis itself)."""
    try:
        yield
    except ConfigError as exc:
        inner = "" if is_internal(exc.source) or exc.source == source else f"{exc.source}: "
        key = exc.key_path
        detail = f" ({key})" if key and not key.endswith(axis.split(".")[-1]) else ""
        raise ConfigError(f"value {value!r}{detail}: {inner}{exc.message}", source=source,
                          key_path=f"axes.{axis}", allowed=exc.allowed) from None


def check_point_inputs(point: SweepPoint, source: str) -> None:
    """The model (and for real traces its corpus and adapter) exist, a synthetic trace fits
    in memory, the KV cache fits the DRAM, a flash layout file exists: an unknown model is
    an error now, not after the first task."""
    from memsim.core.files import check_fits_in_memory
    from memsim.traces.model_shape import load_model_shape
    from memsim.traces.synth import mask_bytes_per_token

    s = point.spec
    with _told_at(source, "base.model"):
        model = load_model_shape(s.model)
    if s.trace.source == "model":
        _check_model_source_inputs(s, source)
    else:
        per_token = mask_bytes_per_token(model)
        check_fits_in_memory(s.trace.tokens * s.trace.windows * per_token,
                             f"a synthetic trace of {s.trace.windows} x {s.trace.tokens} "
                             f"tokens of {s.model}", source=source,
                             key_path="base.trace.tokens", per_unit_bytes=per_token
                             * s.trace.windows)
    _check_fits_dram(point, model, source)
    layout = point.hw.flash.layout
    if layout is not None and not Path(layout).is_file():
        raise ConfigError(f"no layout file {layout!r}", source=source,
                          key_path="hw.flash.layout",
                          allowed="a .npz written by `memsim layout build`")


def _check_fits_dram(point: SweepPoint, model, source: str) -> None:
    """The point's KV cache fits its DRAM (else every simulation of it would fail)."""
    from memsim.sim.footprint import Footprint
    from memsim.sim.plan import kv_budget_tokens

    t = point.spec.trace
    longest, prompt = (t.window_len, 0) if t.source == "model" else (t.tokens, t.prompt_len)
    kv_bytes = (kv_budget_tokens(point.hw, prompt, longest) * model.num_hidden_layers
                * Footprint.of(model, point.hw).kv_bytes_per_token_per_layer)
    if kv_bytes > point.hw.dram.capacity_bytes:
        raise ConfigError(f"the KV cache alone ({kv_bytes / 1e9:.6g} GB for {prompt} + "
                          f"{longest} tokens of {model.name}) exceeds DRAM "
                          f"({point.hw.dram.capacity_GB:.6g} GB)", source=source,
                          key_path="hw.dram.capacity_GB", allowed=f"> {kv_bytes / 1e9:.6g}")


@contextmanager
def _told_at(source: str, key: str):
    """An error told against `key` of the sweep file, keeping the file it came from (a
    model's config.json) and its key there in the message."""
    try:
        yield
    except ConfigError as exc:
        inner = [] if is_internal(exc.source) or exc.source == source else [exc.source]
        inner += [exc.key_path] if inner and exc.key_path else []
        raise ConfigError("".join(f"{p}: " for p in inner) + exc.message, source=source,
                          key_path=key, allowed=exc.allowed) from None


def _check_model_source_inputs(s: PointSpec, source: str) -> None:
    """A real forward pass needs weights: the preset workloads/ ships, or a checkpoint
    folder with safetensors (a .gguf has no config.json for the simulator's shapes)."""
    model = Path(s.model)
    if s.model not in MODEL_SOURCE_PRESETS and not (model.is_dir()
                                                     and any(model.glob("*.safetensors"))):
        raise ConfigError(f"no weights for model {s.model!r}: a real forward pass "
                          "(trace.source: model) needs the preset workloads/ loads, or a "
                          "checkpoint folder with config.json and .safetensors", source=source,
                          key_path="base.model",
                          allowed=", ".join(MODEL_SOURCE_PRESETS) + ", a checkpoint folder, "
                          "or trace.source: synthetic")
    if s.trace.corpus != "shakespeare" and not Path(s.trace.corpus).exists():
        raise ConfigError(f"no corpus {s.trace.corpus!r}", source=source,
                          key_path="base.trace.corpus",
                          allowed="shakespeare, a .txt file or folder, a saved dataset folder")
    if s.adapter != "none" and not Path(s.adapter).is_dir():
        raise ConfigError(f"no adapter folder {s.adapter!r}", source=source,
                          key_path="base.adapter",
                          allowed="none, or a folder written by `memsim finetune`")


def _canonical_axis(name: str) -> str:
    for short, full in SHORT_AXES.items():
        if name.startswith(short):
            return full + name[len(short):]
    return name


def _apply(sweep: SweepSpec, values: tuple[tuple[str, Any], ...]) -> SweepPoint:
    """Validate base + axis values into a point (fresh copies; strict loaders)."""
    hw_data, point_data = copy.deepcopy(sweep.base_hw), copy.deepcopy(sweep.base_point)
    for axis, value in values:
        for key, setting in _settings(axis, value):
            if key.startswith("hw."):
                _set_path(hw_data, key[3:], setting, key, sweep.source)
            else:
                _set_path(point_data, key, setting, key, sweep.source)
    hw = hw_from_dict(hw_data, source=sweep.source, path="hw", root=Path(sweep.root))
    _resolve_session(point_data, sweep)
    point = _normalised(load_dataclass(PointSpec, point_data, source=sweep.source, path="base"))
    return SweepPoint(_normalised_hw(hw, point), point, values)


def _resolve_session(point_data: dict, sweep: SweepSpec) -> None:
    """`session: none` -> no session; a path (relative to the sweep file) -> its mapping."""
    value = point_data.get("session")
    if isinstance(value, str):
        if value == "none":
            point_data["session"] = None
            return
        from memsim.core.strict_yaml import read_yaml_mapping
        with user_input(source=sweep.source, key_path="base.session"):
            point_data["session"] = read_yaml_mapping(Path(sweep.root) / value,
                                                      what="session file")


def _normalised_hw(hw: HardwareConfig, point: PointSpec) -> HardwareConfig:
    if hw.cache.impl != "window":  # the window's settings apply to it alone
        defaults = type(hw.cache)()
        hw = dataclasses.replace(hw, cache=dataclasses.replace(
            hw.cache, window_tokens=defaults.window_tokens, window_fit=defaults.window_fit))
    return dense_streaming_hw(hw) if point.method == "dense" else hw


def dense_streaming_hw(hw: HardwareConfig) -> HardwareConfig:
    """Dense streaming reads whole regions, one run per transfer: flash layout, merge gap
    and over-read admission change nothing, so they are reset (equal points hash equal)."""
    flash = dataclasses.replace(hw.flash, layout=None)
    if hasattr(flash, "merge_gap_KiB"):
        flash = dataclasses.replace(flash, merge_gap_KiB=0.0)
    cache = dataclasses.replace(hw.cache, admit_overread=False)
    return dataclasses.replace(hw, flash=flash, cache=cache)


def _normalised(point: PointSpec) -> PointSpec:
    """Drop parameters the method ignores, so equal workloads hash equal."""
    if point.method not in CACHE_AWARE:
        point = dataclasses.replace(point, dip_ca=DipCaSpec())
    if point.method != "dip_ra":
        point = dataclasses.replace(point, dip_ra=DipRaSpec())
    if point.method == "dense":
        point = dataclasses.replace(point, density=1.0, layout=LayoutSpec())
    if point.layout.method == "none":
        point = dataclasses.replace(point, layout=LayoutSpec())
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
        with _at_axes(sweep.source, values):
            point = _apply(sweep, values)
            check_point_inputs(point, sweep.source)
        reason = invalid_reason(point)
        if reason is None and point.point_id in seen:
            reason = _duplicate_reason(point, dict(values), seen[point.point_id])
        if reason is not None:
            dropped.append((dict(values), reason))
            continue
        seen[point.point_id] = dict(values)
        points.append(point)
    return points, dropped


@contextmanager
def _at_axes(source: str, values: tuple[tuple[str, Any], ...]):
    """An error only a combination of axis values makes, told with the combination."""
    try:
        yield
    except ConfigError as exc:
        if not values:
            raise
        combo = ", ".join(f"{axis}={value!r}" for axis, value in values)
        inner = "" if is_internal(exc.source) or exc.source == source else f"{exc.source}: "
        raise ConfigError(f"at {combo}: {inner}{exc.message}", source=source,
                          key_path=exc.key_path or "axes", allowed=exc.allowed) from None


def require_points(sweep: SweepSpec, points: list[SweepPoint],
                   dropped: list[tuple[dict, str]]) -> None:
    """A sweep whose every point is filtered out is an error that says why (each distinct
    reason once), not a run that silently does nothing."""
    if points:
        return
    reasons = list(dict.fromkeys(reason.split(" (runs once, as")[0] for _, reason in dropped))
    raise ConfigError(f"all {len(dropped)} grid points are filtered out: "
                      + "; ".join(reasons), source=sweep.source, key_path="axes",
                      allowed="axes with at least one valid combination (docs/sweeps.md)")


def invalid_reason(point: SweepPoint) -> str | None:
    """Why a point makes no sense, or None (Vidur's `is_valid`, with the reason said)."""
    method, policy = point.spec.method, point.hw.cache.impl
    if method in CACHE_AWARE and _is_offline(policy):
        return (f"cache-aware masking reads the live cache state; {policy} is an offline "
                "oracle that needs the future masks")
    if method in DENSE_READ_FLOOR:
        floor, reachable, what = DENSE_READ_FLOOR[method]
        d = point.spec.density
        if (d < floor - 1e-9) if reachable else (d <= floor + 1e-9):
            return f"{method} reads {what} in full: its MLP density is " \
                   f"{'>=' if reachable else '>'} {floor:.3f}"
    timed = point.spec.session is not None or point.hw.thermal is not None \
        or bool(point.hw.background)
    if point.spec.mode == "analytic" and timed:
        return "the analytic closed form has no clock: sessions, heat and background apps " \
               "need mode: event"
    if point.spec.trace.source == "synthetic" and method not in SYNTHETIC_METHODS:
        return f"synthetic traces exist for {', '.join(SYNTHETIC_METHODS)} only"
    layout = point.spec.layout
    if layout.method != "none" and point.spec.trace.source != "model":
        return "layout.method builds a layout from calibration windows of a model trace " \
               "(trace.source: model); for synthetic traces build one with `memsim layout " \
               "build` and give it as hw.flash.layout"
    if layout.method != "none" and method == "dip_ra":
        return "dip_ra chooses its masks for the flash layout, and a layout built inside the " \
               "sweep does not exist when its trace is made: build one with `memsim layout " \
               "build` and give it as hw.flash.layout"
    if layout.method != "none" and layout.split == (point.spec.trace.split or "test"):
        return f"layout.split {layout.split!r} is the evaluated split: calibration windows " \
               "must be disjoint from the evaluated ones"
    return None


def _duplicate_reason(point: SweepPoint, values: dict, first: dict) -> str:
    method, why = point.spec.method, []
    if method not in CACHE_AWARE and any(k.startswith("dip_ca.") for k in values):
        why.append(f"dip_ca parameters do not apply to {method}")
    if method != "dip_ra" and any(k.startswith("dip_ra.") for k in values):
        why.append(f"dip_ra parameters do not apply to {method}")
    if method == "dense" and "density" in values:
        why.append("dense reads every column: density does not apply")
    if method == "dense" and any(isinstance(v, dict) or k.startswith(("layout.", "hw.flash.",
                                                                      "hw.cache.admit"))
                                 for k, v in values.items()):
        why.append("dense streaming reads whole regions: flash layout, merge gap and "
                   "over-read admission do not apply")
    return f"{'; '.join(why) or 'same configuration'} (runs once, as {first})"


def _is_offline(policy_name: str) -> bool:
    from memsim.cache import POLICIES
    return bool(getattr(POLICIES.get(policy_name), "is_offline", False))


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
