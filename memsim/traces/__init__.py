"""Traces, the data the two halves meet at: which MLP columns each token reads.

The trace format (trace.py), the model shape it is recorded for (model_shape.py), bit packing
(bits.py), DIP's density fit (density.py), and the generators: synthetic (synth.py) and
calibrated on real traces (calibrated/). May import: memsim.core.
"""
from memsim.traces.density import dip_keep_fractions, mlp_density
from memsim.traces.model_shape import ModelShape, load_model_shape, model_from_hf_config
from memsim.traces.synth import synth_trace
from memsim.traces.trace import MASK_NAMES, MaskGroup, Trace

__all__ = ["MASK_NAMES", "MaskGroup", "ModelShape", "Trace", "dip_keep_fractions",
           "load_model_shape", "mlp_density", "model_from_hf_config", "synth_trace"]
