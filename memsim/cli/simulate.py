"""`memsim simulate`: decode one trace on one phone; print the table, optionally write files."""
from __future__ import annotations

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
        p.add_argument("--out", default=None, help="write result.json, per_token.csv, "
                       "resolved_config.yaml here")

    def run(self, args) -> int:
        from memsim.hw import load_hw
        from memsim.sim import resolved_config, simulate, write_result
        from memsim.traces import Trace, load_model_shape

        hw, trace = load_hw(args.hw), Trace.load(args.trace)
        if args.layout is not None:
            hw = with_layout(hw, args.layout)
        model = load_model_shape(args.model) if args.model else trace.model
        result = simulate(hw, model, trace, mode=args.mode)
        print_table(result.summary_rows())
        if args.out:
            path = write_result(result, args.out, resolved_config(hw, model, trace, args.mode))
            print(f"wrote {path} (+ per_token.csv, resolved_config.yaml)")
        return 0


def with_layout(hw, path: str):
    """`hw` reading its MLP columns in the order of the layout file at `path`."""
    import dataclasses
    from pathlib import Path

    flash = dataclasses.replace(hw.flash, layout=str(Path(path).resolve()))
    return dataclasses.replace(hw, flash=flash)
