"""Tiny random SwiGLU checkpoints and texts for tests and examples (no download).

`save_tiny_checkpoint(folder, arch)` writes a randomly initialised 2-layer model (hidden size
64) of a real architecture plus a small byte-level BPE tokenizer, with `save_pretrained`,
so tests load it through the same `workloads.model.load_model` path as a user checkpoint.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

ARCHS = ("llama", "mistral", "qwen2", "phi3")
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
    """A 2-layer, hidden-64 config of `arch` (llama, mistral, qwen2, phi3)."""
    from transformers import LlamaConfig, MistralConfig, Phi3Config, Qwen2Config

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
