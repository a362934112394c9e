"""memsim: how fast an LLM decodes on a phone whose weights stream from flash through a DRAM
cache, driven by per-token MLP masks. This package never imports torch.

The rooms follow the data, bottom to top (each may import only the ones below it; the
import-linter contract in setup.cfg enforces it):
    core    errors, plug-in registries, the strict loader, atomic writes
    traces  the trace format, model shapes, synthetic and calibrated generators
    cache   cache policies (replay masks through a DRAM cache)
    hw      the hardware description (YAML -> dataclasses), flash models
    sim     DRAM plan -> cache outcome -> step costs -> SimPy engine -> Result
    sweeps  sweep files -> runner -> results table -> figures
    demo, cli
"""
from memsim.hw import HardwareConfig, load_hw
from memsim.sim import Result, simulate
from memsim.traces import ModelShape, Trace, load_model_shape

__all__ = ["HardwareConfig", "ModelShape", "Result", "Trace", "load_hw", "load_model_shape",
           "simulate"]
__version__ = "0.1.0"
