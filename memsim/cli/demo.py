"""`memsim demo`: the README's first command (memsim/demo.py runs it)."""
from __future__ import annotations

from pathlib import Path

from memsim.cli import COMMANDS, Command
from memsim.core.errors import ConfigError


@COMMANDS.register("demo")
class Demo(Command):
    help = "run the embedded default sweep (SmolLM2-135M on the flagship phone) and plot it"

    def add_arguments(self, p) -> None:
        p.add_argument("--out", default="runs/demo", help="output folder (rerun to resume)")
        p.add_argument("--workers", type=int, default=None, help="default: one per core")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(self, args) -> int:
        from memsim.core.files import check_output_dir
        from memsim.demo import run_demo

        if args.workers is not None and args.workers < 1:
            raise ConfigError("must be >= 1", source="<cli>", key_path="--workers",
                              allowed=">= 1 (default: one per core)")
        check_output_dir(args.out, "--out")
        return run_demo(Path(args.out), workers=args.workers, progress=not args.no_progress)
