"""`memsim sweep FILE --out DIR`: a grid of points, resumable, local or on Dask; prints the
summary table at the end (the same as `memsim demo`)."""
from __future__ import annotations

import sys

from memsim.cli import COMMANDS, Command
from memsim.core.errors import ConfigError


@COMMANDS.register("sweep")
class Sweep(Command):
    help = "run a sweep file (resumable)"

    def add_arguments(self, p) -> None:
        p.add_argument("file", help="sweep YAML (see docs/sweeps.md)")
        p.add_argument("--out", required=True, help="output folder (rerun to resume)")
        p.add_argument("--workers", type=int, default=1, help="worker processes")
        p.add_argument("--executor", default="local", help="local or dask")
        p.add_argument("--scheduler", default=None,
                       help="dask scheduler address, e.g. tcp://host:8786 (default: start a "
                            "LocalCluster on 127.0.0.1)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(self, args) -> int:
        from memsim.sweeps import load_sweep, read_results, run_sweep
        from memsim.sweeps.summary import summary_lines

        if args.workers < 1:
            raise ConfigError("must be >= 1", source="<cli>", key_path="--workers",
                              allowed=">= 1")
        report = run_sweep(load_sweep(args.file), args.out, executor=args.executor,
                           workers=args.workers, scheduler=args.scheduler,
                           progress=not args.no_progress)
        if report.table_path is not None:
            print("\n".join(["", *summary_lines(read_results(report.table_path)), ""]))
        print(f"{report.num_points} points ({report.num_done_before} already done); "
              f"results: {report.table_path}")
        for failure in report.failures:
            print(f"failed: {failure}", file=sys.stderr)
        if report.num_failed:
            print(f"memsim: {report.num_failed} tasks failed; rerun the same command to resume",
                  file=sys.stderr)
            return 1
        return 0
