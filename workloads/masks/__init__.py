"""Mask generators, one module per method; each registers itself in MASKS by name."""
from memsim.core.registry import import_submodules
from workloads.masks._select import as_rows, keep_to_k, topk_rows
from workloads.masks.base import MASKS, MaskGenerator, build_generator

import_submodules(__name__, __path__)

__all__ = ["MASKS", "MaskGenerator", "as_rows", "build_generator", "keep_to_k", "topk_rows"]
