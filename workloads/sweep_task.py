"""The sweep's `model` trace source: one real evaluation per trace key, in a worker process.

A worker keeps the models and corpora it loaded (a sweep evaluates many methods on one
model), so each is loaded once per worker, not once per point; likewise the last
(model, adapter) pair, built on a copy of the cached base model. Before the evaluations fan
out, the sweep runs one `prepare_for_sweep` task per model and per corpus, in parallel, so a
GGUF model is dequantised into the disk cache once (workloads/model_cache.py) while another
worker fetches the corpus; the evaluations then read both caches.
"""
from __future__ import annotations

import functools
from pathlib import Path

from workloads.corpus import load_corpus
from workloads.evaluation import evaluate
from workloads.model import load_model


@functools.lru_cache(maxsize=2)
def _model(name: str):
    return load_model(name, progress=False)


@functools.lru_cache(maxsize=1)
def _adapted(name: str, adapter: str):
    """The cached base model with an adapter, on a copy (`with_adapter` deep-copies, so the
    base model in `_model`'s cache never carries one); kept for the adapter's next point."""
    from workloads.lora import with_adapter  # the LoRA issue's adapters

    return with_adapter(_model(name), adapter)


@functools.lru_cache(maxsize=2)
def _corpus(spec: str):
    return load_corpus(spec)


def _one_thread() -> None:
    """One torch thread per worker: the sweep already runs one worker per core, and more
    threads per worker oversubscribe the cores (measured 3-4x slower on 2 cores)."""
    import torch
    torch.set_num_threads(1)


def prepare_for_sweep(kind: str, name: str) -> None:
    """Task: load model or corpus `name` into this worker (and so into the disk caches)."""
    _one_thread()
    (_model if kind == "model" else _corpus)(name)


def evaluate_for_sweep(job: dict, out: Path, hw_path: Path | None) -> dict:
    """Evaluate job's method on its model and windows; files into `out`; figures back."""
    _one_thread()
    t = job["trace"]
    adapter = job.get("adapter", "none")
    model = (_model(job["model"]) if adapter in ("none", "", None)
             else _adapted(job["model"], str(adapter)))
    result = evaluate(model, job["method"], job["params"], corpus=_corpus(t["corpus"]),
                      windows=t["windows"], window_len=t["window_len"], seed=t["seed"],
                      split=t["split"], hw=None if hw_path is None else str(hw_path),
                      out_dir=out, progress=False)
    return {"perplexity": result.perplexity, "nll_per_token": result.nll_per_token,
            "mlp_density": result.mlp_density, "trace_source": result.trace.source,
            "cache_hit_rate": result.cache_hit_rate}
