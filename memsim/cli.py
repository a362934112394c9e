"""The `memsim` command line (also `python -m memsim`).

Subcommands: simulate, hw {validate, list, keys}, trace {synth, calibrate, info},
eval / finetune (workloads/), sweep, plot, demo. Bad input prints one line naming the field and the allowed values, exit status 2;
never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from memsim.errors import ConfigError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    """Register the function that runs subcommand `name`."""
    def decorate(fn):
        COMMANDS[name] = fn
        return fn
    return decorate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memsim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_simulate(sub)
    _add_hw(sub)
    _add_trace(sub)
    _add_eval(sub)
    _add_finetune(sub)
    _add_sweep(sub)
    _add_plot(sub)
    demo = sub.add_parser("demo", help="run the embedded default sweep (SmolLM2-135M on the "
                                       "flagship phone) and plot it")
    demo.add_argument("--out", default="runs/demo", help="output folder (rerun to resume)")
    demo.add_argument("--workers", type=int, default=None, help="default: one per core")
    return parser


def _add_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="simulate decode of a trace on a phone")
    p.add_argument("--hw", required=True, help="hardware YAML or preset name")
    p.add_argument("--model", default=None,
                   help="model preset or config.json (default: the shape the trace records)")
    p.add_argument("--trace", required=True, help="trace .npz (memsim trace synth / memsim eval)")
    p.add_argument("--mode", default="event", choices=("event", "analytic"))
    p.add_argument("--out", default=None, help="write result.json, per_token.csv, "
                   "resolved_config.yaml here")


def _add_hw(sub) -> None:
    p = sub.add_parser("hw", help="hardware configs")
    hw_sub = p.add_subparsers(dest="hw_command", required=True)
    v = hw_sub.add_parser("validate", help="check a hardware YAML file")
    v.add_argument("file")
    hw_sub.add_parser("list", help="list the presets in hw_configs/")
    hw_sub.add_parser("keys", help="print every YAML key with its unit and range (markdown)")


def _add_trace(sub) -> None:
    p = sub.add_parser("trace", help="mask traces")
    t_sub = p.add_subparsers(dest="trace_command", required=True)
    s = t_sub.add_parser("synth", help="a synthetic trace with realistic reuse")
    s.add_argument("--model", required=True, help="model preset or config.json")
    s.add_argument("--tokens", type=int, required=True)
    s.add_argument("--density", type=float, default=0.5, help="target MLP density (DIP fit)")
    s.add_argument("--method", default="dip", choices=("dip", "dense"))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--prompt-len", type=int, default=0)
    s.add_argument("--sequences", type=int, default=1, help="independent sequences")
    s.add_argument("--out", required=True, help="output .npz")
    i = t_sub.add_parser("info", help="print a trace's metadata and densities")
    i.add_argument("file")
    from memsim.calibrated_synth import add_calibrate_arguments
    add_calibrate_arguments(t_sub.add_parser(
        "calibrate", help="a synthetic trace calibrated on real traces, at another model's shape"))


def _add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="run a sweep file (resumable)")
    p.add_argument("file", help="sweep YAML (see docs/sweeps.md)")
    p.add_argument("--out", required=True, help="output folder (rerun to resume)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--executor", default="local", help="local or dask")
    p.add_argument("--scheduler", default=None,
                   help="dask scheduler address, e.g. tcp://host:8786 (default: start a "
                        "LocalCluster on 127.0.0.1)")


def _add_finetune(sub) -> None:
    p = sub.add_parser("finetune", help="train LoRA adapters with the masks active (PEFT)")
    try:
        from workloads.finetune import add_finetune_arguments
    except ImportError as exc:
        p.set_defaults(eval_error=f"workloads unavailable ({exc}); "
                                  "run: pip install -e '.[model]'")
        return
    add_finetune_arguments(p)


def _add_plot(sub) -> None:
    from memsim.plots import add_plot_arguments
    add_plot_arguments(sub.add_parser("plot", help="figures from a sweep's results table"))


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="perplexity and a trace from a real masked forward pass")
    try:
        from workloads.cli import add_eval_arguments
    except ImportError as exc:  # workloads/ not installed: say how to get it
        p.set_defaults(eval_error=f"workloads unavailable ({exc}); "
                                  "run: pip install -e '.[model]'")
        return
    add_eval_arguments(p)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"memsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memsim: interrupted", file=sys.stderr)
        return 130


@command("simulate")
def _simulate(args) -> int:
    from memsim.config import load_hw
    from memsim.model import load_model_shape
    from memsim.result import write_result
    from memsim.simulate import resolved_config, simulate
    from memsim.trace import Trace

    hw, trace = load_hw(args.hw), Trace.load(args.trace)
    model = load_model_shape(args.model) if args.model else trace.model
    result = simulate(hw, model, trace, mode=args.mode)
    print_table(result.summary_rows())
    if args.out:
        path = write_result(result, args.out, resolved_config(hw, model, trace, args.mode))
        print(f"wrote {path} (+ per_token.csv, resolved_config.yaml)")
    return 0


@command("hw")
def _hw(args) -> int:
    from memsim.config import HardwareConfig, list_presets, load_hw

    if args.hw_command == "validate":
        hw = load_hw(args.file)
        print(f"{args.file}: ok ({hw.name}; flash {hw.flash.impl}, "
              f"DRAM {hw.dram.capacity_GB} GB, cache {hw.cache.impl})")
    elif args.hw_command == "list":
        for name in list_presets():
            print(f"{name:20s} {load_hw(name).description}")
    else:
        from memsim.config_docs import keys_markdown
        print(keys_markdown(HardwareConfig))
    return 0


@command("trace")
def _trace(args) -> int:
    from memsim.model import load_model_shape
    from memsim.synth import synth_trace
    from memsim.trace import Trace

    if args.trace_command == "calibrate":
        from memsim.calibrated_synth import run_calibrate
        return run_calibrate(args)
    if args.trace_command == "info":
        trace = Trace.load(args.file)
        meta = trace.metadata()
        rows = [(k, str(v)) for k, v in meta.items() if k != "model"]
        rows += [("model", trace.model.name), ("tokens", str(trace.num_tokens)),
                 ("MLP density", f"{trace.mlp_density().mean():.4f}")]
        print_table(rows)
        return 0
    try:
        trace = synth_trace(load_model_shape(args.model), args.tokens, args.density,
                            seed=args.seed, method=args.method, prompt_len=args.prompt_len,
                            num_sequences=args.sequences)
    except ValueError as exc:
        raise ConfigError(str(exc), source="<cli>", key_path="trace synth") from None
    print(f"wrote {trace.save(args.out)}")
    return 0


@command("eval")
def _eval(args) -> int:
    if getattr(args, "eval_error", None):
        raise ConfigError(args.eval_error, source="<cli>", key_path="eval")
    from workloads.cli import run_eval
    return run_eval(args)


@command("sweep")
def _sweep(args) -> int:
    from memsim.sweep import run_sweep
    from memsim.sweep_spec import load_sweep

    if args.workers < 1:
        raise ConfigError("must be >= 1", source="<cli>", key_path="--workers", allowed=">= 1")
    report = run_sweep(load_sweep(args.file), args.out, executor=args.executor,
                       workers=args.workers, scheduler=args.scheduler)
    print(f"{report.num_points} points ({report.num_done_before} already done); "
          f"results: {report.table_path}")
    for failure in report.failures:
        print(f"failed: {failure}", file=sys.stderr)
    if report.num_failed:
        print(f"memsim: {report.num_failed} tasks failed; rerun the same command to resume",
              file=sys.stderr)
        return 1
    return 0


@command("finetune")
def _finetune(args) -> int:
    if getattr(args, "eval_error", None):
        raise ConfigError(args.eval_error, source="<cli>", key_path="finetune")
    from workloads.finetune import run_finetune
    return run_finetune(args)


@command("plot")
def _plot(args) -> int:
    from memsim.plots import run_plot
    return run_plot(args)


@command("demo")
def _demo(args) -> int:
    from memsim.demo import run_demo
    return run_demo(Path(args.out), workers=args.workers)


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
