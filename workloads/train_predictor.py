"""`memsim train-predictor`: fit the `predictor` method's low-rank networks
(workloads/masks/predictor.py) to a model, resumable.

Flow: check the settings -> load the corpus, pick a training split and a disjoint held-out
split -> load the model -> draw `train_windows` windows of the training split (seed) and
`recall_windows` of the held-out split (seed + 1) -> one dense forward pass over the training
windows keeps every layer's MLP input x and |h| (workloads.predictor_data) -> labels: the
top-k neurons of |h| per token, k = round(density I) -> AdamW steps, each on `batch_tokens`
tokens drawn from the kept ones, the loss the mean over layers of binary cross-entropy
between each layer's scores and its labels (Deja Vu's objective) -> top-k recall per layer on
the held-out windows -> `predictor.safetensors`, then `predictor.json` (the done marker).
Reproducibility: the weights are drawn after `torch.manual_seed(seed)`, step s trains on tokens
chosen by (seed, s) alone, and the forward pass has no randomness, so a run resumed from a
checkpoint (weights + AdamW state, safetensors; progress, JSON) takes the same steps as an
uninterrupted one and ends with the same weights. Disjointness: training and held-out
windows come from different splits (Shakespeare: `train` = other plays, `test` = the held-out
plays `memsim eval` scores by default); both lists of windows are recorded, and `memsim eval`
refuses to score a predictor on its training split.
What this ignores: training on the masked model's own activations (later layers see inputs
shifted by earlier layers' masks), per-layer ranks, and validation-based early stopping.
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
from memsim.core.files import atomic_write_text
from workloads import resumable

RUN_FILE = "train_config.json"  # the settings a checkpoint belongs to (checked on resume)
NOT_IDENTITY = ("checkpoint_every",)  # settings a resume may change
DTYPES = ("float32", "float64", "bfloat16")  # workloads.model.DTYPES, without torch


@dataclass(frozen=True)
class PredictorTrainConfig:
    """Everything that decides the predictor a run ends with (recorded in predictor.json).
    Defaults: the measured SmolLM2-135M runs of docs/predictor.md (about two minutes each on
    2 CPU cores)."""

    model: str = "smollm2-135m"  # preset name or local path (workloads.model.load_model)
    density: float = 0.5  # MLP density: fraction of neurons (and so of MLP weights) read
    rank: int = 64  # bottleneck width r: r (H + I) parameters per layer (5% of SmolLM2's MLP)
    corpus: str = "shakespeare"
    split: str | None = None  # training split; None: `train` if the corpus has it
    heldout_split: str | None = None  # recall split; None: `test` if the corpus has it
    text_column: str = "text"
    train_windows: int = 32  # 32 x 128 = 4096 training tokens (x, labels) per layer
    window_len: int = 128
    steps: int = 200  # 200 x 512 tokens at 1e-2 beat 300 x 1024 at 3e-3 (docs/predictor.md)
    batch_tokens: int = 512  # tokens per step (every layer trains on the same tokens)
    lr: float = 1e-2  # peak AdamW rate, cosine decay to lr / 10 at the last step
    seed: int = 0  # weights, token order and (seed, seed + 1) the windows drawn
    checkpoint_every: int = 50  # steps between checkpoints (resume loses at most this many)
    recall_windows: int = 8  # held-out windows for the recall figures
    dtype: str = "float32"  # the model's dtype (the predictor is always float32)

    def __post_init__(self) -> None:
        for key, low in (("rank", 1), ("train_windows", 1), ("window_len", 2), ("steps", 1),
                         ("batch_tokens", 1), ("checkpoint_every", 1), ("recall_windows", 1)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"must be an integer >= {low}, got {value!r}", key_path=key,
                                  allowed=f">= {low}")
        for key, ok, allowed in (
                ("density", _is_number(self.density) and 0 < self.density <= 1, "(0, 1]"),
                ("lr", _is_number(self.lr) and 0 < self.lr < math.inf, "> 0"),
                ("dtype", self.dtype in DTYPES, ", ".join(DTYPES))):
            if not ok:
                raise ConfigError(f"bad value {getattr(self, key)!r}", key_path=key,
                                  allowed=allowed)
        if self.split is not None and self.split == self.heldout_split:
            raise ConfigError(f"training and held-out split are both {self.split!r}",
                              key_path="heldout_split", allowed="a split other than --split")

    def identity(self) -> dict:
        """The settings a checkpoint or finished folder must match."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_IDENTITY}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def lr_at(config: PredictorTrainConfig, step: int) -> float:
    """Rate of step `step` (0-based): cosine decay from lr to lr / 10."""
    return resumable.cosine_lr(config.lr, step, config.steps)


# ---------------------------------------------------------------- the run
def train_predictor(config: PredictorTrainConfig, out_dir: str | Path, *, model: Any = None,
                    corpus: Any = None, activations: Any = None,
                    progress: bool = True) -> dict:
    """Train (or resume, or find finished) the predictor `config` describes, in `out_dir`;
    returns the predictor.json record. `model` / `corpus` may be already-loaded objects;
    `activations` (workloads.predictor_data.Activations) may be reused from an earlier run on
    the same training windows (checked), to skip the forward pass."""
    from workloads.corpus import Corpus, load_corpus
    from workloads.model import LoadedModel, load_model

    out = Path(out_dir)
    finished = _finished_record(out, config)
    if finished is not None:
        return finished
    text = corpus if isinstance(corpus, Corpus) else load_corpus(config.corpus,
                                                                 config.text_column)
    splits = resolve_splits(config, text)  # before the model loads: a typo fails fast
    loaded = (model if isinstance(model, LoadedModel)
              else load_model(config.model, config.dtype, progress=progress))
    return _train(config, loaded, text, splits, activations, out, progress)


def resolve_splits(config: PredictorTrainConfig, corpus) -> tuple[str, str]:
    """(training split, held-out split): different splits of the corpus, so disjoint."""
    train = config.split or corpus.default_split("train")
    heldout = config.heldout_split or ("test" if "test" in corpus.splits else None)
    corpus.documents(train)  # an unknown split names the ones there are
    if heldout is None or heldout == train:
        raise ConfigError(f"corpus {corpus.name!r} has no held-out split besides {train!r}",
                          key_path="heldout_split",
                          allowed="a corpus with two splits (shakespeare: train, test), "
                                  "chosen with --split and --heldout-split")
    corpus.documents(heldout)
    return train, heldout


def _train(config: PredictorTrainConfig, loaded, corpus, splits: tuple[str, str],
           activations, out: Path, progress: bool) -> dict:
    """Windows, activations, steps, recall, files. See the module docstring."""
    import torch

    from workloads.corpus import make_windows
    from workloads.masks import keep_to_k
    from workloads.masks.predictor import LowRankPredictor
    from workloads.predictor_data import collect

    H, I = loaded.shape.hidden_size, loaded.shape.intermediate_size
    if config.rank > min(H, I):
        raise ConfigError(f"rank {config.rank} exceeds the hidden size {H}: a wider "
                          "bottleneck adds parameters, not capacity", key_path="rank",
                          allowed=f"1..{min(H, I)}")
    k = int(keep_to_k(config.density, I))
    train = make_windows(corpus, splits[0], loaded.tokenizer, config.window_len,
                         config.train_windows, config.seed)
    heldout = make_windows(corpus, splits[1], loaded.tokenizer, config.window_len,
                           config.recall_windows, config.seed + 1)
    if train.ids.size < config.batch_tokens:
        raise ConfigError(f"{train.ids.size} training tokens are fewer than one batch",
                          key_path="batch_tokens", allowed=f"1..{train.ids.size}")
    _claim(out, config)  # only settings that passed every check claim the folder
    start = time.perf_counter()
    if activations is None:
        activations = collect(loaded, train.ids, train.split, train.starts, progress)
    _check_activations(activations, train)
    collect_s = time.perf_counter() - start
    labels = activations.labels(k)  # (L, N, I) bool
    torch.manual_seed(config.seed)
    net = LowRankPredictor.for_shape(loaded.shape, config.rank)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=0.0)
    state = _resume(out, net, optimizer)
    _fit(config, net, optimizer, activations, labels, state, out, progress)
    return _finish(config, loaded, corpus, net, k, train, heldout, state, collect_s, out,
                   progress)


def _check_activations(activations, train) -> None:
    if activations.split != train.split or activations.starts != train.starts:
        raise ValueError("the activations given were collected on other windows than this "
                         "run's training windows")


def _fit(config: PredictorTrainConfig, net, optimizer, activations, labels, state: dict,
         out: Path, progress: bool) -> None:
    """AdamW steps from state["step"] to config.steps, checkpointing on the way."""
    import torch
    from tqdm import tqdm

    from workloads.finetune import batch_windows

    session_start, cpu_start = time.perf_counter(), time.process_time()
    with tqdm(total=config.steps, initial=state["step"], desc="train predictor", unit="step",
              disable=not progress) as bar:
        for step in range(state["step"], config.steps):
            idx = torch.from_numpy(batch_windows(step, activations.num_tokens,
                                                 config.batch_tokens, config.seed))  # (B,)
            loss = _step(net, optimizer, activations, labels, idx, lr_at(config, step))
            state["losses"].append(loss)
            state["step"] = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if state["step"] % config.checkpoint_every == 0 and state["step"] < config.steps:
                resumable.add_laps(state, session_start, cpu_start)
                session_start, cpu_start = time.perf_counter(), time.process_time()
                save_checkpoint(out, net, optimizer, state)
    resumable.add_laps(state, session_start, cpu_start)


def _step(net, optimizer, activations, labels, idx, lr: float) -> float:
    """One AdamW step on the mean over layers and tokens idx of BCE(scores, top-k labels)."""
    import torch.nn.functional as F

    for group in optimizer.param_groups:
        group["lr"] = lr
    scores = net.all_layers(activations.x[:, idx])  # (L, B, I)
    loss = F.binary_cross_entropy_with_logits(scores, labels[:, idx].float())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _finish(config: PredictorTrainConfig, loaded, corpus, net, k: int, train, heldout,
            state: dict, collect_s: float, out: Path, progress: bool) -> dict:
    """Held-out recall, then the weights, then predictor.json, then no checkpoints."""
    import torch

    from workloads.masks.predictor import (
        CHECKPOINTS,
        RECORD_FILE,
        WEIGHTS_FILE,
        save_weights,
    )
    from workloads.predictor_data import topk_recall

    start = time.perf_counter()
    net.eval()
    with torch.no_grad():
        recall = topk_recall(loaded, net, k, heldout.ids, progress)  # (L,)
    recall_s = time.perf_counter() - start
    record = _record(config, loaded, corpus, net, k, train, heldout, state, recall,
                     {"collect_activations": collect_s, "fit": state["wall_s"],
                      "recall": recall_s})
    tmp = out / f".{WEIGHTS_FILE}.tmp"
    save_weights(net, tmp)
    tmp.replace(out / WEIGHTS_FILE)
    text = json.dumps(record, indent=2) + "\n"
    atomic_write_text(out / RECORD_FILE, text)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    return json.loads(text)  # as a finished folder returns it (lists, not tuples)


def _record(config: PredictorTrainConfig, loaded, corpus, net, k: int, train, heldout,
            state: dict, recall, wall_s: dict) -> dict:
    """predictor.json: what the predictor is, what it was trained and scored on, how well."""
    import torch
    import transformers

    from workloads.masks.predictor import FORMAT, FORMAT_VERSION

    shape = loaded.shape
    mlp_params = shape.mlp_params_per_layer * shape.num_hidden_layers
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "model": loaded.name,
        "model_shape": shape.to_dict(), "density": float(config.density), "k": k,
        "rank": config.rank, "num_params": net.num_params,
        "fraction_of_mlp_params": net.num_params / mlp_params,
        "network": "scores = W_expand (W_reduce x): (r, H) then (I, r), no bias, no "
                   "nonlinearity (Deja Vu's MLP predictor)",
        "target": "top-k neurons of |silu(W_gate x) * (W_up x)| of the dense model",
        "recall": {"per_layer": [float(r) for r in recall], "mean": float(recall.mean()),
                   "random_guess": k / shape.intermediate_size, "split": heldout.split,
                   "seed": config.seed + 1, "windows": heldout.starts,
                   "num_tokens": int(heldout.ids.size)},
        "data": {"corpus": corpus.name, "train_split": train.split,
                 "heldout_split": heldout.split, "train_windows": train.starts,
                 "num_train_tokens": int(train.ids.size),
                 "disjoint": "training and held-out windows are drawn from different splits "
                             "(different documents)",
                 "train_documents": sorted({d for d, _ in train.starts}),
                 "heldout_documents": sorted({d for d, _ in heldout.starts})},
        "loss_curve": state["losses"], "steps": config.steps, "wall_s": wall_s,
        "fit_cpu_s": state["cpu_s"], "resumed_at_steps": state["resumed_at"],
        "config": dataclasses.asdict(config), "corpus_info": corpus.info,
        "model_source": {k: v for k, v in loaded.source.items() if k != "adapter"},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}


# ---------------------------------------------------------------- files and resuming
# out/predictor.json (done marker), out/predictor.safetensors, out/train_config.json and,
# while unfinished, out/checkpoints/step-NNNNNN/{predictor,optimizer}.safetensors + progress.json
def _files():
    """The folder's file names (workloads.masks.predictor, imported late: it needs torch)."""
    from workloads.masks import predictor

    return predictor


def _finished_record(out: Path, config: PredictorTrainConfig) -> dict | None:
    """The record of a finished run of the same settings in `out`, or None."""
    return resumable.finished_record(out / _files().RECORD_FILE, config.identity(),
                                     NOT_IDENTITY, "predictor run")


def _claim(out: Path, config: PredictorTrainConfig) -> None:
    resumable.claim(out / RUN_FILE, config.identity(), "predictor run")


latest_checkpoint = resumable.latest_checkpoint


def save_checkpoint(out: Path, net, optimizer, state: dict) -> Path:
    """Weights and AdamW state (safetensors) and progress (JSON), into a temp folder renamed
    into place; older checkpoints are removed after."""
    from safetensors.torch import save_file

    from workloads.masks.predictor import WEIGHTS_FILE, save_weights

    def write_files(folder: Path) -> None:
        save_weights(net, folder / WEIGHTS_FILE)
        save_file(_optimizer_tensors(optimizer), str(folder / "optimizer.safetensors"))

    return resumable.write_checkpoint(out, state, write_files)


def _optimizer_tensors(optimizer) -> dict:
    """AdamW's per-parameter state as flat named tensors (its hyper-parameters come from
    the config, and the rate is set every step)."""
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            out[f"{index}.{name}"] = value.detach().reshape(-1).contiguous()  # step: (1,)
    return out


def _load_optimizer(optimizer, tensors: dict) -> None:
    fresh = optimizer.state_dict()
    state: dict = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, values in state.items():
        values["exp_avg"] = values["exp_avg"].reshape(params[index].shape)
        values["exp_avg_sq"] = values["exp_avg_sq"].reshape(params[index].shape)
    optimizer.load_state_dict({"state": state, "param_groups": fresh["param_groups"]})


def _resume(out: Path, net, optimizer) -> dict:
    """Progress so far; weights and AdamW state restored from the last checkpoint."""
    from safetensors.torch import load_file

    from workloads.masks.predictor import WEIGHTS_FILE

    folder = latest_checkpoint(out)
    if folder is None:
        return resumable.fresh_progress()
    try:
        net.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
        _load_optimizer(optimizer, load_file(str(folder / "optimizer.safetensors")))
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise ConfigError(f"checkpoint {folder} does not fit this predictor: "
                          f"{str(exc).strip().splitlines()[0]}", key_path="out",
                          allowed="a checkpoint of the same settings") from None
    return resumable.read_progress(folder)


# ---------------------------------------------------------------- command line
def add_train_predictor_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `memsim train-predictor`'s options to `parser` (no torch needed)."""
    d = PredictorTrainConfig()
    parser.add_argument("--model", default=d.model,
                        help="smollm2-135m (default), a checkpoint folder or a .gguf file")
    parser.add_argument("--density", type=float, required=True,
                        help="MLP density the predictor selects for: it keeps the top "
                             "round(density x intermediate_size) neurons per token")
    parser.add_argument("--rank", type=int, default=d.rank,
                        help=f"bottleneck width r; r (H + I) parameters per layer ({d.rank})")
    parser.add_argument("--out", required=True,
                        help="predictor folder; rerun the same command to resume from its "
                             "last checkpoint")
    data = parser.add_argument_group("data (training and held-out windows are disjoint)")
    data.add_argument("--corpus", default=d.corpus,
                      help="shakespeare (default), or a saved HF dataset with two splits")
    data.add_argument("--split", default=None, help="training split (default: train)")
    data.add_argument("--heldout-split", default=None,
                      help="split for the recall figures (default: test); never trained on")
    data.add_argument("--text-column", default=d.text_column, help="text column of a dataset")
    data.add_argument("--train-windows", type=int, default=d.train_windows,
                      help=f"training windows ({d.train_windows})")
    data.add_argument("--window-len", type=int, default=d.window_len,
                      help=f"tokens per window ({d.window_len})")
    data.add_argument("--recall-windows", type=int, default=d.recall_windows,
                      help=f"held-out windows for the recall figures ({d.recall_windows})")
    fit = parser.add_argument_group("training")
    fit.add_argument("--steps", type=int, default=d.steps, help=f"AdamW steps ({d.steps})")
    fit.add_argument("--batch-tokens", type=int, default=d.batch_tokens,
                     help=f"tokens per step ({d.batch_tokens})")
    fit.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate ({d.lr:g})")
    fit.add_argument("--seed", type=int, default=d.seed,
                     help="weights, token order, windows (0)")
    fit.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                     help=f"steps between checkpoints ({d.checkpoint_every})")
    parser.add_argument("--dtype", default=d.dtype, help="model dtype: " + ", ".join(DTYPES))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> PredictorTrainConfig:
    """The run's settings from parsed arguments (checked in PredictorTrainConfig)."""
    return PredictorTrainConfig(
        model=args.model, density=args.density, rank=args.rank, corpus=args.corpus,
        split=args.split, heldout_split=args.heldout_split, text_column=args.text_column,
        train_windows=args.train_windows, window_len=args.window_len, steps=args.steps,
        batch_tokens=args.batch_tokens, lr=args.lr, seed=args.seed,
        checkpoint_every=args.checkpoint_every, recall_windows=args.recall_windows,
        dtype=args.dtype)


def run_train_predictor(args: argparse.Namespace) -> int:
    """Train one predictor; 0 on success, 2 with a one-line error on bad input, 130 when
    interrupted (the last checkpoint stays; the same command resumes from it)."""
    from workloads.cli import flag_errors, run_command

    def work() -> dict:
        with flag_errors("predictor", args):  # `density` -> --density, as the user typed it
            return train_predictor(config_from_args(args), args.out,
                                   progress=not args.no_progress)

    status, record = run_command("train-predictor", work, resume_from=args.out)
    if status:
        return status
    print(summary(record, args.out))
    return 0


def summary(record: dict, out: str) -> str:
    """What a run prints: size, recall (mean and per layer), time."""
    recall, wall = record["recall"], record["wall_s"]
    per_layer = " ".join(f"{i}:{r:.3f}" for i, r in enumerate(recall["per_layer"]))
    lines = [(f"predictor rank {record['rank']}, density {record['density']} "
              f"(k={record['k']} neurons per token): {record['num_params']:,} params "
              f"({record['fraction_of_mlp_params']:.1%} of the MLP weights)"),
             (f"held-out top-k recall {recall['mean']:.3f} (random guess "
              f"{recall['random_guess']:.3f}; {recall['num_tokens']} tokens of split "
              f"{recall['split']!r})"),
             f"per layer: {per_layer}",
             (f"trained {record['steps']} steps in {wall['fit']:.0f} s (+ "
              f"{wall['collect_activations']:.0f} s collecting activations, "
              f"{wall['recall']:.0f} s scoring recall); wrote {out}")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m workloads.train_predictor ...`: the same as `memsim train-predictor ...`."""
    parser = add_train_predictor_arguments(argparse.ArgumentParser(
        prog="memsim train-predictor", description=__doc__.splitlines()[0]))
    return run_train_predictor(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
