"""Mask generators, one module per method; each registers itself in MASKS by name."""
from memsim.core.registry import import_submodules
from workloads.masks._select import keep_to_k
from workloads.masks.base import MASKS, MaskGenerator, build_generator

import_submodules(__name__, __path__)

__all__ = ["MASKS", "MaskGenerator", "build_generator", "keep_to_k"]
