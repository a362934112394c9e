"""The `background:` list of a hardware file: other apps running beside the model.

Each entry is a preset name (a file in hw_configs/background/, stating its figures) or a
mapping with the keys below. An app issues one burst of work every `period_s` while it is on
(`on_s` on, `off_s` off, repeating, from `start_s`): a flash transfer of `flash_read_KiB` in
`flash_requests` equal requests, a DRAM transfer of `dram_MB`, a kernel of `compute_Gops` on
the decode unit. Open loop: a burst is issued on time whether the last one has finished or
not, and each queues FIFO behind whatever holds the resource (memsim/sim/background.py runs
it). While on, the app also draws `power_W` (sensor, ISP, display, radio: power that moves
no bytes the model sees); its bytes and operations cost the phone's per-byte and per-op
energies.
What the model ignores: an app's CPU work on cores the model does not use (it only heats),
the OS scheduler, cache pollution, memory the app takes from the model's DRAM budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsim.core.schema import spec
from memsim.hw.presets import preset_mapping, preset_names

BACKGROUND_PRESET_DIR = Path(__file__).resolve().parents[2] / "hw_configs" / "background"


@dataclass(frozen=True, kw_only=True)
class BackgroundApp:
    """An app's load: bursts of flash, DRAM and compute work at a fixed rate, and power."""

    name: str = spec("label in results and figures")
    period_s: float = spec("one burst of work every this many seconds while on", unit="s",
                           ge=1e-4, le=1e6)
    flash_read_KiB: float = spec("flash bytes read per burst", default=0.0, unit="KiB", ge=0,
                                 le=1e9)
    flash_requests: int = spec("requests the burst's flash read is split into (equal sizes)",
                               default=1, ge=1, le=10**9)
    flash_pattern: str = spec("flash reads at scattered offsets (`random`) or in file order "
                              "(`sequential`)", default="random",
                              choices=("random", "sequential"))
    dram_MB: float = spec("DRAM bytes moved per burst (read bandwidth, read energy)",
                          default=0.0, unit="MB", ge=0, le=1e6)
    compute_Gops: float = spec("operations per burst on the decode unit", default=0.0,
                               unit="Gops", ge=0, le=1e9)
    power_W: float = spec("power drawn while on, beside its bytes and operations", default=0.0,
                          unit="W", ge=0, le=1e3)
    on_s: float = spec("on this long, then off for off_s, repeating (.inf: always on)",
                       default=math.inf, unit="s", gt=0, allow_inf=True)
    off_s: float = spec("off this long after each on period", default=0.0, unit="s", ge=0,
                        le=1e9)
    start_s: float = spec("first burst at this time (the app is off before)", default=0.0,
                          unit="s", ge=0, le=1e9)
    description: str = spec("free text: where the figures come from", default="")

    def is_on(self, t_s: float) -> bool:
        if t_s < self.start_s:
            return False
        if math.isinf(self.on_s) or self.off_s == 0:
            return True
        return (t_s - self.start_s) % (self.on_s + self.off_s) < self.on_s

    def on_time_s(self, a_s: float, b_s: float) -> float:
        """Seconds the app is on within [a_s, b_s) (its static power's share)."""
        a, b = max(a_s, self.start_s), b_s
        if b <= a:
            return 0.0
        if math.isinf(self.on_s) or self.off_s == 0:
            return b - a
        cycle = self.on_s + self.off_s

        def on_before(t: float) -> float:  # on-time in [start_s, t)
            full, rest = divmod(t - self.start_s, cycle)
            return full * self.on_s + min(rest, self.on_s)

        return on_before(b) - on_before(a)


def background_presets() -> list[str]:
    return preset_names(BACKGROUND_PRESET_DIR)


def resolve_background(value: Any, source: str, key_path: str = "background") -> Any:
    """Each preset name in the list -> its mapping; anything else as given (the loader
    checks it)."""
    if not isinstance(value, list):
        return value
    return [preset_mapping(BACKGROUND_PRESET_DIR, item, "background", source=source,
                           key_path=f"{key_path}[{i}]") if isinstance(item, str) else item
            for i, item in enumerate(value)]
