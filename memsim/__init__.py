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
           "load_results", "simulate"]
__version__ = "0.1.0"


def load_results(folder):
    """A sweep's results table (`folder` or the results file) as a pandas DataFrame, one row
    per point: `memsim.load_results("runs/demo")`. pandas is optional (`pip install -e
    '.[all]'`); it is imported only here."""
    from memsim.sweeps.table import load_results as _load_results

    return _load_results(folder)
