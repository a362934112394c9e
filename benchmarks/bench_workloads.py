"""Wall time of masked forward passes relative to the dense forward, on the same windows.

Dense is Hugging Face's own forward (no masking installed). DIP and DIP-CA run the same model
with workloads' masked MLPs and mask recording, as `workloads.evaluate` does; the log-softmax
is left out of every figure. Each method scores the same windows `--repeats` times; the
figure is the median over repeats of the time for all windows; methods take turns within
each repeat so background load affects them alike. Targets (issue 3): DIP <= 1.3x
dense, DIP-CA <= 3x. The "stepwise" DIP-CA row forces the token-by-token Python loop
(`stepwise_cache_aware_topk`, what every policy ran before issue 21) in place of the compiled
LRU walk: the before/after of issue 21, in the same run; `--check` also verifies that the two
give identical masks. Prints figures only; nothing asserts on time.

    .venv/bin/python benchmarks/bench_workloads.py [--model smollm2-135m] [--windows 4]
        [--window-len 256] [--density 0.5] [--repeats 3] [--threads N] [--check]
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import torch

from workloads.corpus import load_corpus, make_windows
from workloads.masked_mlp import MaskRecorder, masked
from workloads.masks import build_generator, dip_ca
from workloads.model import load_model

STEPWISE = "stepwise"  # a params key of this script only: run DIP-CA's stepwise loop


@contextlib.contextmanager
def stepwise_dip_ca(active: bool):
    """DIP-CA with its token-by-token loop for every policy (the pre-issue-21 path)."""
    compiled = dip_ca.cache_aware_topk
    if active:
        dip_ca.cache_aware_topk = dip_ca.stepwise_cache_aware_topk
    try:
        yield
    finally:
        dip_ca.cache_aware_topk = compiled


def time_windows(loaded, windows: np.ndarray, method: str | None, params: dict,
                 masks: list | None = None) -> float:
    """Seconds to run every window once (method None: the unmasked model); the masks of
    each window are appended to `masks` when given."""
    params = dict(params)
    stepwise = params.pop(STEPWISE, False)
    generator = None if method is None else build_generator(method, params, loaded.shape)
    start = time.perf_counter()
    with torch.inference_mode(), stepwise_dip_ca(stepwise):
        for ids in windows:
            tokens = torch.from_numpy(ids)[None]  # (1, W)
            if generator is None:
                loaded.model(input_ids=tokens, use_cache=False)
                continue
            generator.start_sequence()
            recorder = MaskRecorder(loaded.shape.num_hidden_layers)
            with masked(loaded, generator, recorder):
                loaded.model(input_ids=tokens, use_cache=False)
            stacked = (recorder.stack(loaded.shape.hidden_size, "up"),
                       recorder.stack(loaded.shape.intermediate_size, "down"))
            if masks is not None:
                masks.append(stacked)
    return time.perf_counter() - start


def same_masks(loaded, windows: np.ndarray, params: dict) -> bool:
    """Whether DIP-CA's compiled walk and its stepwise loop record identical masks."""
    fast, slow = [], []
    time_windows(loaded, windows, "dip_ca", params, fast)
    time_windows(loaded, windows, "dip_ca", {**params, STEPWISE: True}, slow)
    return all(np.array_equal(a, b) for f, s in zip(fast, slow) for a, b in zip(f, s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--window-len", type=int, default=256)
    parser.add_argument("--density", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 is steadier on a busy machine")
    parser.add_argument("--check", action="store_true",
                        help="also compare DIP-CA's compiled and stepwise masks")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.model, progress=False)
    windows = make_windows(load_corpus(), "test", loaded.tokenizer, args.window_len,
                           args.windows, seed=0).ids
    d = args.density
    runs = {"dense (HF forward)": (None, {}),
            "dense (masked path)": ("dense", {}),
            f"dip d={d}": ("dip", {"density": d}),
            f"dip_ca d={d} lru": ("dip_ca", {"density": d, "gamma": 0.5, "cache_policy": "lru"}),
            f"dip_ca d={d} lru stepwise": ("dip_ca", {"density": d, "gamma": 0.5,
                                                     "cache_policy": "lru", STEPWISE: True}),
            f"dip_ca d={d} none": ("dip_ca", {"density": d, "cache_policy": "none"})}
    time_windows(loaded, windows[:1], None, {})  # warm-up: first-call allocations
    print(f"model {args.model}, {args.windows} windows x {args.window_len} tokens, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} (methods interleaved)")
    seconds = {label: [] for label in runs}
    for _ in range(args.repeats):  # round robin: background load hits every method alike
        for label, (method, params) in runs.items():
            seconds[label].append(time_windows(loaded, windows, method, params))
    base = statistics.median(seconds["dense (HF forward)"])
    for label, times in seconds.items():
        median = statistics.median(times)
        print(f"  {label:28s} {median / len(windows) * 1e3:8.1f} ms/window  "
              f"{median / base:5.2f}x dense")
    if args.check:
        same = same_masks(loaded, windows, runs[f"dip_ca d={d} lru"][1])
        print(f"DIP-CA masks, compiled vs stepwise: {'identical' if same else 'DIFFER'}")

if __name__ == "__main__":
    main()
