"""`memsim layout {build, info}`: place MLP columns in flash from a calibration trace."""
from __future__ import annotations

import time

from memsim.cli import COMMANDS, Command, print_table
from memsim.core.errors import ConfigError


@COMMANDS.register("layout")
class LayoutCommand(Command):
    help = "flash layouts: where each MLP column sits in flash"

    def add_arguments(self, p) -> None:
        sub = p.add_subparsers(dest="layout_command", required=True)
        b = sub.add_parser("build", help="order columns from a calibration trace (build it on "
                                         "windows disjoint from those you evaluate)")
        b.add_argument("--trace", required=True, help="calibration trace .npz")
        b.add_argument("--method", required=True, help="identity, frequency or coactivation")
        b.add_argument("--out", required=True, help="layout .npz to write")
        i = sub.add_parser("info", help="print a layout's metadata")
        i.add_argument("file")

    def run(self, args) -> int:
        from memsim.core.files import check_output_file, npz_path
        from memsim.hw.layouts import LAYOUT_METHODS, build_layout, load_layout
        from memsim.traces import Trace

        if args.layout_command == "info":
            layout = load_layout(args.file)
            rows = [("model", layout.model.name), ("method", layout.method),
                    ("groups", ", ".join(sorted(layout.orders)))]
            rows += [(f"built from {k}", str(v)) for k, v in layout.built_from.items()]
            print_table(rows)
            return 0
        if args.method not in LAYOUT_METHODS:
            raise ConfigError(f"unknown layout method {args.method!r}", key_path="--method",
                              allowed=", ".join(LAYOUT_METHODS.names()))
        check_output_file(npz_path(args.out), "--out")
        trace = Trace.load(args.trace)
        start = time.perf_counter()
        layout = build_layout(trace, args.method, trace_path=args.trace)
        path = layout.save(args.out)
        print(f"wrote {path}: {args.method} layout of {', '.join(sorted(layout.orders))} for "
              f"{trace.model.name}, from {trace.num_tokens} tokens "
              f"({time.perf_counter() - start:.1f} s)")
        return 0
