"""What a predictor learns from and is scored on: each layer's MLP input x and GLU output h in
a dense (unmasked) forward pass of the model, and a predictor's top-k recall.

Both ride on the masked forward (workloads.masked_mlp) with an observer that masks nothing:
it sees x (as `neuron_mask`) and h (as `down_mask`) of every layer and returns None, so the
pass is the dense model's, bit for bit, and the MLP is computed once. Only the decoder runs
(no LM head). Top-k recall of a layer = mean over tokens of |predicted set & true set| / k,
where the true set is the top-k of |h| (ties to the lower index, as the masks break them).
Speed and memory shortcut: training activations keep |h| as float16 (only their order is
used, for labels; x stays float32), so 4096 tokens of SmolLM2-135M take about 0.7 GB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from memsim.traces import ModelShape
from workloads.masked_mlp import masked
from workloads.masks import MaskGenerator, as_rows, topk_rows
from workloads.masks.base import NoParams
from workloads.model import LoadedModel

WINDOWS_PER_FORWARD = 8  # windows per decoder forward: enough to batch, little memory

See = Callable[[int, torch.Tensor, torch.Tensor], None]  # (layer, x (B,W,H), h (B,W,I))


class _Observer(MaskGenerator):
    """Hands every layer's x and h to `see`; keeps every neuron (a dense pass)."""

    name = "observer"  # not registered: an internal tool, not a method

    def __init__(self, shape: ModelShape, see: See):
        super().__init__(NoParams(), shape)
        self.see = see
        self._x: torch.Tensor | None = None

    def neuron_mask(self, layer: int, x: torch.Tensor) -> None:
        self._x = x  # called first in each layer's MLP (workloads.masked_mlp); keeps all

    def down_mask(self, layer: int, act: torch.Tensor, h: torch.Tensor) -> None:
        self.see(layer, self._x, h)  # and keeps all


def observe(loaded: LoadedModel, ids: np.ndarray, see: See, progress: bool = False,
            desc: str = "dense pass") -> None:
    """Dense decoder forward over windows ids (N, W), a few windows at a time; `see` gets
    every layer's (x, h) of each batch."""
    observer = _Observer(loaded.shape, see)
    starts = range(0, len(ids), WINDOWS_PER_FORWARD)
    # no_grad, not inference_mode: tensors kept from the pass are trained on later
    with torch.no_grad(), masked(loaded, observer):
        for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
            batch = torch.from_numpy(ids[start:start + WINDOWS_PER_FORWARD])  # (B, W)
            loaded.model.get_decoder()(input_ids=batch, use_cache=False)


@dataclass
class Activations:
    """Every layer's dense-model MLP inputs and |h| on some windows (training data)."""

    x: torch.Tensor  # (L, N, H) float32, N = windows x window_len tokens
    h_abs: torch.Tensor  # (L, N, I) float16; only ranked (labels)
    split: str
    starts: list  # (document, first token) per window, as workloads.corpus.Windows

    @property
    def num_tokens(self) -> int:
        return int(self.x.shape[1])

    def labels(self, k: int) -> torch.Tensor:
        """(L, N, I) bool: the top-k neurons of |h| per token and layer."""
        return torch.stack([torch.from_numpy(topk_rows(as_rows(h), k)) for h in self.h_abs])


def collect(loaded: LoadedModel, ids: np.ndarray, split: str, starts: list,
            progress: bool = False) -> Activations:
    """x and |h| of every layer on windows ids (N, W) of `split`."""
    L, H, I = (loaded.shape.num_hidden_layers, loaded.shape.hidden_size,
               loaded.shape.intermediate_size)
    xs = torch.empty(L, ids.size, H)  # (L, N, H)
    hs = torch.empty(L, ids.size, I, dtype=torch.float16)  # (L, N, I)
    offset = [0] * L

    def keep(layer: int, x: torch.Tensor, h: torch.Tensor) -> None:
        n = x.shape[0] * x.shape[1]
        xs[layer, offset[layer]:offset[layer] + n] = x.reshape(n, H).float()
        hs[layer, offset[layer]:offset[layer] + n] = h.reshape(n, I).abs().half()
        offset[layer] += n

    observe(loaded, ids, keep, progress, desc="collect activations")
    return Activations(xs, hs, split, list(starts))


def topk_recall(loaded: LoadedModel, predict: Callable[[int, torch.Tensor], torch.Tensor],
                k: int, ids: np.ndarray, progress: bool = False) -> np.ndarray:
    """(L,) top-k recall of `predict(layer, x) -> scores (..., I)` on windows ids (N, W),
    against the dense model's top-k of |h| (float32)."""
    L = loaded.shape.num_hidden_layers
    hits, tokens = np.zeros(L, np.int64), np.zeros(L, np.int64)

    def score(layer: int, x: torch.Tensor, h: torch.Tensor) -> None:
        predicted = topk_rows(as_rows(predict(layer, x.float())), k)  # (n, I)
        true = topk_rows(as_rows(h.abs()), k)  # (n, I)
        hits[layer] += np.count_nonzero(predicted & true)
        tokens[layer] += true.shape[0]

    observe(loaded, ids, score, progress, desc="held-out recall")
    return hits / (tokens * k)
