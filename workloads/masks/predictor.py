"""A trained activation predictor, Deja Vu style (Liu et al. 2023; PAPER.md section 3,
"trained predictors"): per layer, a small network reads the MLP input x and scores every
intermediate neuron; the k best-scoring neurons are read (row i of W_up and of W_gate, column i
of W_down: one neuron-indexed bundle of 3 H weights, as LLM in a flash stores them), the
others contribute exactly zero.

The network is Deja Vu's MLP predictor: two bias-free linear maps through a rank-r
bottleneck, no nonlinearity, `scores = W_expand (W_reduce x)` with W_reduce (r, H) and
W_expand (I, r), so r (H + I) parameters per layer (on SmolLM2-135M a ReLU in the bottleneck
lowered held-out recall by 0.005 at rank 64: benchmarks/predictor_ablation.py). The weights
are resident in DRAM and read every token; memsim counts them (`Trace.predictor_params`) and
puts their compute on the critical path before the layer's MLP loads.
Training (`memsim train-predictor`, workloads/train_predictor.py) fits them to predict which
neurons are in the top-k of |h|, h = silu(W_gate x) * (W_up x), of the dense model.
Density: k = round(d I) neurons every token, so the MLP density (fraction of MLP weights read)
is k / I, the requested d up to rounding, on every token and layer.

A predictor folder holds `predictor.safetensors` (the weights) and `predictor.json` (what it
is, what it was trained on, its held-out recall; written last, so it marks a finished run).
What this ignores: look-ahead predictors that read the attention input to overlap with
attention (Deja Vu's asynchronous variant), and the shift between the dense model's
activations (trained on) and the masked model's (run on).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from memsim.core.errors import ConfigError
from memsim.traces import ModelShape
from workloads.masks._select import topk_mask
from workloads.masks.base import FRACTION, MASKS, TEXT, MaskGenerator, param
from workloads.resumable import CHECKPOINTS  # an unfinished run's checkpoints

WEIGHTS_FILE = "predictor.safetensors"
RECORD_FILE = "predictor.json"  # written last: a folder with it holds a finished predictor
FORMAT = "memsim-predictor"
FORMAT_VERSION = 1
SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size")


class LowRankPredictor(nn.Module):
    """Per layer l: scores (..., I) = (x @ reduce[l].T) @ expand[l].T, x (..., H); no bias.
    The layers' weights are stacked, reduce (L, r, H) and expand (L, I, r), so training runs
    every layer in two batched matmuls (`all_layers`; 3x faster than a loop on 2 cores)."""

    def __init__(self, num_layers: int, hidden_size: int, intermediate_size: int, rank: int):
        super().__init__()
        self.reduce = nn.Parameter(torch.empty(num_layers, rank, hidden_size))  # (L, r, H)
        self.expand = nn.Parameter(torch.empty(num_layers, intermediate_size, rank))  # (L, I, r)
        # nn.Linear's default draw, U(+-1/sqrt(fan_in)); seed torch first for a fixed start
        nn.init.uniform_(self.reduce, -hidden_size ** -0.5, hidden_size ** -0.5)
        nn.init.uniform_(self.expand, -rank ** -0.5, rank ** -0.5)

    @classmethod
    def for_shape(cls, shape: ModelShape, rank: int) -> "LowRankPredictor":
        return cls(shape.num_hidden_layers, shape.hidden_size, shape.intermediate_size, rank)

    def forward(self, layer: int, x: torch.Tensor) -> torch.Tensor:  # (..., H) -> (..., I)
        return (x @ self.reduce[layer].T) @ self.expand[layer].T

    def all_layers(self, x: torch.Tensor) -> torch.Tensor:  # (L, B, H) -> (L, B, I)
        return torch.bmm(torch.bmm(x, self.reduce.transpose(1, 2)), self.expand.transpose(1, 2))

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def predictor_param_count(shape: ModelShape, rank: int) -> int:
    """r (H + I) per layer, all layers: what memsim keeps resident and reads per token."""
    return shape.num_hidden_layers * rank * (shape.hidden_size + shape.intermediate_size)


# ---------------------------------------------------------------- the folder
def read_record(folder: str | Path) -> dict:
    """predictor.json of a finished predictor folder; a clear error for anything else."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"no predictor folder {str(path)!r}", key_path="predictor.predictor",
                          allowed="a folder written by memsim train-predictor --out")
    if not (path / RECORD_FILE).is_file():
        why = ("its training has not finished (rerun the same memsim train-predictor command "
               "to resume it)" if (path / CHECKPOINTS).is_dir()
               else f"it has no {RECORD_FILE}")
        raise ConfigError(f"{path} is not a finished predictor folder: {why}",
                          key_path="predictor.predictor",
                          allowed="a folder written by memsim train-predictor --out")
    try:
        record = json.loads((path / RECORD_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path / RECORD_FILE}: {exc}",
                          key_path="predictor.predictor") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ConfigError(f"{path / RECORD_FILE} is not a memsim predictor record",
                          key_path="predictor.predictor", allowed=f"format {FORMAT!r}")
    if record.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"predictor format_version {record.get('format_version')!r} "
                          "unsupported", key_path="predictor.predictor",
                          allowed=str(FORMAT_VERSION))
    if not (path / WEIGHTS_FILE).is_file():
        raise ConfigError(f"{path} has no {WEIGHTS_FILE}", key_path="predictor.predictor")
    return record


def check_shape(record: dict, shape: ModelShape, folder: Path) -> None:
    """A predictor fits only the layer count and sizes it was trained on."""
    trained = record.get("model_shape", {})
    mine = shape.to_dict()
    for key in SHAPE_KEYS:
        if trained.get(key) != mine.get(key):
            raise ConfigError(f"predictor {folder} was trained on {record.get('model')!r} "
                              f"({key} {trained.get(key)}), this model has {key} "
                              f"{mine.get(key)}", key_path="predictor.predictor",
                              allowed=f"a predictor trained on this model ({shape.name})")


def load_predictor(folder: str | Path, shape: ModelShape) -> tuple[LowRankPredictor, dict]:
    """The network (float32, eval mode, frozen) and record of a predictor folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    record = read_record(folder)
    check_shape(record, shape, folder)
    net = LowRankPredictor.for_shape(shape, int(record["rank"]))
    try:
        net.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    except (RuntimeError, OSError, ValueError) as exc:  # missing keys, sizes, a broken file
        raise ConfigError(f"{folder / WEIGHTS_FILE} does not hold this predictor: "
                          f"{str(exc).strip().splitlines()[0]}",
                          key_path="predictor.predictor") from None
    return net.eval().requires_grad_(False), record


def save_weights(net: LowRankPredictor, path: Path) -> None:
    """The network's weights as safetensors (never pickle)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(path))


def same_model(recorded: str, given: str) -> bool:
    """Equal names, or two paths to the same checkpoint."""
    if recorded == given:
        return True
    a, b = Path(recorded), Path(given)
    return a.exists() and b.exists() and a.resolve() == b.resolve()


# ---------------------------------------------------------------- the mask generator
@dataclass(frozen=True)
class PredictorParams:
    predictor: str | None = param("folder written by memsim train-predictor (required)", TEXT)
    density: float | None = param(
        "target MLP density; must be the one the predictor was trained for (default: that)",
        FRACTION)


def _folder(params: PredictorParams) -> Path:
    if params.predictor is None:
        raise ConfigError("method predictor needs a trained predictor folder",
                          key_path="predictor.predictor",
                          allowed="a folder written by memsim train-predictor --out "
                                  "(memsim eval --predictor DIR)")
    return Path(params.predictor)


def _check_density(params: PredictorParams, record: dict, folder: Path) -> None:
    trained = float(record["density"])
    if params.density is not None and abs(params.density - trained) > 1e-9:
        raise ConfigError(f"predictor {folder} was trained for density {trained}, not "
                          f"{params.density}", key_path="predictor.density",
                          allowed=f"{trained}, or leave it out (or train another predictor "
                                  f"with memsim train-predictor --density {params.density})")


@MASKS.register("predictor")
class Predictor(MaskGenerator):
    """Top-k of a trained low-rank predictor's scores picks the neurons each token reads."""

    name = "predictor"
    Params = PredictorParams
    trace_layout = "neurons"

    def __init__(self, params: PredictorParams, shape: ModelShape):
        super().__init__(params, shape)
        self.folder = _folder(params)
        self.net, self.record = load_predictor(self.folder, shape)
        _check_density(params, self.record, self.folder)
        self.k = int(self.record["k"])

    @classmethod
    def check_params(cls, params: Any, model: str) -> None:
        folder = _folder(params)
        record = read_record(folder)
        _check_density(params, record, folder)
        if not same_model(str(record.get("model")), model):
            raise ConfigError(f"predictor {folder} was trained on model {record.get('model')!r}"
                              f", not {model!r}", key_path="predictor.predictor",
                              allowed=f"a predictor trained on {model} (memsim "
                                      "train-predictor --model)")

    def check_eval_data(self, corpus: str, split: str) -> None:
        data = self.record.get("data", {})
        if data.get("corpus") == corpus and data.get("train_split") == split:
            raise ConfigError(f"predictor {self.folder} was trained on split {split!r} of "
                              f"{corpus!r}; evaluating on it would score it on its training "
                              "data", key_path="split",
                              allowed=f"another split (held out: "
                                      f"{data.get('heldout_split')!r})")

    def neuron_mask(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        with torch.no_grad():
            scores = self.net(layer, x.float())  # (B, T, I)
        return topk_mask(scores, self.k)  # exactly k per token; None when k = I

    def resolved_params(self) -> dict:
        I = self.shape.intermediate_size
        recall = self.record.get("recall", {})
        return {"predictor": str(self.folder.resolve()), "density": float(self.record["density"]),
                "k": self.k, "rank": int(self.record["rank"]),
                "predictor_params": self.net.num_params, "nominal_density": self.k / I,
                "train_split": self.record.get("data", {}).get("train_split"),
                "heldout_recall_mean": recall.get("mean")}

    def trace_fields(self) -> dict:
        return {"predictor_params": self.net.num_params}
