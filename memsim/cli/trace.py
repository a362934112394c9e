"""`memsim trace {synth, info, calibrate}`: make and inspect mask traces."""
from __future__ import annotations

import argparse
import time

from memsim.cli import COMMANDS, Command, print_table
from memsim.core.errors import ConfigError, user_input


@COMMANDS.register("trace")
class TraceCommand(Command):
    help = "mask traces"

    def add_arguments(self, p) -> None:
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
        g = s.add_argument_group("neuron traces (--group neurons): a predictor's masks with "
                                 "stated statistics, e.g. a paper's reported figures")
        g.add_argument("--group", default="columns", choices=("columns", "neurons"),
                       help="columns: DIP / dense masks over W_up and W_down columns "
                            "(default); neurons: whole neurons (row of W_up + column of W_down)")
        g.add_argument("--active-fraction", type=float, default=None,
                       help="share of a layer's neurons each token keeps, in (0, 1]")
        g.add_argument("--reuse-share", type=float, default=None,
                       help="share of a token's neurons that were active within the last "
                            "--window-tokens tokens, in [0, 1]")
        g.add_argument("--window-tokens", type=int, default=5,
                       help="k for --reuse-share (default 5, LLM in a flash's window)")
        g.add_argument("--popularity-std", type=float, default=0.0,
                       help="spread of a fixed lognormal popularity per neuron (0: uniform)")
        g.add_argument("--predictor-params", type=int, default=0,
                       help="parameters of the predictor that picks them (resident in DRAM)")
        i = t_sub.add_parser("info", help="print a trace's metadata and densities")
        i.add_argument("file")
        add_calibrate_arguments(t_sub.add_parser(
            "calibrate", help="a synthetic trace calibrated on real traces, at another model's shape"))

    def run(self, args) -> int:
        if args.trace_command == "calibrate":
            return run_calibrate(args)
        if args.trace_command == "info":
            return _info(args)
        return _synth(args)


def _info(args) -> int:
    from memsim.traces import Trace

    with user_input(key_path="FILE"):
        trace = Trace.load(args.file)
    meta = trace.metadata()
    rows = [(k, str(v)) for k, v in meta.items() if k != "model"]
    rows += [("model", trace.model.name), ("tokens", str(trace.num_tokens)),
             ("MLP density", f"{trace.mlp_density().mean():.4f}")]
    print_table(rows)
    return 0


def _synth(args) -> int:
    from memsim.traces import synth_trace
    from memsim.traces.synth import synth_neuron_trace

    model = check_synth_arguments(args)
    try:
        if args.group == "neurons":
            trace = synth_neuron_trace(
                model, args.tokens, args.active_fraction, args.reuse_share,
                args.window_tokens, seed=args.seed, popularity_std=args.popularity_std,
                prompt_len=args.prompt_len, num_sequences=args.sequences,
                predictor_params=args.predictor_params)
        else:
            trace = synth_trace(model, args.tokens, args.density, seed=args.seed,
                                method=args.method, prompt_len=args.prompt_len,
                                num_sequences=args.sequences)
    except ConfigError:
        raise
    except ValueError as exc:  # anything the checks above missed, said in one line
        raise ConfigError(str(exc), source="<cli>", key_path="trace synth") from None
    print(f"wrote {trace.save(args.out)}")
    return 0


def check_synth_arguments(args):
    """Every flag of `memsim trace synth`, checked before any mask is drawn: the model, the
    counts, the density, the output path, and that the masks fit in memory."""
    import math

    from memsim.core.files import check_fits_in_memory, check_output_file
    from memsim.core.schema import MAX_INT, short_repr
    from memsim.traces import load_model_shape
    from memsim.traces.synth import mask_bytes_per_token

    with user_input(key_path="--model"):
        model = load_model_shape(args.model)
    for flag, value, low in (("--tokens", args.tokens, 1), ("--sequences", args.sequences, 1),
                             ("--seed", args.seed, 0), ("--prompt-len", args.prompt_len, 0)):
        if not low <= value <= MAX_INT:
            raise ConfigError(f"out of range: {short_repr(value)}", source="<cli>",
                              key_path=flag, allowed=f">= {low}, at most {MAX_INT}")
    if args.tokens % args.sequences:
        raise ConfigError(f"{args.tokens} tokens do not split into {args.sequences} equal "
                          "sequences", source="<cli>", key_path="--tokens",
                          allowed="a multiple of --sequences")
    if not (math.isfinite(args.density) and 0 < args.density <= 1):
        raise ConfigError(f"must be in (0, 1], got {args.density}", source="<cli>",
                          key_path="--density", allowed="(0, 1]")
    _check_neuron_flags(args)
    check_output_file(_npz(args.out), "--out")
    check_fits_in_memory(args.tokens * mask_bytes_per_token(model), "the boolean masks",
                         key_path="--tokens", per_unit_bytes=mask_bytes_per_token(model))
    return model


def _check_neuron_flags(args) -> None:
    """--group neurons needs its two statistics in range; --group columns takes none."""
    import math

    from memsim.core.schema import MAX_INT

    group = getattr(args, "group", "columns")
    given = [f for f in ("active_fraction", "reuse_share") if getattr(args, f, None) is not None]
    if group == "columns":
        if given:
            raise ConfigError("only with --group neurons", source="<cli>",
                              key_path="--" + given[0].replace("_", "-"),
                              allowed="--group neurons")
        return
    checks = (("--active-fraction", args.active_fraction, lambda v: 0 < v <= 1, "(0, 1]"),
              ("--reuse-share", args.reuse_share, lambda v: 0 <= v <= 1, "[0, 1]"),
              ("--popularity-std", args.popularity_std, lambda v: 0 <= v <= 10, "[0, 10]"))
    for flag, value, test, allowed in checks:
        if value is None:
            raise ConfigError("--group neurons needs it (the trace's stated statistics)",
                              source="<cli>", key_path=flag, allowed=f"a value in {allowed}")
        if not math.isfinite(value) or not test(value):
            raise ConfigError(f"needs a value in {allowed}, got {value}", source="<cli>",
                              key_path=flag, allowed=allowed)
    for flag, value, low in (("--window-tokens", args.window_tokens, 1),
                             ("--predictor-params", args.predictor_params, 0)):
        if not low <= value <= MAX_INT:
            raise ConfigError(f"out of range: {value}", source="<cli>", key_path=flag,
                              allowed=f">= {low}")


def _npz(path: str) -> str:
    """The file Trace.save writes for `path` (it adds .npz)."""
    from memsim.core.files import npz_path

    return str(npz_path(path))


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `memsim trace calibrate`."""
    parser.add_argument("--from", dest="sources", action="append", required=True,
                        metavar="TRACE.npz", help="source trace (repeat to pool several of "
                        "one model and method), or one statistics .json from --stats-out")
    parser.add_argument("--model", required=True, help="target model preset or config.json")
    parser.add_argument("--tokens", type=int, required=True, help="tokens to generate")
    parser.add_argument("--sequences", type=int, default=1,
                        help="independent sequences (each starts with a cold cache)")
    parser.add_argument("--density", type=float, default=None,
                        help="rescale to this mean MLP density (default: the source's)")
    parser.add_argument("--seed", type=int, required=True, help="the text: token-level draws")
    parser.add_argument("--structure-seed", type=int, default=0,
                        help="the synthetic model: which columns are hot and which fire "
                        "together (keep it to build a layout on one seed, use it on another)")
    parser.add_argument("--out", required=True, help="output trace .npz")
    parser.add_argument("--stats-out", default=None, help="also write the statistics (JSON)")


_FLAGS = {"num_tokens": "--tokens", "num_sequences": "--sequences", "density": "--density",
          "seed": "--seed", "model": "--model", "structure_seed": "--structure-seed"}


def run_calibrate(args: argparse.Namespace) -> int:
    """`memsim trace calibrate`: calibrate on --from, generate at --model, write --out.
    The cheap flags are checked before the (seconds-long) calibration."""
    from memsim.traces import load_model_shape
    from memsim.traces.calibrated import check_generate_args, generate

    with user_input(key_path="--model"):
        model = load_model_shape(args.model)
    with _flags():
        check_generate_args(None, model, args.tokens, args.sequences, args.seed, None)
        if args.structure_seed < 0:
            raise ConfigError(f"must be a non-negative integer, got {args.structure_seed}",
                              key_path="structure_seed", allowed=">= 0")
        if args.density is not None and not 0.0 < args.density <= 1.0:
            raise ConfigError(f"must be in (0, 1], got {args.density}", key_path="density",
                              allowed="(0, 1]")
    check_calibrate_outputs(args, model)
    stats = _load_sources(args.sources)
    start = time.perf_counter()
    with _flags():
        trace = generate(stats, model, args.tokens, seed=args.seed,
                         num_sequences=args.sequences, density=args.density,
                         structure_seed=args.structure_seed)
    seconds = time.perf_counter() - start
    if args.stats_out:
        print(f"wrote {stats.save(args.stats_out)}")
    print(f"wrote {trace.save(args.out)}: {trace.source}, {trace.num_tokens} tokens at "
          f"{model.name}, MLP density {trace.mlp_density().mean():.4f} ({seconds:.1f} s)")
    return 0


def _flags():
    """An error about `num_tokens` etc. (not from a file) told against its flag."""
    return user_input("<cli>", lambda key: _FLAGS.get(key, "--model"))


def check_calibrate_outputs(args: argparse.Namespace, model) -> None:
    """--out and --stats-out writable, and the masks fit in memory, before calibrating."""
    from memsim.core.files import check_fits_in_memory, check_output_file
    from memsim.traces.synth import mask_bytes_per_token

    _check_neuron_flags(args)
    check_output_file(_npz(args.out), "--out")
    if args.stats_out:
        check_output_file(args.stats_out, "--stats-out")
    check_fits_in_memory(args.tokens * mask_bytes_per_token(model), "the boolean masks",
                         key_path="--tokens", per_unit_bytes=mask_bytes_per_token(model))


def _load_sources(paths: list[str]):
    """Statistics from one .json, or calibrated on one or more trace files; any error
    names --from."""
    from memsim.traces import Trace
    from memsim.traces.calibrated import TraceStatistics, calibrate

    try:
        if not any(str(p).endswith(".json") for p in paths):
            return calibrate([Trace.load(p) for p in paths])
        if len(paths) != 1:
            raise ConfigError("a statistics .json cannot be pooled with other sources",
                              allowed="one .json, or traces")
        return TraceStatistics.load(paths[0])
    except ConfigError as exc:
        where = f"{exc.source}: " if exc.source != "<api>" else ""
        raise ConfigError(where + exc.message, source="<cli>", key_path="--from",
                          allowed=exc.allowed) from None
