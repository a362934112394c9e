"""The `thermal:` section of a hardware file: a lumped RC heat model and its governor.

`thermal: none` (the default) simulates a phone that never heats: every published table is
computed so. A preset name (a file in hw_configs/thermal/, citing its figures) or a mapping
with the keys below turns heat on (memsim/sim/thermal.py runs it):

    C dT/dt = P(t) - (T - T_ambient) / R

P is the power the energy model computes (per byte of flash and DRAM traffic, per operation,
hw_config.md) plus `idle_power_W` plus each background app's own power. The governor samples
T every `sample_period_s`, enters step k when T >= steps[k].above_C and leaves it when
T < steps[k].above_C - hysteresis_C; a step scales the compute peak and, optionally, the DRAM
and flash bandwidth of work issued while it holds.
What the model ignores: the spread of heat inside the phone (one node: die, board and skin
at one temperature), ambient changes, battery charging, a governor's per-cluster policies.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsim.core.errors import ConfigError
from memsim.core.schema import spec
from memsim.hw.presets import preset_mapping, preset_names

THERMAL_PRESET_DIR = Path(__file__).resolve().parents[2] / "hw_configs" / "thermal"
MIN_C, MAX_C = -50.0, 200.0


@dataclass(frozen=True, kw_only=True)
class ThrottleStep:
    """One governor step: what the phone runs at while it holds."""

    above_C: float = spec("the governor enters this step when the temperature reaches this",
                          unit="C", ge=MIN_C, le=MAX_C)
    compute_scale: float = spec("compute peak x this while the step holds", gt=0, le=1)
    dram_scale: float = spec("DRAM bandwidth x this while the step holds", default=1.0, gt=0,
                             le=1)
    flash_scale: float = spec("flash bandwidth x this while the step holds", default=1.0,
                              gt=0, le=1)

    @property
    def scales(self) -> tuple[float, float, float]:
        """(flash, DRAM, compute), the order of the phone's resources."""
        return self.flash_scale, self.dram_scale, self.compute_scale


@dataclass(frozen=True, kw_only=True)
class ThermalConfig:
    """A lumped RC heat model heated by the simulated power, and a throttling governor."""

    name: str = spec("label in results and figures", default="custom")
    heat_capacity_J_per_K: float = spec("heat capacity of the phone (one node)", unit="J/K",
                                        gt=0, le=1e6)
    thermal_resistance_K_per_W: float = spec("thermal resistance to ambient", unit="K/W", gt=0,
                                             le=1e4)
    ambient_C: float = spec("ambient temperature", default=25.0, unit="C", ge=MIN_C, le=MAX_C)
    initial_C: float | None = spec("temperature at the start (empty: ambient)", default=None,
                                   unit="C", ge=MIN_C, le=MAX_C)
    idle_power_W: float = spec("power drawn whatever runs (display, SoC idle, radios)",
                               default=0.0, unit="W", ge=0, le=1e3)
    sample_period_s: float = spec("the governor reads the temperature this often",
                                  default=0.25, unit="s", ge=1e-3, le=3600)
    hysteresis_C: float = spec("a step is left only below its threshold minus this",
                               default=2.0, unit="C", ge=0, le=100)
    steps: tuple[ThrottleStep, ...] = spec("throttling steps, thresholds increasing",
                                           default=())
    description: str = spec("free text: where the figures come from", default="")

    def __post_init__(self) -> None:
        for i in range(1, len(self.steps)):
            if self.steps[i].above_C <= self.steps[i - 1].above_C:
                raise ConfigError(f"thresholds must increase: {self.steps[i].above_C} after "
                                  f"{self.steps[i - 1].above_C}",
                                  key_path=f"thermal.steps[{i}].above_C",
                                  allowed=f"> {self.steps[i - 1].above_C}")

    @property
    def start_C(self) -> float:
        return self.ambient_C if self.initial_C is None else self.initial_C

    @property
    def time_constant_s(self) -> float:
        return self.heat_capacity_J_per_K * self.thermal_resistance_K_per_W


def thermal_presets() -> list[str]:
    return preset_names(THERMAL_PRESET_DIR)


def resolve_thermal(value: Any, source: str, key_path: str = "thermal") -> Any:
    """`none` -> None, a preset name -> its mapping, anything else as given (the loader
    checks it)."""
    if not isinstance(value, str):
        return value
    if value == "none":
        return None
    return preset_mapping(THERMAL_PRESET_DIR, value, "thermal", source=source,
                          key_path=key_path, also="none")
