"""`memsim finetune`: train LoRA adapters with a method's masks active (PAPER.md section 3,
"LoRA recovery"), on the corpus's training split, resumable.

Flow: check the settings -> load model and corpus -> draw every training window of the
split -> inject a fresh PEFT LoRA adapter (workloads.lora) -> calibrate thresholds if the
method has any -> resume from the last checkpoint if the output folder has one -> AdamW steps,
each a teacher-forced forward of `batch_size` windows under `masked(...)` (masks depend on
the activations, so they are recomputed every step) -> the adapter (safetensors) and
`finetune.json` (written last: its presence means done).
Gradients: a mask is a constant of the step (top-k has no gradient); pruned elements get
none, kept ones the plain gradient. Reproducibility: the model stays in eval mode and LoRA
dropout is 0, so nothing in a step is random; the initial A is drawn after
`torch.manual_seed(seed)` and step s trains on windows chosen by (seed, s) alone, so a run
resumed from a checkpoint (adapter + AdamW state, both saved) takes the same steps as an
uninterrupted one. Threshold methods are calibrated once, before the first step, on the base
model (the adapter starts as the identity); `memsim eval --adapter` recalibrates on the
adapted model. What this ignores: stateful methods (DIP-CA: train with DIP, whose masks it
biases), gradient accumulation, mixed precision, evaluation during training.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsim.core.errors import ConfigError
from memsim.core.files import atomic_write_text, check_output_dir
from workloads import resumable

RUN_FILE = "finetune_config.json"  # the settings a checkpoint belongs to (checked on resume)
# settings that do not change the adapter a run ends with (a resume may change them)
NOT_IDENTITY = ("checkpoint_every",)


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that decides the adapter a run ends with (written to finetune.json).
    Defaults are the measured SmolLM2-135M run in docs/lora.md (minutes on 2 CPU cores)."""

    model: str = "smollm2-135m"  # preset name or local path (workloads.model.load_model)
    method: str = "dip"
    method_params: dict = dataclasses.field(default_factory=dict)  # as given (dip: d=0.5)
    corpus: str = "shakespeare"
    split: str | None = None  # None: `train` if the corpus has it, else its first split
    text_column: str = "text"
    rank: int = 8  # LoRA rank (workloads.lora.LoraSettings)
    alpha: float = 16.0  # LoRA scale alpha / rank
    target: str = "all"  # all, mlp or attention projections
    steps: int = 60  # ~2 min of training on 2 idle cores; 30 and 120 steps: docs/lora.md
    lr: float = 2e-3  # peak AdamW learning rate (few steps: a high rate, cosine decay)
    warmup_steps: int = 6  # linear warm-up, then cosine decay to lr / 10 at the last step
    batch_size: int = 4  # windows per step
    window_len: int = 128  # tokens per window: 512 tokens a step, ~2.1 s on 2 idle cores
    seed: int = 0  # LoRA init and window order
    checkpoint_every: int = 10  # steps between checkpoints (resume loses at most this many)
    calibration_windows: int = 8  # threshold methods only
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for key, low in (("steps", 1), ("batch_size", 1), ("window_len", 2),
                         ("checkpoint_every", 1), ("calibration_windows", 1),
                         ("warmup_steps", 0)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"must be an integer >= {low}, got {value!r}", key_path=key,
                                  allowed=f">= {low}")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ConfigError(f"must be a number > 0, got {self.lr!r}", key_path="lr",
                              allowed="> 0")

    def identity(self) -> dict:
        """The settings a checkpoint must match to be resumed."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_IDENTITY}


def lr_at(config: FinetuneConfig, step: int) -> float:
    """Learning rate of step `step` (0-based): linear warm-up, cosine decay to lr / 10."""
    return resumable.cosine_lr(config.lr, step, config.steps, config.warmup_steps)


def batch_windows(step: int, num_windows: int, batch_size: int, seed: int) -> Any:
    """Indices of the windows step `step` trains on: epoch e is a permutation drawn by
    (seed, e), cut into batches (the last partial batch dropped). Depends on nothing else,
    so a resumed run needs no data-loader state."""
    import numpy as np

    per_epoch = num_windows // batch_size
    epoch, offset = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_windows)
    return order[offset * batch_size:(offset + 1) * batch_size]


# ---------------------------------------------------------------- the run
def finetune(config: FinetuneConfig, out_dir: str | Path, *, model: Any = None,
             corpus: Any = None, progress: bool = True) -> dict:
    """Train (or resume, or find finished) the adapter `config` describes, in `out_dir`;
    returns the finetune.json record. `model` / `corpus` may be already-loaded objects
    (a LoadedModel is deep-copied: PEFT injects in place, the caller's model stays clean)."""
    import copy

    from workloads.corpus import Corpus, load_corpus
    from workloads.model import LoadedModel, load_model

    out = Path(out_dir)
    _check_method(config)  # cheap checks first: a typo should not wait for a model to load
    settings = _lora_settings(config)
    finished = _finished_record(out, config)
    if finished is not None:
        return finished
    _claim(out, config)
    loaded = (copy.deepcopy(model) if isinstance(model, LoadedModel)
              else load_model(config.model, config.dtype, progress=progress))
    text = corpus if isinstance(corpus, Corpus) else load_corpus(config.corpus,
                                                                 config.text_column)
    return _train(config, settings, loaded, text, out, progress)


def _check_method(config: FinetuneConfig) -> None:
    from workloads.masks import MASKS
    from workloads.masks.base import parse_params

    cls = MASKS.get(config.method, key_path="method")
    parse_params(cls.Params, config.method_params, config.method)
    if cls.is_stateful:
        raise ConfigError(f"method {config.method!r} keeps per-sequence state and cannot "
                          "train in batches", key_path="method",
                          allowed="a stateless method (train with dip, evaluate with dip_ca)")


def _lora_settings(config: FinetuneConfig):
    from workloads.lora import LoraSettings

    return LoraSettings(rank=config.rank, alpha=config.alpha, target=config.target)


def _train(config: FinetuneConfig, settings, loaded, corpus, out: Path, progress: bool) -> dict:
    """Inject, calibrate, resume, step, save. See the module docstring."""
    import torch
    from tqdm import tqdm

    from workloads.corpus import make_windows
    from workloads.lora import ConstantMasks, add_adapter
    from workloads.masks import build_generator

    generator = build_generator(config.method, config.method_params, loaded.shape)
    split = config.split or corpus.default_split("train")
    windows = make_windows(corpus, split, loaded.tokenizer, config.window_len, None,
                           config.seed)  # every candidate window; steps draw from them
    if len(windows.starts) < config.batch_size:
        raise ConfigError(f"split {split!r} offers {len(windows.starts)} windows of "
                          f"{config.window_len} tokens, fewer than one batch",
                          key_path="batch_size", allowed=f"1..{len(windows.starts)}")
    torch.manual_seed(config.seed)  # LoRA A is drawn here; B starts at zero
    adapted = add_adapter(loaded, settings)
    calibration = _calibrate(config, adapted, corpus, generator, split)
    trainable = [p for p in adapted.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    state = _resume(out, adapted.model, optimizer)
    masks, ids_all = ConstantMasks(generator), torch.from_numpy(windows.ids)
    start, session_start, cpu_start = state["step"], time.perf_counter(), time.process_time()
    with tqdm(total=config.steps, initial=start, desc=f"finetune {config.method}",
              unit="step", disable=not progress) as bar:
        for step in range(start, config.steps):
            batch = ids_all[batch_windows(step, len(windows.starts), config.batch_size,
                                          config.seed)]  # (B, W)
            loss = _step(adapted, masks, optimizer, batch, lr_at(config, step))
            state["losses"].append(loss)
            state["step"] = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if state["step"] % config.checkpoint_every == 0 and state["step"] < config.steps:
                resumable.add_laps(state, session_start, cpu_start)
                session_start, cpu_start = time.perf_counter(), time.process_time()
                save_checkpoint(out, adapted.model, optimizer, state)
    resumable.add_laps(state, session_start, cpu_start)
    record = _record(config, adapted, generator, windows, corpus, calibration, state)
    _save_final(out, adapted.model, record)
    return record


def _step(adapted, masks, optimizer, batch, lr: float) -> float:
    """One AdamW step on the mean next-token NLL of `batch` (B, W) under the masks."""
    import torch
    import torch.nn.functional as F

    from workloads.masked_mlp import masked

    for group in optimizer.param_groups:
        group["lr"] = lr
    with masked(adapted, masks):
        logits = adapted.model(input_ids=batch, use_cache=False).logits  # (B, W, V)
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch[:, 1:].flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, 1.0)  # a high lr with few steps: no blow-ups
    optimizer.step()
    return float(loss.detach())


def _calibrate(config: FinetuneConfig, adapted, corpus, generator, split: str) -> dict | None:
    """Fit the method's thresholds, if any, on windows of the training split (drawn by
    seed + 1, as `memsim eval` does), on the base model's function (B = 0)."""
    if not generator.needs_calibration:
        return None
    from workloads.corpus import make_windows
    from workloads.perplexity import calibrate

    windows = make_windows(corpus, split, adapted.tokenizer, config.window_len,
                           config.calibration_windows, config.seed + 1)
    calibrate(adapted, generator, windows.ids)
    return {"split": split, "num_windows": len(windows.starts), "seed": config.seed + 1}


def _record(config: FinetuneConfig, adapted, generator, windows, corpus,
            calibration: dict | None, state: dict) -> dict:
    """finetune.json: what was trained, on what, how the loss went, how long it took."""
    import peft
    import torch
    import transformers

    from workloads.lora import adapter_info

    info = adapter_info(adapted)
    source = {k: v for k, v in adapted.source.items() if k != "adapter"}
    return {"model": adapted.name, "method": config.method,
            "method_params": generator.resolved_params(), "steps": config.steps,
            "rank": config.rank, "alpha": config.alpha,
            "target_modules": info["target_modules"], "adapter_params": info["num_params"],
            "loss_curve": state["losses"], "wall_s": state["wall_s"], "cpu_s": state["cpu_s"],
            "resumed_at_steps": state["resumed_at"],
            "tokens_trained": config.steps * config.batch_size * (config.window_len - 1),
            "split": windows.split, "num_candidate_windows": windows.num_candidates,
            "calibration": calibration, "config": dataclasses.asdict(config),
            "model_shape": adapted.shape.to_dict(), "model_source": source,
            "corpus_info": corpus.info,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__}}


# ---------------------------------------------------------------- files and resuming
# workloads/resumable.py: settings claimed, checkpoints renamed into place, the done marker
def _finished_record(out: Path, config: FinetuneConfig) -> dict | None:
    """The record of a finished run of the same settings in `out`, or None if unfinished."""
    from workloads.lora import FINETUNE_FILE

    return resumable.finished_record(out / FINETUNE_FILE, config.identity(), NOT_IDENTITY,
                                     "finetune")


def _claim(out: Path, config: FinetuneConfig) -> None:
    resumable.claim(out / RUN_FILE, config.identity(), "run")


latest_checkpoint = resumable.latest_checkpoint


def save_checkpoint(out: Path, model, optimizer, state: dict) -> Path:
    """Adapter weights (safetensors), AdamW state (tensors and numbers only, so
    `torch.load(weights_only=True)` reads it) and progress, into a temp folder renamed into
    place; older checkpoints are removed after."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from workloads.lora import ADAPTER_WEIGHTS

    def write_files(folder: Path) -> None:
        save_file(get_peft_model_state_dict(model, save_embedding_layers=False),
                  str(folder / ADAPTER_WEIGHTS))
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")

    return resumable.write_checkpoint(out, state, write_files)


def _resume(out: Path, model, optimizer) -> dict:
    """Progress of the run so far; adapter and optimizer restored from the last checkpoint."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from workloads.lora import ADAPTER_WEIGHTS

    folder = latest_checkpoint(out)
    if folder is None:
        return resumable.fresh_progress()
    result = set_peft_model_state_dict(model, load_file(str(folder / ADAPTER_WEIGHTS)))
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if result.unexpected_keys or missing:
        raise ConfigError(f"checkpoint {folder} does not fit this adapter",
                          key_path="out", allowed="a checkpoint of the same settings")
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    return resumable.read_progress(folder)


def _save_final(out: Path, model, record: dict) -> None:
    """The adapter files, then finetune.json (the done marker), then no checkpoints."""
    from workloads.lora import FINETUNE_FILE, save_adapter

    tmp = out / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_adapter(model, tmp)
    for path in tmp.iterdir():
        path.replace(out / path.name)  # each file atomically
    tmp.rmdir()
    atomic_write_text(out / FINETUNE_FILE, json.dumps(record, indent=2) + "\n")
    shutil.rmtree(out / resumable.CHECKPOINTS, ignore_errors=True)


# ---------------------------------------------------------------- command line
def add_finetune_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `memsim finetune`'s options to `parser` (no torch needed)."""
    from workloads.cli import add_method_arguments

    d = FinetuneConfig()
    parser.add_argument("--model", default=d.model,
                        help="smollm2-135m (default), a checkpoint folder or a .gguf file")
    parser.add_argument("--method", default=d.method,
                        help="mask generator active while training: dip (default), glu, cats, "
                             "dense (plain LoRA, a control); not dip_ca")
    add_method_arguments(parser)
    parser.add_argument("--corpus", default=d.corpus,
                        help="shakespeare (default), a .txt file or folder, or a saved HF dataset")
    parser.add_argument("--split", default=None, help="training split (default: train, "
                                                      "else the corpus's first split)")
    parser.add_argument("--text-column", default=d.text_column,
                        help="text column of an HF dataset")
    lora = parser.add_argument_group("LoRA and training")
    lora.add_argument("--rank", type=int, default=d.rank, help=f"LoRA rank ({d.rank})")
    lora.add_argument("--alpha", type=float, default=d.alpha,
                      help=f"LoRA alpha; scale = alpha / rank ({d.alpha:g})")
    lora.add_argument("--target", default=d.target,
                      help=f"projections to adapt: all, mlp, attention ({d.target})")
    lora.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps ({d.steps})")
    lora.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate ({d.lr:g})")
    lora.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                      help=f"linear warm-up steps before the cosine decay ({d.warmup_steps})")
    lora.add_argument("--batch-size", type=int, default=d.batch_size,
                      help=f"windows per step ({d.batch_size})")
    lora.add_argument("--window-len", type=int, default=d.window_len,
                      help=f"tokens per window ({d.window_len})")
    lora.add_argument("--seed", type=int, default=d.seed, help="LoRA init and window order (0)")
    lora.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                      help=f"steps between checkpoints ({d.checkpoint_every})")
    lora.add_argument("--calibration-windows", type=int, default=d.calibration_windows,
                      help="training windows for threshold calibration (threshold methods)")
    parser.add_argument("--dtype", default=d.dtype, help="float32 (default), float64, bfloat16")
    parser.add_argument("--out", required=True,
                        help="adapter folder; rerun the same command to resume from its last "
                             "checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The run's settings from parsed arguments (checked in FinetuneConfig)."""
    from workloads.cli import method_params

    return FinetuneConfig(
        model=args.model, method=args.method, method_params=method_params(args),
        corpus=args.corpus, split=args.split, text_column=args.text_column, rank=args.rank,
        alpha=args.alpha, target=args.target, steps=args.steps, lr=args.lr,
        warmup_steps=args.warmup_steps, batch_size=args.batch_size,
        window_len=args.window_len, seed=args.seed, checkpoint_every=args.checkpoint_every,
        calibration_windows=args.calibration_windows, dtype=args.dtype)


def run_finetune(args: argparse.Namespace) -> int:
    """Train one adapter; 0 on success, 2 with a one-line error on bad input, 130 when
    interrupted (the last checkpoint stays; the same command resumes from it)."""
    from workloads.cli import flag_errors, run_command

    def work() -> dict:
        with flag_errors(args.method, args):  # errors name the flag: --steps, --density
            config = config_from_args(args)
            check_output_dir(args.out, "--out")  # before the model loads
            return finetune(config, args.out, progress=not args.no_progress)

    status, record = run_command("finetune", work, resume_from=args.out)
    if status:
        return status
    losses = record["loss_curve"]
    print(f"finetune {record['method']}: loss {losses[0]:.4f} -> {_tail_mean(losses):.4f} "
          f"(mean of the last steps) over {record['steps']} steps, {record['wall_s']:.0f} s "
          f"of training; {record['adapter_params']} adapter params; wrote {args.out}")
    return 0


def _tail_mean(values: list[float], count: int = 10) -> float:
    tail = values[-count:]
    return sum(tail) / len(tail)


def main(argv: list[str] | None = None) -> int:
    """`python -m workloads.finetune ...`: the same as `memsim finetune ...`."""
    parser = add_finetune_arguments(argparse.ArgumentParser(
        prog="memsim finetune", description=__doc__.splitlines()[0]))
    return run_finetune(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
