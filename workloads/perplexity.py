"""Perplexity of a (masked) causal LM on token windows, plus the masks each window used.

Each window is an independent sequence: token t is predicted from tokens < t of the same
window only, so a window of W tokens scores W - 1 predictions (the first token has no
context and is not scored). Perplexity = exp(total NLL / total scored tokens) over all
windows, NLL summed in float64. What this ignores: cross-window context (no sliding
context), BOS tokens (windows are raw text tokens).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from workloads.masked_mlp import MaskRecorder, masked
from workloads.masks.base import MaskGenerator
from workloads.model import LoadedModel


@dataclass(frozen=True)
class WindowResult:
    """One window's score and the masks its forward pass read."""

    nll_sum: float  # sum over scored tokens of -log p(token | prefix)
    num_scored: int  # W - 1
    up: np.ndarray | None  # (W, L, H) bool, None = all read
    down: np.ndarray | None  # (W, L, I) bool, None = all read
    stats: dict  # the generator's own per-sequence figures (DIP-CA: cache_hits)


def sequence_nll(logits: torch.Tensor, ids: torch.Tensor) -> tuple[float, int]:
    """logits (1, W, V), ids (1, W) -> (sum of NLL of ids[1:], number scored)."""
    log_probs = F.log_softmax(logits[0, :-1].float(), dim=-1)  # (W-1, V)
    picked = log_probs.gather(1, ids[0, 1:, None])[:, 0]  # (W-1,)
    return -float(picked.double().sum()), int(picked.numel())


def score_window(loaded: LoadedModel, generator: MaskGenerator, ids: np.ndarray) -> WindowResult:
    """Teacher-forced forward of one window (W,) under `generator`, caches cold."""
    recorder = MaskRecorder(loaded.shape.num_hidden_layers)
    tokens = torch.from_numpy(ids)[None]  # (1, W)
    generator.start_sequence()
    with torch.inference_mode(), masked(loaded, generator, recorder):
        logits = loaded.model(input_ids=tokens, use_cache=False).logits  # (1, W, V)
    nll, count = sequence_nll(logits, tokens)
    return WindowResult(nll, count, recorder.stack(loaded.shape.hidden_size, "up"),
                        recorder.stack(loaded.shape.intermediate_size, "down"),
                        generator.sequence_stats())


def calibrate(loaded: LoadedModel, generator: MaskGenerator, ids: np.ndarray) -> None:
    """Fit the generator's thresholds on calibration windows (N, W), as one batch, layer
    by layer (see workloads.masks._select.LayerThresholds). Skips the LM head."""
    generator.set_calibrating(True)
    try:
        with torch.inference_mode(), masked(loaded, generator):
            loaded.model.get_decoder()(input_ids=torch.from_numpy(ids), use_cache=False)
    finally:
        generator.set_calibrating(False)


def perplexity(nll_sum: float, num_scored: int) -> float:
    """exp(mean NLL); inf if that overflows (a broken model, not an error)."""
    try:
        return math.exp(nll_sum / num_scored)
    except OverflowError:
        return math.inf
