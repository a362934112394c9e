"""The mask generator contract: a method decides per-token masks, the MLP does the arithmetic.

Each method lives in its own module and registers with `@MASKS.register(name)`. A generator
answers two questions per layer and forward call (PAPER.md section 2):
  * `up_mask(layer, x)`: which inputs x_j (columns of W_up and W_gate) to keep, or None = all;
  * `down_mask(layer, act, h)`: which GLU outputs h_i (columns of W_down) to keep, or None.
A method that picks whole intermediate neurons before the MLP runs (a trained predictor,
`trace_layout = "neurons"`) answers `neuron_mask(layer, x)` instead: neuron i kept means row i
of W_up and W_gate and column i of W_down are read (LLM in a flash's bundle); the mask is then
applied to h, which computes exactly what reading only those weights does.
`workloads.masked_mlp` applies them (pruned elements contribute exactly zero) and records them.
The class also says what the method reads densely (`trace_layout`) so the trace is honest
about bytes, and declares its parameters as a frozen dataclass parsed strictly: an unknown
parameter or a value out of range raises a ConfigError naming it and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from memsim.core.errors import ConfigError
from memsim.core.registry import Registry
from memsim.traces import ModelShape

MASKS: Registry[type["MaskGenerator"]] = Registry("mask generator")


# ---------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Check:
    """A parameter's allowed values: a description for errors and a test."""

    allowed: str
    test: Callable[[Any], bool]


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _each(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Accept one value or a non-empty list of values (one per layer)."""
    return lambda v: (isinstance(v, (list, tuple)) and len(v) > 0 and all(map(test, v))) or test(v)


FRACTION = Check("a number in (0, 1]", lambda v: _is_real(v) and 0 < v <= 1)
FRACTIONS = Check("a number in (0, 1], or a list of them (one per layer)",
                  _each(lambda v: _is_real(v) and 0 < v <= 1))
UNIT = Check("a number in [0, 1]", lambda v: _is_real(v) and 0 <= v <= 1)
COUNT = Check("an integer >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool)
              and v >= 0)
COUNTS = Check("an integer >= 0, or a list of them (one per layer)", _each(COUNT.test))
BOOL = Check("true or false", lambda v: isinstance(v, bool))
TEXT = Check("a string", lambda v: isinstance(v, str) and v != "")


def choice(*options: str) -> Check:
    return Check(", ".join(options), lambda v: v in options)


def param(help: str, check: Check, default: Any = None) -> Any:
    """A method parameter: help text, allowed values, default (None = not given)."""
    return field(default=default, metadata={"help": help, "check": check})


@dataclass(frozen=True)
class NoParams:
    """A method without parameters."""


def parse_params(cls: type, data: dict | None, method: str, source: str = "<api>") -> Any:
    """Strictly build the params dataclass `cls` from a mapping (None values = not given)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in (data or {}).items():
        if key not in fields:
            raise ConfigError(f"unknown parameter {key!r} for method {method!r}", source=source,
                              key_path=f"{method}.{key}", allowed=", ".join(fields) or "none")
        if value is None:
            continue
        check: Check = fields[key].metadata["check"]
        if not check.test(value):
            raise ConfigError(f"bad value {value!r}", source=source,
                              key_path=f"{method}.{key}", allowed=check.allowed)
        values[key] = list(value) if isinstance(value, tuple) else value
    return cls(**values)


def describe_params(cls: type) -> dict[str, str]:
    """name -> 'help (allowed; default)', for docs and CLI help."""
    return {f.name: f"{f.metadata['help']} ({f.metadata['check'].allowed}; default "
                    f"{f.default!r})" for f in dataclasses.fields(cls)}


# ---------------------------------------------------------------- generators
class MaskGenerator:
    """Decides one method's masks. Subclasses override the two mask hooks; the base class
    owns parameter parsing, sequence bookkeeping and the trace layout.

    Masks are (B, T, N) bool tensors, or None when the whole vector is read (faster, and
    makes density 1.0 bit-identical to the unmasked model).
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    # "columns": trace `up` (T,L,H) covers W_up and W_gate; "rows": `up_rows` (T,L,I) with a
    # dense `gate` (CATS computes the gate in full, then needs only some rows of W_up);
    # "neurons": one (T,L,I) mask over whole neurons (rows of W_up, W_gate, column of W_down)
    trace_layout: ClassVar[str] = "columns"
    is_stateful: ClassVar[bool] = False  # True: per-sequence state, batches of one sequence
    # True: the method is defined on the gate (CATS thresholds |silu(W_gate x)|, GLU pruning
    # ranks the GLU output and prices W_gate); refused for a plain FFN (OPT, Falcon), where
    # their analogue, dense W_up and the top |act(W_up x)| of W_down, is DIP with up_keep 1
    needs_gate: ClassVar[bool] = False

    def __init__(self, params: Any, shape: ModelShape):
        self.params = params
        self.shape = shape

    @classmethod
    def build(cls, params: dict | None, shape: ModelShape, source: str = "<api>"):
        if cls.needs_gate and shape.is_plain:
            raise ConfigError(f"{cls.name} needs a gated MLP; {shape.name} has a plain FFN "
                              "(no W_gate). Its plain analogue is dip with up_keep 1",
                              source=source, key_path="method",
                              allowed="dense, dip, predictor for plain FFNs")
        return cls(parse_params(cls.Params, params, cls.name, source), shape)

    @classmethod
    def check_params(cls, params: Any, model: str) -> None:
        """Checks of the parsed params that need no loaded model, run before one loads (the
        predictor: its folder exists and was trained for `model`). Raise ConfigError."""

    def check_eval_data(self, corpus: str, split: str) -> None:
        """Refuse evaluation data the method was fitted on (the predictor: its training
        split). Raise ConfigError."""

    # -- the decisions (defaults: read everything)
    def neuron_mask(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        """x (B, T, H) MLP input -> (B, T, I) bool kept neurons, or None (then `up_mask` and
        `down_mask` decide). Only `trace_layout = "neurons"` methods answer it."""
        return None

    def up_mask(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        """x (B, T, H) MLP input -> (B, T, H) bool kept inputs, or None."""
        return None

    def down_mask(self, layer: int, act: torch.Tensor, h: torch.Tensor) -> torch.Tensor | None:
        """act = silu(gate), h = act * up, both (B, T, I) -> (B, T, I) bool, or None."""
        return None

    # -- sequences and calibration
    def start_sequence(self) -> None:
        """A new independent sequence begins (caches start cold, PAPER.md section 4)."""

    def sequence_stats(self) -> dict[str, np.ndarray]:
        """Per-sequence figures the method measured itself (DIP-CA: cache hits)."""
        return {}

    @property
    def needs_calibration(self) -> bool:
        return False

    def set_calibrating(self, is_calibrating: bool) -> None:
        """While True, thresholds not yet set are fitted to the batch passing through."""

    # -- what was read, for the trace
    def resolved_params(self) -> dict:
        """JSON-able parameters after defaults and derivations (recorded in the trace)."""
        return {k: v for k, v in dataclasses.asdict(self.params).items() if v is not None}

    def trace_masks(self, num_tokens: int, up: np.ndarray | None,
                    down: np.ndarray | None) -> dict[str, np.ndarray]:
        """Recorded masks (None = all read) -> keyword arrays for `memsim.Trace`. For a
        "neurons" method the recorded h mask (`down`) is the neuron mask."""
        T, L = num_tokens, self.shape.num_hidden_layers
        H, I = self.shape.hidden_size, self.shape.intermediate_size
        down = np.ones((T, L, I), bool) if down is None else down  # (T, L, I)
        if self.trace_layout == "neurons":
            return {"neurons": down}
        if self.trace_layout == "rows":
            return {"up_rows": down, "gate": np.ones((T, L, H), bool), "down": down}
        return {"up": np.ones((T, L, H), bool) if up is None else up, "down": down}

    def trace_fields(self) -> dict:
        """Other `memsim.Trace` fields the method sets (the predictor: `predictor_params`,
        its weights resident in DRAM and read every token)."""
        return {}


def build_generator(method: str, params: dict | None, shape: ModelShape,
                    source: str = "<api>") -> MaskGenerator:
    """A generator by registered name, with its parameters checked."""
    return MASKS.get(method, source=source, key_path="method").build(params, shape, source)
