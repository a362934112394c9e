"""The hardware description: a phone's flash, DRAM, compute, precision, placement, cache and
timing, from YAML through the strict loader (config.py) to frozen dataclasses; flash models
(flash/, one per `impl:`); the key reference (keys_doc.py).

May import: memsim.core, memsim.traces, memsim.cache (a config names its cache policy, so
the description sits above the policies it names).
"""
from memsim.hw.config import HardwareConfig, hw_from_dict, list_presets, load_hw

__all__ = ["HardwareConfig", "hw_from_dict", "list_presets", "load_hw"]
