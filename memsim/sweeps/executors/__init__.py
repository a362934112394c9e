"""Sweep executors, one per module, each registered under its `--executor` name."""
from memsim.core.registry import import_submodules
from memsim.sweeps.executors.base import EXECUTORS, Executor, sigterm_as_interrupt

import_submodules(__name__, __path__)

__all__ = ["EXECUTORS", "Executor", "sigterm_as_interrupt"]
