"""The masked SwiGLU forward: the generator's masks are applied, not just recorded.

`y = W_down (m_down * silu(W_gate x~) * (W_up x~))` with `x~ = m_up * x` (PAPER.md section 2):
a pruned input or GLU element is multiplied by zero, so the columns it would read contribute
exactly nothing, which is what reading only the kept columns computes. Speed shortcut: the
matrices stay dense (a per-token gather of columns would not batch on CPU); the cost over
the dense forward is the selection and two elementwise products, pinned by
benchmarks/bench_workloads.py.
Each MLP module's `forward` is swapped for the masked one inside `masked(...)` and restored
after; the module tree (and so state_dict names and LoRA targets) never changes.
A plain FFN (OPT, Falcon: `y = W_down act(W_up x)`, no gate) is masked the same way at its two
matrices: W_up reads `m_up * x`, W_down reads `m_down * h` with h = act(W_up x~), computed by
the family's own layer between them; a neuron mask (predictor) is decided from x at W_up and
applied to h at W_down. The generator's `down_mask(layer, act, h)` gets h for both (no gate).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from workloads.masks.base import MaskGenerator
from workloads.model import LoadedModel, PlainFFN, SwiGLU


class MaskRecorder:
    """Collects each layer's masks over the forward calls of one sequence, as numpy bools."""

    def __init__(self, num_layers: int):
        self.up: list[list[np.ndarray | int]] = [[] for _ in range(num_layers)]
        self.down: list[list[np.ndarray | int]] = [[] for _ in range(num_layers)]

    def add(self, layer: int, up: torch.Tensor | None, down: torch.Tensor | None,
            num_tokens: int) -> None:
        """Masks (B, T, N) or None (all read: stored as the token count)."""
        self.up[layer].append(num_tokens if up is None else up.reshape(-1, up.shape[-1]).numpy())
        self.down[layer].append(num_tokens if down is None
                                else down.reshape(-1, down.shape[-1]).numpy())

    def stack(self, width: int, group: str) -> np.ndarray | None:
        """(T, L, width) bool for `up` or `down`, or None if every call read everything."""
        chunks = self.up if group == "up" else self.down
        if all(isinstance(c, int) for per_layer in chunks for c in per_layer):
            return None
        layers = [np.concatenate([np.ones((c, width), bool) if isinstance(c, int) else c
                                  for c in per_layer]) for per_layer in chunks]  # each (T, N)
        return np.stack(layers, axis=1)


class MaskedMLP:
    """The forward of one layer's MLP under a mask generator."""

    def __init__(self, layer: int, swiglu: SwiGLU, generator: MaskGenerator,
                 recorder: MaskRecorder | None):
        self.layer, self.swiglu, self.generator, self.recorder = layer, swiglu, generator, recorder

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        # a neuron-picking method decides from x alone, before any MLP weight is read
        neuron_mask = self.generator.neuron_mask(self.layer, x)  # (B, T, I) bool or None
        up_mask = self.generator.up_mask(self.layer, x)  # (B, T, H) bool or None
        x_kept = x if up_mask is None else x * up_mask  # pruned inputs add exactly 0
        gate, up = self.swiglu.gate_up(x_kept)  # (B, T, I) each
        act = self.swiglu.act(gate)  # (B, T, I)
        h = act * up  # (B, T, I), as Hugging Face orders it
        # a dropped neuron's h_i is 0, as if its W_up/W_gate rows and W_down column were skipped
        down_mask = (neuron_mask if neuron_mask is not None
                     else self.generator.down_mask(self.layer, act, h))  # (B, T, I) or None
        if down_mask is not None:
            h = h * down_mask
        if self.recorder is not None:
            self.recorder.add(self.layer, up_mask, down_mask, x.shape[0] * x.shape[1])
        return self.swiglu.down(h)


class MaskedPlainFFN:
    """The forwards of one layer's two plain-FFN matrices under a mask generator."""

    def __init__(self, layer: int, ffn: PlainFFN, generator: MaskGenerator,
                 recorder: MaskRecorder | None):
        self.layer, self.ffn, self.generator, self.recorder = layer, ffn, generator, recorder
        self._up_mask = self._neuron_mask = None
        self._up_linear = type(ffn.up).forward  # the class's own forwards, bound below
        self._down_linear = type(ffn.down_proj).forward

    def up_forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, I)
        x3 = _three_dims(x)  # OPT flattens tokens to (B*T, H): seen as one batch row
        self._neuron_mask = _like(self.generator.neuron_mask(self.layer, x3), x.shape[:-1])
        self._up_mask = _like(self.generator.up_mask(self.layer, x3), x.shape[:-1])
        x_kept = x if self._up_mask is None else x * self._up_mask
        return self._up_linear(self.ffn.up, x_kept)

    def down_forward(self, h: torch.Tensor) -> torch.Tensor:  # h = act(W_up x~), (B, T, I)
        h3 = _three_dims(h)
        down_mask = (self._neuron_mask if self._neuron_mask is not None
                     else _like(self.generator.down_mask(self.layer, h3, h3), h.shape[:-1]))
        if down_mask is not None:
            h = h * down_mask
        if self.recorder is not None:
            self.recorder.add(self.layer, self._up_mask, down_mask, h.shape[0] * h.shape[1])
        self._up_mask = self._neuron_mask = None
        return self._down_linear(self.ffn.down_proj, h)


def _three_dims(t: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (1, N, D); (B, T, D) unchanged: generators take (B, T, D)."""
    return t.unsqueeze(0) if t.dim() == 2 else t


def _like(mask: torch.Tensor | None, lead: torch.Size) -> torch.Tensor | None:
    """A generator's mask reshaped to the leading dims of the tensor it masks."""
    return None if mask is None else mask.reshape(*lead, mask.shape[-1])


@contextmanager
def masked(loaded: LoadedModel, generator: MaskGenerator,
           recorder: MaskRecorder | None = None) -> Iterator[None]:
    """Run `loaded.model` with every MLP masked by `generator` inside the block."""
    try:
        for layer, view in enumerate(loaded.mlps):
            kind = MaskedPlainFFN if isinstance(view, PlainFFN) else MaskedMLP
            view.install(kind(layer, view, generator, recorder))
        yield
    finally:
        for view in loaded.mlps:
            view.uninstall()
