"""Heat as a process: the lumped RC model and its governor (config: memsim/hw/thermal.py).

Every `sample_period_s` the governor takes the energy the phone's work used since its last
sample (charged when each request was issued: _stream.py, background.py), adds the idle
power and the background apps' own power over the period, and advances the temperature by
the exact solution of C dT/dt = P - (T - T_amb)/R for that period's mean power P:

    T(t + dt) = T_amb + P R + (T(t) - T_amb - P R) exp(-dt / (R C))

Then it picks its step (hysteresis: up when T reaches a threshold, down only below the
threshold minus `hysteresis_C`) and sets the phone's speeds for work issued from then on.
Exact for a constant power; for a varying one, the power is averaged over one period (the
default 0.25 s against time constants of minutes). Ignores: heat spreading inside the
phone, the power's dependence on voltage (energy per byte and per op do not change with the
step), and a step's effect on work already queued when it changes (a request keeps the speed
it was issued at: _stream.py). The log says how much that last one can matter: at each
change of step, the work queued on each resource whose speed changes (its timeline's end
beyond now; it was priced at the old speed) times the relative change of duration the new
speed would give, summed over the changes (`repricing_bound_s`): an upper bound of how much
work time pricing each request at its start would move, when no request waits across two
changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from memsim.hw.background import BackgroundApp
from memsim.hw.thermal import ThermalConfig
from memsim.sim import _stream
from memsim.sim.resources import COMPUTE, DRAM, FLASH, FREE_AT, Phone


def rc_step(temperature_C: float, power_W: float, dt_s: float, cfg: ThermalConfig) -> float:
    """The temperature after `dt_s` at constant `power_W`, from `temperature_C`."""
    steady = cfg.ambient_C + power_W * cfg.thermal_resistance_K_per_W
    return steady + (temperature_C - steady) * math.exp(-dt_s / cfg.time_constant_s)


def next_level(level: int, temperature_C: float, cfg: ThermalConfig) -> int:
    """The governor's step after reading `temperature_C` in step `level` (0: full speed)."""
    steps = cfg.steps
    while level < len(steps) and temperature_C >= steps[level].above_C:
        level += 1
    while level > 0 and temperature_C < steps[level - 1].above_C - cfg.hysteresis_C:
        level -= 1
    return level


@dataclass
class ThermalLog:
    """What the governor saw: one row per sample."""

    time_s: list[float] = field(default_factory=list)
    temperature_C: list[float] = field(default_factory=list)
    power_W: list[float] = field(default_factory=list)
    level: list[int] = field(default_factory=list)
    first_throttle_s: float | None = None
    step_changes: int = 0  # times the governor changed step
    queued_at_changes_s: float = 0.0  # work queued on rescaled resources at those times
    repricing_bound_s: float = 0.0  # see the module docstring


class Governor:
    """The thermal process on a phone: `run(env)` is its SimPy body."""

    def __init__(self, cfg: ThermalConfig, phone: Phone, apps: tuple[BackgroundApp, ...] = ()):
        self.cfg, self.phone, self.apps = cfg, phone, apps
        self.temperature_C = cfg.start_C
        self.level = next_level(0, self.temperature_C, cfg)
        self.log = ThermalLog()
        self._apply()

    def run(self, env):
        dt = self.cfg.sample_period_s
        while True:
            start = env.now
            yield env.timeout(dt)
            static_J = sum(app.power_W * app.on_time_s(start, env.now) for app in self.apps)
            power = (self.phone.energy_J[0] + static_J) / dt + self.cfg.idle_power_W
            self.phone.energy_J[0] = 0.0
            self.temperature_C = rc_step(self.temperature_C, power, dt, self.cfg)
            level = next_level(self.level, self.temperature_C, self.cfg)
            if level > 0 and self.log.first_throttle_s is None:
                self.log.first_throttle_s = env.now
            if level != self.level:
                self._note_change(env.now, self.level, level)
            self.level = level
            self._apply()
            log = self.log
            log.time_s.append(env.now)
            log.temperature_C.append(self.temperature_C)
            log.power_W.append(power)
            log.level.append(level)

    def _scales(self, level: int) -> np.ndarray:
        """(flash, DRAM, compute) speed in step `level`."""
        return np.asarray((1.0, 1.0, 1.0) if level == 0 else self.cfg.steps[level - 1].scales)

    def _note_change(self, now_s: float, old: int, new: int) -> None:
        """What the change from step `old` to `new` leaves priced at the old speed: the
        work queued beyond now on each resource it rescales (module docstring)."""
        before, after = self._scales(old), self._scales(new)
        rows = {FLASH: self.phone.flash_row, DRAM: DRAM, COMPUTE: COMPUTE}
        relative: dict[int, float] = {}  # queue row -> largest change of duration on it
        for kind, row in rows.items():
            if before[kind] != after[kind]:
                change = abs(before[kind] / after[kind] - 1.0)
                relative[row] = max(relative.get(row, 0.0), change)
        for row, change in relative.items():
            queued = max(0.0, float(self.phone.timelines[row, FREE_AT]) - now_s)
            self.log.queued_at_changes_s += queued
            self.log.repricing_bound_s += queued * change
        self.log.step_changes += 1

    def _apply(self) -> None:
        """The current step's speeds and state on the phone (read by work issued next)."""
        self.phone.speed[:] = self._scales(self.level)
        self.phone.state[_stream.ENV_TEMPERATURE] = self.temperature_C
        self.phone.state[_stream.ENV_LEVEL] = self.level
