"""Hardware configuration: YAML (units in key names) -> strict loader -> frozen dataclasses.

Units are converted once, in `__post_init__`, into SI fields with the unit in the name
(`read_bandwidth_Bps`, `capacity_bytes`). GB means 10^9 bytes throughout (phone vendors
quote bandwidth in decimal GB/s). Every key, its unit and range is listed in docs/hw_config.md
(generated from the `spec(...)` help strings here by `memsim hw keys`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from memsim.cache import POLICIES
from memsim.core.errors import ConfigError
from memsim.core.files import as_path
from memsim.core.schema import impl_field, load_dataclass, spec
from memsim.core.strict_yaml import read_yaml
from memsim.hw.background import BackgroundApp, background_presets, resolve_background
from memsim.hw.flash import FLASH_MODELS, FlashModel
from memsim.hw.thermal import ThermalConfig, resolve_thermal, thermal_presets

PRESET_DIR = Path(__file__).resolve().parents[2] / "hw_configs"
PLACEMENTS = ("resident", "streamed")
# Ranges wide enough for any phone, past or future, and narrow enough that no byte count or
# duration downstream can overflow to inf or divide by a denormal (tests/test_robust_numbers.py
# draws random configs across them).
MAX_CAPACITY_GB = 1e6  # 1 PB
MIN_BANDWIDTH_GBps, MAX_BANDWIDTH_GBps = 1e-6, 1e5  # 1 kB/s .. 100 TB/s
MAX_ENERGY_pJ = 1e6
MIN_BITS = 1.0  # binary weights; below that a "value" is not stored
MLP_PLACEMENTS = ("dynamic", "resident", "streamed")


@dataclass(frozen=True, kw_only=True)
class DramConfig:
    """The DRAM the app may use for the model (weights, cache, KV)."""

    capacity_GB: float = spec("DRAM available to the model (whole bytes: capacity_GB x 1e9, "
                              "rounded)", unit="GB", gt=0, le=MAX_CAPACITY_GB)
    read_bandwidth_GBps: float = spec("read bandwidth", unit="GB/s", ge=MIN_BANDWIDTH_GBps,
                                      le=MAX_BANDWIDTH_GBps)
    write_bandwidth_GBps: float = spec("write bandwidth (cache fills, KV appends)", unit="GB/s",
                                       ge=MIN_BANDWIDTH_GBps, le=MAX_BANDWIDTH_GBps)
    read_energy_pJ_per_byte: float | None = spec("read energy", default=None, unit="pJ/B", ge=0,
                                                 le=MAX_ENERGY_pJ)
    write_energy_pJ_per_byte: float | None = spec("write energy", default=None, unit="pJ/B",
                                                  ge=0, le=MAX_ENERGY_pJ)
    capacity_bytes: int = field(init=False)
    read_bandwidth_Bps: float = field(init=False)
    write_bandwidth_Bps: float = field(init=False)

    def __post_init__(self) -> None:
        # whole bytes, rounded: 0.03 * 1e9 is 29999999.999999996 as a float, and a budget
        # of exactly k columns must not become k - 1 (docs/hardware_model.md section 1)
        object.__setattr__(self, "capacity_bytes", round(self.capacity_GB * 1e9))
        object.__setattr__(self, "read_bandwidth_Bps", self.read_bandwidth_GBps * 1e9)
        object.__setattr__(self, "write_bandwidth_Bps", self.write_bandwidth_GBps * 1e9)


@dataclass(frozen=True, kw_only=True)
class ComputeUnitConfig:
    """One compute unit (NPU, CPU, GPU) at the weights' precision."""

    peak_TOPS: float = spec("peak tera-operations/s at the weight precision (1 MAC = 2 ops)",
                            unit="TOPS", ge=1e-6, le=1e6)
    efficiency: float = spec("fraction of peak reached on decode GEMV/GEMM", default=0.5,
                             ge=1e-3, le=1)
    energy_pJ_per_op: float | None = spec("energy per operation", default=None, unit="pJ/op",
                                          ge=0, le=MAX_ENERGY_pJ)
    ops_per_s: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops_per_s", self.peak_TOPS * 1e12 * self.efficiency)


@dataclass(frozen=True, kw_only=True)
class ComputeConfig:
    """Compute units and which one runs decode and prefill."""

    units: dict[str, ComputeUnitConfig] = spec("named compute units, e.g. npu, cpu")
    decode_unit: str = spec("unit that runs decode (must be a key of units)")
    prefill_unit: str = spec("unit that runs prefill (must be a key of units)")
    ignore: bool = spec("treat compute as free (the authors' analytic model)", default=False)

    def __post_init__(self) -> None:
        for key in ("decode_unit", "prefill_unit"):
            if getattr(self, key) not in self.units:
                raise ConfigError(f"{getattr(self, key)!r} is not a compute unit",
                                  key_path=f"compute.{key}", allowed=", ".join(self.units))


@dataclass(frozen=True, kw_only=True)
class PrecisionConfig:
    """Bits per stored value, per layer type (e.g. 4 for int4, 4.5 with group scales)."""

    mlp_bits: float = spec("MLP weights (the cached columns)", unit="bits", ge=MIN_BITS, le=32)
    attention_bits: float = spec("attention projection weights", unit="bits", ge=MIN_BITS,
                                 le=32)
    embedding_bits: float = spec("token embedding table", unit="bits", ge=MIN_BITS, le=32)
    lm_head_bits: float = spec("LM head (shares the embedding if tied)", unit="bits",
                               ge=MIN_BITS, le=32)
    kv_cache_bits: float = spec("KV cache entries", unit="bits", ge=MIN_BITS, le=32)
    adapter_bits: float = spec("LoRA adapter weights (resident; read every token)",
                               default=16.0, unit="bits", ge=MIN_BITS, le=32)
    predictor_bits: float = spec("mask-predictor weights (resident; read every token)",
                                 default=16.0, unit="bits", ge=MIN_BITS, le=32)


@dataclass(frozen=True, kw_only=True)
class PlacementConfig:
    """Where each layer type lives: resident in DRAM, streamed from flash every token, or
    (MLP only) dynamic: masked columns served through the DRAM cache."""

    attention: str = spec("attention weights", default="resident", choices=PLACEMENTS)
    embedding: str = spec("embedding table (one row read per token)", default="resident",
                          choices=PLACEMENTS)
    lm_head: str = spec("LM head", default="resident", choices=PLACEMENTS)
    mlp: str = spec("MLP weights", default="dynamic", choices=MLP_PLACEMENTS)
    mlp_resident_share: float = spec(
        "hybrid placement (LLM in a flash): this share of each layer's MLP columns (of every "
        "mask group) stays resident in DRAM, read from DRAM every token it is needed; the "
        "rest is dynamic, through the cache (with `cache.impl: none`, streamed from flash). "
        "Needs `mlp: dynamic`", default=0.0, ge=0, le=1)
    mlp_resident_columns: str = spec(
        "which columns are resident: the `first` of each layer in model order, or the "
        "`hottest` by how often `mlp_resident_calibration`'s tokens used them",
        default="first", choices=("first", "hottest"))
    mlp_resident_calibration: str | None = spec(
        "a trace file (.npz, same model and masks) whose column use ranks the `hottest` "
        "columns; relative paths are taken from the YAML file's folder", default=None)

    def __post_init__(self) -> None:
        if self.mlp_resident_share > 0 and self.mlp != "dynamic":
            raise ConfigError(f"a resident share of the MLP needs `mlp: dynamic` (got "
                              f"{self.mlp!r}: `resident` holds all of it, `streamed` none)",
                              key_path="placement.mlp_resident_share",
                              allowed="0, or mlp: dynamic")
        has_calibration = self.mlp_resident_calibration is not None
        if (self.mlp_resident_columns == "hottest") != has_calibration:
            raise ConfigError("`hottest` resident columns need a calibration trace, and a "
                              "calibration trace is only read for `hottest`",
                              key_path="placement.mlp_resident_calibration",
                              allowed="a trace path with mlp_resident_columns: hottest")


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    """The DRAM cache of MLP columns (PAPER.md section 4)."""

    impl: str = spec("replacement policy", default="lru", registry=POLICIES)
    split: str = spec("how the dynamic DRAM budget is split: `equal` bytes per masked matrix "
                      "(the authors' choice) or `proportional` to each matrix's mean demand "
                      "in the trace", default="equal", choices=("equal", "proportional"))
    admit_overread: bool = spec("columns that arrive only because they share a page with, or "
                                "sit in a merged gap between, missed columns enter the cache "
                                "under the policy's own rules (a DRAM write each, no extra "
                                "flash read)", default=False)
    window_tokens: int = spec("`impl: window` (LLM in a flash's sliding window): a column stays "
                              "while any of the last this many tokens used it", default=5,
                              ge=1, le=1 << 20)
    window_fit: str = spec("`impl: window` whose peak (measured on the trace) exceeds the "
                           "cache budget: `cap` it (the most recently used stay; the result "
                           "says it was capped) or `refuse` the run (an error naming the "
                           "DRAM it needs)", default="cap", choices=("cap", "refuse"))


@dataclass(frozen=True, kw_only=True)
class TimingConfig:
    """What overlaps with what."""

    flash_dram_concurrent: bool = spec("flash and DRAM reads proceed in parallel (time = max) "
                                       "rather than in turn (time = sum)", default=True)
    prefetch_next_layer: bool = spec("loads known before a layer starts (streamed weights, "
                                     "dense matrices) are issued during the previous layer's "
                                     "last compute", default=True)
    dram_writes: str = spec("DRAM writes (cache fills, the KV append) cost write bandwidth "
                            "(`costed`) or nothing (`free`, the analytic model)",
                            default="costed", choices=("costed", "free"))
    kv_length: str = spec("KV bytes per token: `actual` (grows each token) or `average` "
                          "(priced at the mean KV length of a sequence of n tokens after a "
                          "prompt of P, P + (n + 1)/2: the analytic model)",
                          default="actual", choices=("actual", "average"))


@dataclass(frozen=True, kw_only=True)
class HardwareConfig:
    """A phone: flash, DRAM, compute, precision, placement, cache and timing options."""

    name: str = spec("short name used in results and plots")
    flash: FlashModel = impl_field("flash storage (impl: " + ", ".join(FLASH_MODELS.names())
                                   + ")", FLASH_MODELS)
    dram: DramConfig = spec("DRAM")
    compute: ComputeConfig = spec("compute units")
    precision: PrecisionConfig = spec("bits per value per layer type")
    placement: PlacementConfig = spec("where each layer type lives", default=PlacementConfig())
    cache: CacheConfig = spec("MLP column cache", default=CacheConfig())
    timing: TimingConfig = spec("overlap options", default=TimingConfig())
    thermal: ThermalConfig | None = spec(
        "heat: `none` (never heats: the default), a preset (" + ", ".join(thermal_presets())
        + "; hw_configs/thermal/) or a mapping (memsim/hw/thermal.py)", default=None)
    background: tuple[BackgroundApp, ...] = spec(
        "apps running beside the model: a list of presets (" + ", ".join(background_presets())
        + "; hw_configs/background/) or mappings (memsim/hw/background.py)", default=())
    description: str = spec("free text: where the figures come from", default="")

    def __post_init__(self) -> None:
        names = [app.name for app in self.background]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"background app name {name!r} repeats",
                                  key_path=f"background[{i}].name", allowed="distinct names")
        if self.thermal is not None:
            for key, value in self.energy_figures().items():
                if value is None:
                    raise ConfigError("the thermal model is heated by the energy model: "
                                      f"{key} must be given", key_path=key,
                                      allowed="a number (pJ), or thermal: none")

    def energy_figures(self) -> dict[str, float | None]:
        """The per-byte and per-op energies (pJ) the energy model needs, by key."""
        unit = self.compute.units[self.compute.decode_unit]
        return {"flash.read_energy_pJ_per_byte": self.flash.read_energy_pJ_per_byte,
                "dram.read_energy_pJ_per_byte": self.dram.read_energy_pJ_per_byte,
                "dram.write_energy_pJ_per_byte": self.dram.write_energy_pJ_per_byte,
                f"compute.units.{self.compute.decode_unit}.energy_pJ_per_op":
                    unit.energy_pJ_per_op}


def load_hw(name_or_path: str | Path) -> HardwareConfig:
    """A preset name (file stem in hw_configs/) or a YAML path -> validated HardwareConfig."""
    path = as_path(name_or_path, "hardware file or preset name", "hw")
    if not path.is_file():
        preset = PRESET_DIR / f"{name_or_path}.yaml"
        if not preset.is_file():
            raise ConfigError(f"no hardware file or preset {str(name_or_path)!r}",
                              source="<hw>", key_path="hw", allowed=", ".join(list_presets()))
        path = preset
    data = read_yaml(path, what="hardware file")  # duplicate keys, non-UTF-8: named errors
    return hw_from_dict(data, source=str(path), root=path.parent)


def hw_from_dict(data: dict, *, source: str = "<api>", path: str = "",
                 root: Path | None = None) -> HardwareConfig:
    """Validate plain data; `path` prefixes key paths in errors (e.g. "hw" in sweeps);
    a relative `flash.layout` is taken relative to `root` (the YAML file's folder)."""
    try:
        data = _resolved_presets(data, source, path)
        hw = load_dataclass(HardwareConfig, data, source=source, path=path)
        return _with_calibration_root(with_layout_root(hw, root), root)
    except ConfigError as exc:
        if exc.source == "<api>":  # raised in a __post_init__: add the file name
            key = f"{path}.{exc.key_path}" if path else exc.key_path
            raise exc.relocated(source=source, key_path=key) from None
        raise


def _resolved_presets(data, source: str, path: str):
    """`thermal:` and `background:` preset names replaced by their mappings."""
    if not isinstance(data, dict) or not ({"thermal", "background"} & set(data)):
        return data
    data = dict(data)
    prefix = f"{path}." if path else ""
    if "thermal" in data:
        data["thermal"] = resolve_thermal(data["thermal"], source, prefix + "thermal")
    if "background" in data:
        data["background"] = resolve_background(data["background"], source,
                                                prefix + "background")
    return data


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def with_layout_root(hw: HardwareConfig, root: Path | None) -> HardwareConfig:
    """`hw` with a relative flash.layout path made absolute against `root`."""
    layout = hw.flash.layout
    if layout is None or root is None or Path(layout).is_absolute():
        return hw
    return with_flash_layout(hw, Path(root) / layout)


def _with_calibration_root(hw: HardwareConfig, root: Path | None) -> HardwareConfig:
    """`hw` with a relative placement.mlp_resident_calibration made absolute against `root`."""
    path = hw.placement.mlp_resident_calibration
    if path is None or root is None or Path(path).is_absolute():
        return hw
    placement = dataclasses.replace(hw.placement,
                                    mlp_resident_calibration=str((Path(root) / path).resolve()))
    return dataclasses.replace(hw, placement=placement)


def with_flash_layout(hw: HardwareConfig, path: str | Path | None) -> HardwareConfig:
    """`hw` reading its MLP columns in the order of the layout file at `path` (None: model
    order)."""
    layout = None if path is None else str(Path(path).resolve())
    return dataclasses.replace(hw, flash=dataclasses.replace(hw.flash, layout=layout))
