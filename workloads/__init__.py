"""workloads: a real pretrained SwiGLU transformer run with its MLPs masked per token
(dense, GLU pruning, CATS, DIP, DIP-CA), giving perplexity and memsim traces.

`workloads.evaluate(...)` is the Python API (workloads/evaluation.py). Importing this package
does not import torch (memsim's CLI imports workloads.cli to build its parser); the API is
loaded on first use.
"""
from typing import Any

__all__ = ["EvalConfig", "EvalResult", "evaluate", "load_model"]


def __getattr__(name: str) -> Any:
    """Lazy exports: torch and transformers load only when the API is used."""
    if name in ("evaluate", "EvalConfig"):
        from workloads import evaluation

        value = getattr(evaluation, name)
    elif name == "EvalResult":
        from workloads.results import EvalResult as value
    elif name == "load_model":
        from workloads.model import load_model as value
    else:
        raise AttributeError(f"module 'workloads' has no attribute {name!r}")
    globals()[name] = value
    return value
