"""Flash layouts: where each MLP column sits in flash, per layer and mask group.

A layout is part of the hardware description (`flash.layout: PATH`). base.py holds the file
format and its checks; each placement method (identity, frequency, coactivation) registers
itself in its own module and builds a layout from a calibration trace (`memsim layout build`).
"""
from memsim.core.registry import import_submodules
from memsim.hw.layouts.base import LAYOUT_METHODS, Layout, build_layout, load_layout

import_submodules(__name__, __path__)

__all__ = ["LAYOUT_METHODS", "Layout", "build_layout", "load_layout"]
