"""`memsim sweep FILE --out DIR`: a grid of points, resumable, local or on Dask; prints the
summary table at the end (the same as `memsim demo`)."""
from __future__ import annotations

import sys

from memsim.cli import COMMANDS, Command
from memsim.core.errors import ConfigError, Interrupted


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
        from memsim.sweeps import read_results, run_sweep
        from memsim.sweeps.executors import sigterm_as_interrupt
        from memsim.sweeps.summary import summary_lines

        sweep = check_sweep_arguments(args)
        try:
            with sigterm_as_interrupt():
                report = run_sweep(sweep, args.out, executor=args.executor,
                                   workers=args.workers, scheduler=args.scheduler,
                                   progress=not args.no_progress)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: finished points are on disk
            raise Interrupted(f"{getattr(exc, 'message', 'interrupted')}; finished points "
                              "are kept: rerun the same command to resume",
                              getattr(exc, "exit_code", 130)) from None
        if report.table_path is not None:
            print("\n".join(["", *summary_lines(read_results(report.table_path)), ""]))
        print(f"{report.num_points} points ({report.num_done_before} already done); "
              f"results: {report.table_path}")
        for failure in report.failures:
            print(f"failed: {failure}", file=sys.stderr)
        if report.num_failed:
            print(failed_line(report), file=sys.stderr)
            return 1
        return 0


def check_sweep_arguments(args):
    """The flags and the sweep file, checked before any work: --workers, --executor, --out
    (a writable folder), every axis, value and model of the file."""
    from memsim.core.files import check_output_dir
    from memsim.sweeps import expand, load_sweep
    from memsim.sweeps.executors import EXECUTORS
    from memsim.sweeps.spec import require_points

    if args.workers < 1:
        raise ConfigError("must be >= 1", source="<cli>", key_path="--workers",
                          allowed=">= 1")
    EXECUTORS.get(args.executor, source="<cli>", key_path="--executor")
    if args.scheduler is not None and args.executor != "dask":
        raise ConfigError("only the dask executor connects to a scheduler", source="<cli>",
                          key_path="--scheduler", allowed="--executor dask --scheduler ADDR")
    sweep = load_sweep(args.file)
    require_points(sweep, *expand(sweep))  # a grid filtered to nothing: say why, make nothing
    check_output_dir(args.out, "--out")
    return sweep


def failed_line(report) -> str:
    """The last line of a sweep with failures: rerun only where a rerun can help."""
    if report.can_resume:
        return (f"memsim: {report.num_failed} tasks failed; rerun the same command to resume "
                "(finished points are kept)")
    return (f"memsim: {report.num_failed} tasks failed on their input (see above); a rerun "
            "would fail the same way: fix the sweep file, then rerun (finished points are kept)")
