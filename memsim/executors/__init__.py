"""Sweep executors, one per module, each registered under its `--executor` name."""
from memsim.executors.base import EXECUTORS, Executor
from memsim.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["EXECUTORS", "Executor"]
