"""`memsim plot DIR`: figures from a sweep's results table (PNG and SVG)."""
from __future__ import annotations

from contextlib import contextmanager

from memsim.cli import COMMANDS, Command


@COMMANDS.register("plot")
class Plot(Command):
    help = "figures from a sweep's results table"

    def add_arguments(self, p) -> None:
        from memsim.sweeps.plots import add_plot_arguments
        add_plot_arguments(p)

    def run(self, args) -> int:
        from memsim.sweeps.plots import run_plot
        with plot_flags():
            return run_plot(args)


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
