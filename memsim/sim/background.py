"""Other apps as processes (config: memsim/hw/background.py).

Each app is a SimPy process that, at each burst time while it is on, issues its flash
transfer, DRAM transfer and kernel at once (each queues FIFO on its resource behind what is
already there, resources.py) and does not wait for them (open loop: a camera delivers frames
on time). Durations are the closed forms the decode stream uses (flash: the flash model's
transfer time for `flash_requests` equal requests over the app's own bytes; DRAM: bytes /
read bandwidth; compute: ops / the decode unit's rate), divided by the phone's current speed;
their energy (per byte, per op) is charged when issued; their wait before starting counts in
the phone's longest wait (`Phone.wait_s`). The app's own power while on is
charged by the thermal governor (thermal.py).
"""
from __future__ import annotations

import math

import numpy as np

from memsim.core.errors import ConfigError
from memsim.hw.background import BackgroundApp
from memsim.hw.config import HardwareConfig
from memsim.sim.resources import COMPUTE, DRAM, FLASH, Phone


RESOURCE_NAMES = ("flash", "DRAM", "compute")


def check_sustainable(hw: HardwareConfig) -> None:
    """The apps' bursts must fit their period on every resource, even at the slowest
    throttle step: an open-loop app that issues work faster than a resource serves it
    builds an endless queue (and a simulation that never ends)."""
    slowest = np.ones(3)
    if hw.thermal is not None:
        for step in hw.thermal.steps:
            slowest = np.minimum(slowest, step.scales)
    total = np.zeros(3)
    for i, app in enumerate(hw.background):
        busy_s = AppLoad(hw, app).nominal_s / slowest  # one burst, at the slowest step
        total += busy_s / app.period_s
        worst = int(np.argmax(total))
        if total[worst] >= 1.0:
            raise ConfigError(f"the background apps need {total[worst]:.0%} of the "
                              f"{RESOURCE_NAMES[worst]} (at the slowest throttle step): their "
                              "queue would grow without end",
                              key_path=f"background[{i}].period_s",
                              allowed=f"> {busy_s[worst]:.6g} s for this app alone, and "
                                      "all apps together under 100% of each resource")


class AppLoad:
    """One burst's nominal durations (s) and energy (J) per resource, and the process."""

    def __init__(self, hw: HardwareConfig, app: BackgroundApp):
        self.app = app
        flash_bytes = app.flash_read_KiB * 1024
        dram_bytes = app.dram_MB * 1e6
        ops = app.compute_Gops * 1e9
        self.nominal_s = np.zeros(3)
        self.energy_J = np.zeros(3)
        if flash_bytes > 0:
            n = float(app.flash_requests)
            self.nominal_s[FLASH] = float(hw.flash.read_time_s(
                np.array([flash_bytes]), np.array([n]),
                sequential=app.flash_pattern == "sequential")[0])
            unit = hw.flash.page_bytes or 1
            device = math.ceil(flash_bytes / n / unit) * unit * n if hw.flash.page_bytes \
                else flash_bytes
            self.energy_J[FLASH] = device * (hw.flash.read_energy_pJ_per_byte or 0.0) * 1e-12
        self.nominal_s[DRAM] = dram_bytes / hw.dram.read_bandwidth_Bps
        self.energy_J[DRAM] = dram_bytes * (hw.dram.read_energy_pJ_per_byte or 0.0) * 1e-12
        unit = hw.compute.units[hw.compute.decode_unit]
        self.nominal_s[COMPUTE] = 0.0 if hw.compute.ignore else ops / unit.ops_per_s
        self.energy_J[COMPUTE] = ops * (unit.energy_pJ_per_op or 0.0) * 1e-12
        self.bursts = 0

    def burst_times(self):
        """Burst times, in order, while the app is on (an endless generator)."""
        app = self.app
        k = 0
        while True:
            t = app.start_s + k * app.period_s
            k += 1
            if app.is_on(t):
                yield t

    def run(self, env, phone: Phone):
        """The app's SimPy body on `phone`."""
        rows = (phone.flash_row, DRAM, COMPUTE)
        for t in self.burst_times():
            if t > env.now:
                yield env.timeout(t - env.now)
            for kind in (FLASH, DRAM, COMPUTE):
                if self.nominal_s[kind] > 0:
                    start, _ = phone.timelines_reserve(rows[kind], kind, env.now,
                                                       self.nominal_s[kind] / phone.speed[kind])
                    phone.wait_s[kind] = max(phone.wait_s[kind], start - env.now)
            phone.energy_J[0] += self.energy_J.sum()
            self.bursts += 1
