"""memsim: how fast an LLM decodes on a phone whose weights stream from flash through a DRAM
cache, driven by per-token MLP masks. This package never imports torch."""
from memsim.model import ModelShape, load_model_shape
from memsim.trace import Trace

__all__ = ["ModelShape", "Trace", "load_model_shape"]
__version__ = "0.1.0"
