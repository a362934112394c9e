"""`memsim simulate`: decode one trace on one phone; print the table, optionally write files."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from memsim.cli import COMMANDS, Command, print_table


@COMMANDS.register("simulate")
class Simulate(Command):
    help = "simulate decode of a trace on a phone"

    def add_arguments(self, p) -> None:
        p.add_argument("--hw", required=True, help="hardware YAML or preset name")
        p.add_argument("--model", default=None,
                       help="model preset or config.json (default: the shape the trace records)")
        p.add_argument("--trace", required=True,
                       help="trace .npz (memsim trace synth / memsim eval)")
        p.add_argument("--mode", default="event", choices=("event", "analytic"))
        p.add_argument("--layout", default=None,
                       help="flash layout .npz (memsim layout build); overrides flash.layout")
        p.add_argument("--session", default=None,
                       help="chat session YAML (turns, think time: examples/chat.yaml); the "
                       "answers loop the trace's tokens")
        p.add_argument("--thermal", default=None,
                       help="heat: `none` or a thermal preset (hw_configs/thermal/); "
                       "overrides the hardware file's thermal:")
        p.add_argument("--background", default=None,
                       help="apps running beside the model, comma-separated presets "
                       "(hw_configs/background/), or `none`; overrides background:")
        p.add_argument("--out", default=None, help="write result.json, per_token.csv, "
                       "resolved_config.yaml here")

    def run(self, args) -> int:
        from memsim.sim import resolved_config, simulate, write_result

        hw, trace, model = load_inputs(args)
        session = load_session_flag(args)
        with blame_inputs(args):
            result = simulate(hw, model, trace, mode=args.mode, session=session)
        print_table(result.summary_rows())
        note = whole_matrix_note(hw, trace, result)
        if note:
            print(note)
        if args.out:
            config = resolved_config(hw, model, trace, args.mode)
            if session is not None:
                from memsim.core.schema import to_plain
                config["session"] = to_plain(session)
            path = write_result(result, args.out, config)
            print(f"wrote {path} (+ per_token.csv, resolved_config.yaml)")
        return 0


def load_inputs(args):
    """(hw, trace, model) from the flags, each error naming the flag or file; --out is
    checked first, so a bad output folder is known before any work."""
    from memsim.core.errors import user_input
    from memsim.core.files import check_output_dir
    from memsim.hw import load_hw
    from memsim.hw.config import with_flash_layout
    from memsim.traces import Trace, load_model_shape

    if args.out:
        check_output_dir(args.out, "--out")
    with user_input(key_path="--hw"):
        hw = load_hw(args.hw)
    with user_input(key_path="--trace"):
        trace = Trace.load(args.trace)
    if args.layout is not None:
        hw = with_flash_layout(hw, args.layout)
    hw = with_scenario_flags(hw, args)
    with user_input(key_path="--model"):
        model = load_model_shape(args.model) if args.model else trace.model
    return hw, trace, model


def with_scenario_flags(hw, args):
    """`hw` with --thermal and --background applied (each checked as its YAML key is, an
    error naming the flag)."""
    from memsim.core.errors import user_input
    from memsim.core.schema import to_plain
    from memsim.hw.config import hw_from_dict

    for flag, key, value in (("--thermal", "thermal", args.thermal),
                             ("--background", "background", args.background)):
        if value is None:
            continue
        data = to_plain(hw)
        if key == "background":
            names = [n.strip() for n in value.split(",") if n.strip()]
            value = [] if names == ["none"] else names
        data[key] = value
        with user_input(key_path=flag):
            hw = hw_from_dict(data, source="<cli>")
    return hw


def load_session_flag(args):
    """The --session file, read strictly (None without the flag)."""
    if args.session is None:
        return None
    from memsim.core.errors import user_input
    from memsim.sim.session import load_session

    with user_input(key_path="--session"):
        return load_session(args.session)


@contextmanager
def blame_inputs(args):
    """An error of the simulation itself (not from a file) told against what the user
    typed: a shape mismatch against --model (or the trace), a DRAM that cannot hold the KV
    cache against the --hw file or preset."""
    from memsim.core.errors import ConfigError, is_internal

    try:
        yield
    except ConfigError as exc:
        if not is_internal(exc.source):
            raise
        if exc.key_path.startswith("model."):
            raise exc.relocated(key_path="--model" if args.model else "--trace") from None
        raise exc.relocated(source=args.hw) from None


def whole_matrix_note(hw, trace, result) -> str | None:
    """One line when the DRAM cache holds every column of every masked matrix: then the
    cache policy and the masks' locality change nothing (only cold misses remain)."""
    if hw.placement.mlp != "dynamic":
        return None
    widths = {g.name: g.num_columns for g in trace.groups()}
    capacities = result.cache_capacity_columns
    if not widths or any(np.min(capacities.get(name, [0])) < width
                         for name, width in widths.items()):
        return None
    return (f"note: at {hw.dram.capacity_GB:g} GB of DRAM the cache holds every MLP column of "
            "every layer, so the cache policy and the masks' locality make no difference "
            "(only first-use misses remain); a smaller dram.capacity_GB shows their effect")
