"""memsim: how fast an LLM decodes on a phone whose weights stream from flash through a DRAM
cache, driven by per-token MLP masks. This package never imports torch."""
from memsim.config import HardwareConfig, load_hw
from memsim.model import ModelShape, load_model_shape
from memsim.result import Result
from memsim.simulate import simulate
from memsim.trace import Trace

__all__ = ["HardwareConfig", "ModelShape", "Result", "Trace", "load_hw", "load_model_shape",
           "simulate"]
__version__ = "0.1.0"
