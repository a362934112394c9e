"""Tiny random SwiGLU checkpoints and texts for tests and examples (no download).

`save_tiny_checkpoint(folder, arch)` writes a randomly initialised 2-layer model (hidden size
64) of a real architecture plus a small byte-level BPE tokenizer, with `save_pretrained`,
so tests load it through the same `workloads.model.load_model` path as a user checkpoint.
`save_tiny_gguf(path)` writes a 2-layer Llama as a GGUF file with Q4_1 weights (as SmolLM2 is
shipped) and the same tokenizer, for the GGUF loader and the dequantised-model cache.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

ARCHS = ("llama", "mistral", "qwen2", "phi3")
PLAIN_ARCHS = ("opt",)  # plain FFN (no gate)
WORDS = ("the king queen lord lady sword crown night day love death speak hear thou thee "
         "thy hath doth good ill fair foul and or but not with upon into from heaven earth "
         "blood gold fire water air stone ghost father son daughter brother honour grace").split()


def sample_text(num_words: int = 4000, seed: int = 0) -> str:
    """Deterministic pseudo-text: lines of random words from a small vocabulary."""
    rng = np.random.default_rng(seed)
    words = rng.choice(WORDS, size=num_words)
    lines = [" ".join(words[i:i + 9]).capitalize() + "." for i in range(0, num_words, 9)]
    return "\n".join(lines) + "\n"


def tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer trained on `sample_text` (a transformers fast tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(sample_text().splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


def tiny_config(arch: str, vocab_size: int = 512, **overrides):
    """A 2-layer, hidden-64 config of `arch` (llama, mistral, qwen2, phi3, opt)."""
    from transformers import LlamaConfig, MistralConfig, OPTConfig, Phi3Config, Qwen2Config

    if arch == "opt":  # a plain FFN: fc1 (ffn_dim x H), relu, fc2; LM head tied
        base = dict(vocab_size=vocab_size, hidden_size=64, ffn_dim=96, num_hidden_layers=2,
                    num_attention_heads=4, max_position_embeddings=512,
                    word_embed_proj_dim=64, activation_function="relu", bos_token_id=0,
                    eos_token_id=0, pad_token_id=0, do_layer_norm_before=True)
        return OPTConfig(**{**base, **overrides})
    classes = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config,
               "phi3": Phi3Config}
    base = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=96,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=512, bos_token_id=0, eos_token_id=0, pad_token_id=0,
                tie_word_embeddings=False)
    return classes[arch](**{**base, **overrides})


def save_tiny_checkpoint(folder: str | Path, arch: str = "llama", seed: int = 0,
                         **overrides) -> Path:
    """Write a random tiny `arch` model (safetensors) and tokenizer into `folder`."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, **overrides))
    _spread_weights(model, seed)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def _spread_weights(model: torch.nn.Module, seed: int) -> None:
    """Re-draw every weight with std 0.2 (HF's 0.02 makes a random model's activations
    nearly constant, so masks would barely matter and ties would be common)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block: tiny models gain nothing from threads, and
    on a busy 2-core machine their thread pool spins (tests ran 3-4x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_tiny_gguf(path: str | Path, seed: int = 0, hidden_size: int = 64,
                   intermediate_size: int = 96, num_layers: int = 2) -> Path:
    """Write a random 2-layer Llama GGUF file (Q4_1 matrices, F32 norms, BPE tokenizer)."""
    import gguf

    tokens, merges = _bpe_vocab(tiny_tokenizer())
    heads, kv_heads = 4, 2
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("memsim tiny test model")
    writer.add_block_count(num_layers)
    writer.add_context_length(512)
    writer.add_embedding_length(hidden_size)
    writer.add_feed_forward_length(intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(hidden_size // heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * len(tokens))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    rng = np.random.default_rng(seed)
    kv_width = hidden_size // heads * kv_heads
    shapes = {"token_embd": (len(tokens), hidden_size), "output": (len(tokens), hidden_size),
              "output_norm": (hidden_size,)}
    for i in range(num_layers):
        shapes.update({f"blk.{i}.attn_norm": (hidden_size,), f"blk.{i}.ffn_norm": (hidden_size,),
                       f"blk.{i}.attn_q": (hidden_size, hidden_size),
                       f"blk.{i}.attn_k": (kv_width, hidden_size),
                       f"blk.{i}.attn_v": (kv_width, hidden_size),
                       f"blk.{i}.attn_output": (hidden_size, hidden_size),
                       f"blk.{i}.ffn_gate": (intermediate_size, hidden_size),
                       f"blk.{i}.ffn_up": (intermediate_size, hidden_size),
                       f"blk.{i}.ffn_down": (hidden_size, intermediate_size)})
    for name, shape in shapes.items():
        data = (rng.standard_normal(shape) * 0.2).astype(np.float32)  # (out, in) as HF
        if len(shape) == 1:
            writer.add_tensor(f"{name}.weight", data + 1.0)  # norms stay float32
        else:
            q4 = gguf.GGMLQuantizationType.Q4_1
            writer.add_tensor(f"{name}.weight", gguf.quants.quantize(data, q4), raw_dtype=q4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def _bpe_vocab(tokenizer) -> tuple[list[str], list[str]]:
    """(tokens in id order, merges as "a b" strings) of a fast BPE tokenizer."""
    import json

    state = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = [t for t, _ in sorted(state["vocab"].items(), key=lambda item: item[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["merges"]]
    return tokens, merges


def two_split_corpus(train_words: int = 600, test_words: int = 300):
    """A tiny corpus of `sample_text` with a `train` split and a held-out `test` split."""
    from workloads.corpus import Corpus

    return Corpus("tiny", {"train": [("a", sample_text(train_words, seed=1))],
                           "test": [("b", sample_text(test_words, seed=2))]})


TINY_PREDICTOR = dict(rank=8, train_windows=8, window_len=32, steps=6, batch_tokens=64,
                      checkpoint_every=2, recall_windows=3)  # a fraction of a second


def train_tiny_predictor(folder: str | Path, loaded, density: float = 0.5, corpus=None,
                         **overrides) -> dict:
    """Train a predictor for `loaded` (a tiny model from `save_tiny_checkpoint`) on
    `two_split_corpus()` into `folder`; its predictor.json record."""
    from workloads.train_predictor import PredictorTrainConfig, train_predictor

    config = PredictorTrainConfig(**{"model": loaded.name, "density": density,
                                     "corpus": "tiny", **TINY_PREDICTOR, **overrides})
    return train_predictor(config, folder, model=loaded, corpus=corpus or two_split_corpus(),
                           progress=False)
