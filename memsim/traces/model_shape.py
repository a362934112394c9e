"""Model shapes: the dimensions of a decoder that decide how many bytes a token moves.

Two MLP kinds (`mlp`):
  gated  y = W_down (act(W_gate x) * (W_up x)): SwiGLU (Llama, Mistral, Qwen2, Phi-3) and the
         ReLU-fied Llamas of the PowerInfer line, which keep the gate and only swap the
         activation (SparseLLM/ReluLLaMA-7B: `hidden_act: relu`; ProSparse: `fatrelu`);
  plain  y = W_down act(W_up x), no gate (OPT: relu, Falcon: gelu): two matrices, and a
         neuron i is row i of W_up plus column i of W_down (LLM in a flash's bundle).
Only shapes live here (no weights, no torch). Field names follow Hugging Face `config.json`
so a shape can be read from any checkpoint on disk (OPT's `ffn_dim` and Falcon's `n_head`,
`multi_query` are mapped). What the model ignores: biases, norms and rotary tables (a few KB
per layer), OPT's learned position table (2050 x H, ~0.1% of OPT-6.7B), Falcon's parallel
attention (the bytes are the same), and MoE layers (not supported).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from memsim.core.errors import ConfigError


@dataclass(frozen=True)
class ModelShape:
    """Dimensions of a transformer decoder with a gated or a plain MLP (module docstring)."""

    name: str
    num_hidden_layers: int
    hidden_size: int  # H: inputs of W_up / W_gate, outputs of W_down
    intermediate_size: int  # I: outputs of W_up / W_gate, inputs of W_down
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    head_dim: int = 0  # 0 = hidden_size // num_attention_heads, as in HF
    tie_word_embeddings: bool = False
    mlp: str = "gated"  # "gated" (W_gate, W_up, W_down) or "plain" (W_up, W_down)
    hidden_act: str = "silu"  # the MLP activation, as Hugging Face names it
    # Derived once in __post_init__ (parameter counts, not bytes: bytes need a precision).
    attention_params_per_layer: int = field(init=False)
    mlp_params_per_layer: int = field(init=False)
    embedding_params: int = field(init=False)
    kv_values_per_token_per_layer: int = field(init=False)

    def __post_init__(self) -> None:
        where = f"model {self.name}"
        for key, limit in _LIMITS.items():
            value = getattr(self, key)
            if not _is_int(value) or not 0 < value <= limit:
                raise ConfigError(f"must be a positive integer up to {limit:,}, got {value!r}",
                                  source=where, key_path=key, allowed=f"1..{limit:,}")
        if not _is_int(self.head_dim) or not 0 <= self.head_dim <= _LIMITS["hidden_size"]:
            raise ConfigError(f"must be an integer >= 0, got {self.head_dim!r}", source=where,
                              key_path="head_dim", allowed="0 (= hidden_size / heads) or more")
        if not isinstance(self.tie_word_embeddings, bool):
            raise ConfigError(f"must be true or false, got {self.tie_word_embeddings!r}",
                              source=where, key_path="tie_word_embeddings", allowed="bool")
        self._check_mlp(where)
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError("num_attention_heads must be a multiple of num_key_value_heads",
                              source=f"model {self.name}", key_path="num_key_value_heads")
        head_dim = self.head_dim or self.hidden_size // self.num_attention_heads
        q_width, kv_width = self.num_attention_heads * head_dim, self.num_key_value_heads * head_dim
        setattr_ = object.__setattr__
        setattr_(self, "head_dim", head_dim)
        # q and o are H x (heads*hd); k and v are H x (kv_heads*hd)
        setattr_(self, "attention_params_per_layer", 2 * self.hidden_size * (q_width + kv_width))
        setattr_(self, "mlp_params_per_layer",
                 self.num_mlp_matrices * self.hidden_size * self.intermediate_size)
        setattr_(self, "embedding_params", self.vocab_size * self.hidden_size)
        setattr_(self, "kv_values_per_token_per_layer", 2 * kv_width)  # K and V

    def _check_mlp(self, where: str) -> None:
        if self.mlp not in MLP_KINDS:
            raise ConfigError(f"unknown MLP kind {self.mlp!r}", source=where, key_path="mlp",
                              allowed=", ".join(MLP_KINDS))
        allowed = ACTIVATIONS[self.mlp]
        if self.hidden_act not in allowed:
            raise ConfigError(f"activation {self.hidden_act!r} is not one a {self.mlp} MLP "
                              "takes", source=where, key_path="hidden_act",
                              allowed=", ".join(allowed))

    @property
    def is_plain(self) -> bool:
        """True for a two-matrix MLP without a gate (OPT, Falcon)."""
        return self.mlp == "plain"

    @property
    def num_mlp_matrices(self) -> int:
        """Matrices per MLP: 3 gated (W_gate, W_up, W_down), 2 plain (W_up, W_down)."""
        return 2 if self.is_plain else 3

    @property
    def num_params(self) -> int:
        """Total parameters (embedding counted once if tied to the LM head)."""
        per_layer = self.attention_params_per_layer + self.mlp_params_per_layer
        heads = 1 if self.tie_word_embeddings else 2
        return self.num_hidden_layers * per_layer + heads * self.embedding_params

    def to_dict(self) -> dict:
        """The init fields, for traces and resolved configs. `mlp` and `hidden_act` are left
        out at their defaults (gated, silu), so a SwiGLU shape's dict, and the traces and
        sweep points keyed on it, read as they did before the fields existed."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        for key, default in _DEFAULT_MLP.items():
            if out[key] == default:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<api>") -> "ModelShape":
        if not isinstance(data, dict):
            raise ConfigError(f"a model shape is a mapping, got {type(data).__name__}",
                              source=source, key_path="model")
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", source=source,
                              allowed=", ".join(sorted(names)))
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(str(exc), source=source, allowed=", ".join(sorted(names))) from None
        except ConfigError as exc:
            raise exc.relocated(source=source) from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


MLP_KINDS = ("gated", "plain")
# Activations each MLP kind takes (Hugging Face names). A gated MLP with relu / fatrelu is a
# ReLU-fied Llama; gelu-gated MLPs are GeGLU (Gemma). A plain MLP with silu has no released
# decoder to stand for, so it is refused rather than guessed.
ACTIVATIONS = {"gated": ("silu", "swish", "relu", "fatrelu", "relu2", "gelu", "gelu_new",
                         "gelu_fast", "gelu_pytorch_tanh", "quick_gelu"),
               "plain": ("relu", "gelu", "gelu_new", "gelu_pytorch_tanh")}
_DEFAULT_MLP = {"mlp": "gated", "hidden_act": "silu"}

# Sanity limits: far beyond any released decoder, small enough that byte counts stay exact.
_LIMITS = {"num_hidden_layers": 10_000, "hidden_size": 1 << 20, "intermediate_size": 1 << 22,
           "num_attention_heads": 1 << 14, "num_key_value_heads": 1 << 14,
           "vocab_size": 1 << 24}


# Presets looked up by name (gpt-fast style). Figures from each model's HF config.json
# (PAPER.md section 4 lists the same for Phi-3 / Llama-3 / Mistral).
MODEL_PRESETS: dict[str, dict] = {
    "smollm2-135m": dict(num_hidden_layers=30, hidden_size=576, intermediate_size=1536,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         tie_word_embeddings=True),
    "phi-3-mini": dict(num_hidden_layers=32, hidden_size=3072, intermediate_size=8192,
                       num_attention_heads=32, num_key_value_heads=32, vocab_size=32064),
    "phi-3-medium": dict(num_hidden_layers=40, hidden_size=5120, intermediate_size=17920,
                         num_attention_heads=40, num_key_value_heads=10, vocab_size=32064),
    "llama-3-8b": dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=14336,
                       num_attention_heads=32, num_key_value_heads=8, vocab_size=128256),
    "mistral-7b": dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=14336,
                       num_attention_heads=32, num_key_value_heads=8, vocab_size=32000),
    # The flash-offloading peers' models (issue 19). facebook/opt-6.7b config.json: 32
    # layers, hidden 4096, ffn_dim 16384, 32 heads (MHA), vocab 50272, relu, LM head tied to
    # the embedding (OPTForCausalLM ties them); LLM in a flash's main model.
    "opt-6.7b": dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=16384,
                     num_attention_heads=32, num_key_value_heads=32, vocab_size=50272,
                     tie_word_embeddings=True, mlp="plain", hidden_act="relu"),
    # tiiuae/falcon-7b config.json: 32 layers, hidden 4544, 71 heads of 64, multi_query (one
    # KV head), vocab 65024, FFN 4 x hidden = 18176 with gelu, no gate, tied LM head. LLM in a
    # flash runs a ReLU-fied Falcon 7B: same shape, `hidden_act: relu` (bytes identical).
    "falcon-7b": dict(num_hidden_layers=32, hidden_size=4544, intermediate_size=18176,
                      num_attention_heads=71, num_key_value_heads=1, vocab_size=65024,
                      tie_word_embeddings=True, mlp="plain", hidden_act="gelu"),
    # SparseLLM/ReluLLaMA-7B config.json (PowerInfer's ReLU-fied Llama-2-7B): LlamaForCausalLM
    # with hidden_act relu: the gate stays (a gated MLP, 3 matrices), only silu became relu.
    # 32 layers, hidden 4096, intermediate 11008, 32 heads (MHA), vocab 32000, untied.
    "relu-llama-7b": dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=11008,
                          num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                          mlp="gated", hidden_act="relu"),
    # SparseLLM/prosparse-llama-2-7b config.json: the same gated shape with hidden_act fatrelu
    # (threshold 0.01).
    "prosparse-llama-2-7b": dict(num_hidden_layers=32, hidden_size=4096,
                                 intermediate_size=11008, num_attention_heads=32,
                                 num_key_value_heads=32, vocab_size=32000, mlp="gated",
                                 hidden_act="fatrelu"),
}

_HF_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
            "num_key_value_heads", "vocab_size", "head_dim", "tie_word_embeddings",
            "hidden_act")
# Plain-MLP families and how their config.json names things (Hugging Face's OPTConfig and
# FalconConfig): OPT's FFN width is `ffn_dim`, its activation `activation_function`; Falcon's
# old configs say `n_layer` / `n_head`, its FFN is `ffn_hidden_size` or 4 x hidden, one KV
# head when `multi_query` (unless `new_decoder_architecture`), activation `activation`.
PLAIN_MLP_TYPES = ("opt", "falcon", "RefinedWebModel", "RefinedWeb")
_ALIASES = {"ffn_dim": "intermediate_size", "ffn_hidden_size": "intermediate_size",
            "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
            "activation_function": "hidden_act", "activation": "hidden_act"}


def model_from_hf_config(config: dict, name: str, source: str = "") -> ModelShape:
    """A shape from a Hugging Face config dict (missing num_key_value_heads = MHA)."""
    source = source or name
    if not isinstance(config, dict):
        raise ConfigError(f"a config.json holds a JSON object, got {type(config).__name__}",
                          source=source, allowed="a Hugging Face config.json")
    config = _with_aliases(config)
    values = {k: config[k] for k in _HF_KEYS if config.get(k) is not None}
    values.setdefault("num_key_value_heads", config.get("num_attention_heads", 0))
    if config.get("model_type") in PLAIN_MLP_TYPES:
        values.update(_plain_mlp_values(config))
    missing = [k for k in _HF_KEYS[:5] if k not in values]
    if missing:
        raise ConfigError(f"config has no {missing} (not a SwiGLU or plain-FFN decoder "
                          "config?)",
                          source=source, key_path=missing[0])
    try:
        return ModelShape(name=name, **values)
    except ConfigError as exc:  # name the file, not the shape
        raise exc.relocated(source=source) from None
    except TypeError as exc:  # e.g. a number where a name belongs
        raise ConfigError(str(exc), source=source) from None


def _with_aliases(config: dict) -> dict:
    """`config` with other families' key names copied to the Llama names (never over them)."""
    out = dict(config)
    for alias, key in _ALIASES.items():
        if config.get(alias) is not None and config.get(key) is None:
            out[key] = config[alias]
    return out


def _plain_mlp_values(config: dict) -> dict:
    """OPT / Falcon: a plain MLP; Falcon's FFN width and KV heads when the config omits them."""
    out = {"mlp": "plain", "hidden_act": config.get("hidden_act") or
           ("relu" if config.get("model_type") == "opt" else "gelu")}
    if config.get("model_type") == "opt":
        out["tie_word_embeddings"] = config.get("tie_word_embeddings", True)
        return out
    hidden = config.get("hidden_size")
    if config.get("intermediate_size") is None and isinstance(hidden, int):
        out["intermediate_size"] = 4 * hidden
    if config.get("multi_query") and not config.get("new_decoder_architecture"):
        out["num_key_value_heads"] = 1
    elif config.get("num_kv_heads") is not None:
        out["num_key_value_heads"] = config["num_kv_heads"]
    out["tie_word_embeddings"] = config.get("tie_word_embeddings", True)
    return out


def load_model_shape(name_or_path: str) -> ModelShape:
    """A preset name, a checkpoint directory holding config.json, or a config.json path."""
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path):
        raise ConfigError(f"expected a model preset name or path, got "
                          f"{type(name_or_path).__name__} {name_or_path!r}"[:200],
                          source="<model>", key_path="model",
                          allowed=", ".join(MODEL_PRESETS) + ", or a path to a HF config.json")
    if name_or_path in MODEL_PRESETS:
        return ModelShape(name=name_or_path, **MODEL_PRESETS[name_or_path])
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(f"no model preset or config.json called {str(name_or_path)!r}",
                          source="<model>", key_path="model",
                          allowed=", ".join(MODEL_PRESETS) + ", or a path to a HF config.json")
    config = _read_json(path)
    if isinstance(config, dict) and isinstance(config.get("text_config"), dict):
        config = config["text_config"]  # multimodal wrappers keep the LM inside
    return model_from_hf_config(config, name=str(name_or_path), source=str(path))


def _read_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", source=str(path),
                          allowed="a UTF-8 JSON config.json") from None
    except ValueError as exc:
        raise ConfigError(f"not valid JSON ({exc})", source=str(path),
                          allowed="a Hugging Face config.json") from None
