"""`memsim plot DIR`: figures from a sweep's results table (PNG and SVG)."""
from __future__ import annotations

from memsim.cli import COMMANDS, Command


@COMMANDS.register("plot")
class Plot(Command):
    help = "figures from a sweep's results table"

    def add_arguments(self, p) -> None:
        from memsim.sweeps.plots import add_plot_arguments
        add_plot_arguments(p)

    def run(self, args) -> int:
        from memsim.sweeps.plots import run_plot
        return run_plot(args)
