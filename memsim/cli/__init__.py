"""The `memsim` command line (also `python -m memsim`), the top of the stack.

One module per verb (simulate, hw, trace, eval / finetune, sweep, plot, demo), each a
`Command` that registers itself here with `@COMMANDS.register(name)`. May import every room
below it. Bad input prints one line naming the field and the allowed values, exit status 2;
never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from memsim.core.errors import ConfigError
from memsim.core.registry import Registry, import_submodules

COMMANDS: Registry[type["Command"]] = Registry("command")


class Command:
    """A subcommand: `help` for the command list, its flags, and what it runs."""

    help: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the subcommand's flags."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the exit status. Raise ConfigError for bad input."""
        raise NotImplementedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memsim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS.names():
        cmd = COMMANDS.get(name)()
        cmd.add_arguments(sub.add_parser(name, help=cmd.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS.get(args.command)().run(args)
    except ConfigError as exc:
        print(f"memsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C; a sweep also turns SIGTERM into this
        print(f"memsim: {getattr(exc, 'message', 'interrupted')}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except (OSError, MemoryError) as exc:
        print(f"memsim: error: {environment_error(exc)}", file=sys.stderr)
        return 1


def environment_error(exc: BaseException) -> str:
    """One line for an error of the machine rather than the input (a full disk, a file
    that vanished, memory): which file, and why. Writes of memsim's own files already say
    this as ConfigErrors; this is the net under everything else."""
    from memsim.core.files import os_reason

    if isinstance(exc, MemoryError):
        return f"out of memory ({exc or 'allocation failed'}); try fewer tokens or windows"
    where = exc.filename if isinstance(exc.filename, str) else ""
    return f"{where}: {os_reason(exc)}" if where else os_reason(exc)


def print_table(rows: list[tuple[str, str]]) -> None:
    """Two aligned columns: label, value."""
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


import_submodules(__name__, __path__)  # each command module registers itself

if __name__ == "__main__":
    sys.exit(main())
