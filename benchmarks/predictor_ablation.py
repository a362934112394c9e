"""How the predictor's training settings move its held-out recall (docs/predictor.md).

    PYTHONPATH=. .venv/bin/python benchmarks/predictor_ablation.py

SmolLM2-135M, layers 2, 15 and 28 only (each trained alone, so a setting costs a tenth of a
full run): one dense pass collects x and |h| on 32 windows x 128 tokens of the `train` split
and 8 windows of the `test` split (seed 1), then every setting trains a one-layer predictor
and prints its top-k recall on the test tokens (|h| kept as float16, as for training).
Settings: steps x tokens per step, peak rate (cosine decay to a tenth, as
workloads.train_predictor), rank, density, and a ReLU in the bottleneck (Deja Vu's predictor
has none). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from workloads.corpus import load_corpus, make_windows
from workloads.finetune import batch_windows
from workloads.masks import as_rows, keep_to_k, topk_rows
from workloads.model import load_model
from workloads.predictor_data import collect
from workloads.resumable import cosine_lr

LAYERS = (2, 15, 28)
# (rank, density, steps, tokens per step, peak lr, relu)
SETTINGS = [
    (64, 0.5, 300, 1024, 3e-3, False),  # the first default
    (64, 0.5, 100, 512, 3e-3, False),
    (64, 0.5, 100, 512, 1e-2, False),
    (64, 0.5, 200, 512, 1e-2, False),  # the default
    (64, 0.5, 100, 512, 3e-2, False),
    (64, 0.5, 200, 512, 1e-2, True),
    (16, 0.5, 200, 512, 1e-2, False),
    (128, 0.5, 200, 512, 1e-2, False),
    (64, 0.3, 300, 1024, 3e-3, False),
    (64, 0.3, 200, 512, 1e-2, False),
    (64, 0.7, 200, 512, 1e-2, False),
]


def train_one(x, labels, rank: int, steps: int, batch: int, lr: float, relu: bool):
    """A one-layer predictor (H -> r -> I, no bias) trained as workloads.train_predictor."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], rank, bias=False),
                              torch.nn.ReLU() if relu else torch.nn.Identity(),
                              torch.nn.Linear(rank, labels.shape[1], bias=False))
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(lr, step, steps)
        idx = torch.from_numpy(batch_windows(step, x.shape[0], batch, 0))
        loss = F.binary_cross_entropy_with_logits(net(x[idx]), labels[idx].float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="No options: the settings are SETTINGS above.")
    parser.parse_args()
    loaded, corpus = load_model("smollm2-135m", progress=False), load_corpus()
    train = make_windows(corpus, "train", loaded.tokenizer, 128, 32, 0)
    test = make_windows(corpus, "test", loaded.tokenizer, 128, 8, 1)
    start = time.perf_counter()
    fit_data, test_data = (collect(loaded, w.ids, w.split, w.starts) for w in (train, test))
    print(f"collected {train.ids.size} + {test.ids.size} tokens in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    for rank, density, steps, batch, lr, relu in SETTINGS:
        k, recalls, start = int(keep_to_k(density, loaded.shape.intermediate_size)), [], \
            time.perf_counter()
        for layer in LAYERS:
            labels = torch.from_numpy(topk_rows(as_rows(fit_data.h_abs[layer]), k))
            net = train_one(fit_data.x[layer], labels, rank, steps, batch, lr, relu)
            with torch.no_grad():
                predicted = topk_rows(as_rows(net(test_data.x[layer])), k)
            true = topk_rows(as_rows(test_data.h_abs[layer].float()), k)
            recalls.append((predicted & true).sum() / (true.shape[0] * k))
        print(f"rank {rank:3d} density {density} {steps:3d} x {batch:4d} tokens lr {lr:g}"
              f"{' relu' if relu else ''}: recall "
              + " ".join(f"{r:.3f}" for r in recalls)
              + f" mean {np.mean(recalls):.3f} ({time.perf_counter() - start:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
