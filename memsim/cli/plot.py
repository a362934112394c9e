"""`memsim plot DIR`: figures from a sweep's results table (PNG and SVG); prints each file
written and one line per figure skipped, saying why."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from memsim.cli import COMMANDS, Command


@COMMANDS.register("plot")
class Plot(Command):
    help = "figures from a sweep's results table"

    def add_arguments(self, p) -> None:
        p.add_argument("results", metavar="DIR",
                       help="sweep folder holding results.parquet/results.csv, or the file")
        p.add_argument("--out", default=None,
                       help="where to write the figures (default: DIR/plots)")
        p.add_argument("--points", nargs="+", default=None, metavar="ID",
                       help="point_ids to keep in the time breakdown (default: all)")
        p.add_argument("--ppl-tolerance", type=float, default=0.1,
                       help="perplexity above dense's still counted as matched (default 0.1)")

    def run(self, args) -> int:
        from memsim.core.files import check_output_dir
        from memsim.sweeps.figures import make_plots

        source = Path(args.results)
        out = Path(args.out) if args.out else \
            (source if source.is_dir() else source.parent) / "plots"
        if source.exists():  # (else the missing table is the error, and nothing is created)
            check_output_dir(out, "--out", create=False)  # before drawing anything
        with plot_flags():
            files = make_plots(source, out, args.points, ppl_tolerance=args.ppl_tolerance)
        print_plot_files(files)
        return 0


def print_plot_files(files) -> None:
    """Each file written, then one line per skipped figure."""
    for paths in files.values():
        for path in paths:
            print(path)
    for name, why in files.skipped.items():
        print(f"skipped {name}: {why}")


PLOT_FLAGS = {"points": "--points", "ppl_tolerance": "--ppl-tolerance"}


@contextmanager
def plot_flags():
    """An error about a plot option names its flag (the results file stays named)."""
    from memsim.core.errors import ConfigError

    try:
        yield
    except ConfigError as exc:
        if exc.key_path not in PLOT_FLAGS:
            raise
        raise exc.relocated(key_path=PLOT_FLAGS[exc.key_path]) from None
