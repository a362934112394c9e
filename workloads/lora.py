"""LoRA adapters on a loaded model, through the `peft` library (PAPER.md section 3, "LoRA
recovery": low-rank adapters fine-tuned with the masks active win back perplexity).

Adapters wrap the attention and MLP projections (Llama/Mistral/Qwen2: q/k/v/o_proj,
gate/up/down_proj; Phi-3's fused qkv_proj, o_proj, gate_up_proj, down_proj) and stay
unmerged: the masked forward (workloads.masked_mlp) calls the wrapped Linear modules, so
`W x~ + B A x~` sees the same pruned input x~ as the base weight. Merging would compute the
same function, but memsim prices adapters as their own weights, resident in DRAM and read
every token (`Trace.adapter_params`), which is what unmerged adapters cost on a phone.
PEFT injects its layers in place; `with_adapter` deep-copies the base model first, so a base
model shared by many evaluations (a sweep worker's cache) never carries an adapter.
An adapter folder is PEFT's `save_pretrained` output (adapter_config.json +
adapter_model.safetensors; pickled .bin weights are refused) plus `finetune.json` when
`memsim finetune` wrote it. What this ignores: other PEFT methods (DoRA, IA3), adapters on
the embeddings or the LM head, quantised adapters (memsim's `precision.adapter_bits` sets
their size).
"""
from __future__ import annotations

import copy
import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from memsim.core.errors import ConfigError
from workloads.masks.base import MaskGenerator
from workloads.model import LoadedModel, find_swiglu_mlps

ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
FINETUNE_FILE = "finetune.json"  # memsim finetune's record (written last: the done marker)
TARGETS = ("all", "mlp", "attention")
# module names per layout; `fused` is Phi-3 (one qkv matrix, one gate+up matrix)
ATTENTION_MODULES = {"separate": ("q_proj", "k_proj", "v_proj", "o_proj"),
                     "fused": ("qkv_proj", "o_proj")}
MLP_MODULES = {"separate": ("gate_proj", "up_proj", "down_proj"),
               "fused": ("gate_up_proj", "down_proj")}


@dataclass(frozen=True)
class LoraSettings:
    """The adapter's shape: rank, scale and which projections it wraps."""

    rank: int = 8  # 2.4 M params on SmolLM2-135M (1.8 %); see docs/lora.md for the measured run
    alpha: float = 16.0  # scale alpha / rank = 2, PEFT's usual 2x-rank rule
    target: str = "all"  # all = attention + MLP projections (the paper's setting)

    def __post_init__(self) -> None:
        if not _is_int(self.rank) or self.rank < 1:
            raise ConfigError(f"must be an integer >= 1, got {self.rank!r}", key_path="rank",
                              allowed=">= 1")
        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool) \
                or not 0 < self.alpha < float("inf"):
            raise ConfigError(f"must be a number > 0, got {self.alpha!r}", key_path="alpha",
                              allowed="> 0")
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r}", key_path="target",
                              allowed=", ".join(TARGETS))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def target_modules(loaded: LoadedModel, target: str = "all") -> list[str]:
    """Projection names PEFT wraps in every decoder layer, for this model's layout."""
    names = {name.rsplit(".", 1)[-1] for name, _ in loaded.model.named_modules()}
    attention = ATTENTION_MODULES["fused" if "qkv_proj" in names else "separate"]
    mlp = MLP_MODULES["fused" if loaded.mlps[0].is_fused else "separate"]
    chosen = {"all": attention + mlp, "mlp": mlp, "attention": attention}[target]
    missing = [n for n in chosen if n not in names]
    if missing:
        raise ConfigError(f"{type(loaded.model).__name__} has no modules {missing}",
                          key_path="target", allowed="Llama/Mistral/Qwen2/Phi-3 projections")
    return list(chosen)


def add_adapter(loaded: LoadedModel, settings: LoraSettings) -> LoadedModel:
    """A fresh, trainable LoRA adapter injected *in place* into `loaded.model` (seed torch
    first: A is drawn at random, B starts at zero, so the model's function is unchanged)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0,
                        target_modules=target_modules(loaded, settings.target), bias="none",
                        task_type="CAUSAL_LM")  # dropout 0: a step is deterministic
    with _quiet_deprecations():
        model = get_peft_model(loaded.model, config)
    return _rewrapped(loaded, model, {"path": None, "num_params": adapter_param_count(model),
                                      "rank": settings.rank, "alpha": settings.alpha,
                                      "target_modules": config_targets(config)})


def with_adapter(loaded: LoadedModel, adapter_dir: str | Path) -> LoadedModel:
    """`loaded` with the adapter in `adapter_dir`, on a deep copy of the model: `loaded`
    itself is left without adapters. Its `mlps` point at the copy's (wrapped) MLPs."""
    from peft import PeftConfig, PeftModel

    if adapter_info(loaded) is not None:
        raise ConfigError(f"model {loaded.name} already has an adapter", key_path="adapter",
                          allowed="one adapter per model")
    folder = check_adapter_dir(adapter_dir)
    _check_shape(loaded, folder)
    config = PeftConfig.from_pretrained(str(folder))
    base = copy.deepcopy(loaded.model)  # PEFT injects in place; keep the caller's model clean
    try:
        with _quiet_deprecations():
            model = PeftModel.from_pretrained(base, str(folder), config=config,
                                              is_trainable=False)
    except (ValueError, RuntimeError, KeyError) as exc:  # no such modules, size mismatch
        raise ConfigError(f"adapter {folder} does not fit model {loaded.name}: "
                          f"{str(exc).strip().splitlines()[0]}", key_path="adapter") from None
    model.eval().requires_grad_(False)
    return _rewrapped(loaded, model, {"path": str(folder), "num_params": adapter_param_count(model),
                                      "rank": config.r, "alpha": config.lora_alpha,
                                      "target_modules": config_targets(config)})


@contextmanager
def _quiet_deprecations() -> Iterator[None]:
    """Hide the transformers 5 deprecation warning PEFT 0.21 triggers on every injection
    (`is_gradient_checkpointing`); other warnings still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        yield


def check_adapter_dir(adapter_dir: str | Path) -> Path:
    """The adapter folder, checked before any model loads (safetensors weights only)."""
    folder = Path(adapter_dir).expanduser().resolve()
    if not (folder / ADAPTER_CONFIG).is_file():
        raise ConfigError(f"{adapter_dir} is not an adapter folder (no {ADAPTER_CONFIG})",
                          key_path="adapter", allowed="a folder written by memsim finetune "
                                                      "or PEFT's save_pretrained")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise ConfigError(f"{adapter_dir} has no {ADAPTER_WEIGHTS} (pickled .bin adapters are "
                          "refused for safety)", key_path="adapter")
    return folder


def _check_shape(loaded: LoadedModel, folder: Path) -> None:
    """An adapter trained by memsim finetune names its model's shape; refuse another."""
    record = folder / FINETUNE_FILE
    if not record.is_file():
        return  # a plain PEFT adapter: PEFT's own size checks still apply
    trained_on = json.loads(record.read_text()).get("model_shape", {})
    mine = loaded.shape.to_dict()
    keys = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
            "num_key_value_heads", "vocab_size")
    differ = [k for k in keys if k in trained_on and trained_on[k] != mine.get(k)]
    if differ:
        raise ConfigError(f"adapter {folder} was trained on a model with another "
                          f"{differ[0]} ({trained_on[differ[0]]}, this model has "
                          f"{mine.get(differ[0])})", key_path="adapter",
                          allowed=f"an adapter trained on {loaded.name}")


def _rewrapped(loaded: LoadedModel, model: nn.Module, adapter: dict) -> LoadedModel:
    """A LoadedModel around the PEFT model: same tokenizer and shape, MLP views re-found on
    the (possibly copied) base model, adapter facts in `source["adapter"]`."""
    return LoadedModel(model, loaded.tokenizer, loaded.name, loaded.shape,
                       find_swiglu_mlps(model.get_base_model()),
                       {**loaded.source, "adapter": adapter})


def config_targets(config) -> list[str]:
    """A PEFT config's target modules as a sorted list (PEFT stores a set)."""
    targets = config.target_modules
    return sorted(targets) if not isinstance(targets, str) else [targets]


def adapter_param_count(model: nn.Module) -> int:
    """Number of LoRA parameters in `model` (PEFT names them lora_A / lora_B): what memsim
    counts as resident adapter weights. 0 for a model without adapters."""
    return sum(p.numel() for name, p in model.named_parameters() if ".lora_" in name)


def adapter_info(loaded: LoadedModel) -> dict | None:
    """The adapter facts `add_adapter` / `with_adapter` recorded, or None."""
    return loaded.source.get("adapter")


def save_adapter(model: nn.Module, folder: str | Path) -> None:
    """PEFT's save_pretrained, safetensors only; `save_embedding_layers=False` keeps PEFT
    from looking up the base model's config (on the Hub, for a GGUF checkpoint)."""
    model.save_pretrained(str(folder), safe_serialization=True, save_embedding_layers=False)


class ConstantMasks(MaskGenerator):
    """A generator seen through detached activations, for training under masks: a mask is a
    constant of the step (top-k and thresholds have no gradient), and the generators' numpy
    selection cannot read a tensor that requires grad. Same masks, bit for bit."""

    def __init__(self, inner: MaskGenerator):
        super().__init__(inner.params, inner.shape)
        self.inner = inner
        self.name = inner.name

    def neuron_mask(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        return self.inner.neuron_mask(layer, x.detach())

    def up_mask(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        return self.inner.up_mask(layer, x.detach())

    def down_mask(self, layer: int, act: torch.Tensor, h: torch.Tensor) -> torch.Tensor | None:
        return self.inner.down_mask(layer, act.detach(), h.detach())
