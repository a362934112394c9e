"""Where a benchmark ran, said in the docs it writes (the machine may be shared)."""
from __future__ import annotations

import os
from pathlib import Path

LOAD_WINDOW_MIN = 15  # os.getloadavg()[2]: the load average over this many minutes


def machine() -> dict:
    """CPU count and the load average at the end of the run."""
    return {"cpus": os.cpu_count(), "load": os.getloadavg()[2], "load_window_min": LOAD_WINDOW_MIN}


def machine_text(where: dict) -> str:
    """"2 CPU cores (15-min load average 4.7 at the end: other jobs may share the machine)"."""
    return (f"{where['cpus']} CPU cores ({where['load_window_min']}-min load average "
            f"{where['load']:.1f} at the end: other jobs may share the machine)")


def run_main(main) -> None:
    """Run a benchmark's `main()`; bad input (a ConfigError) is one line and exit status 2."""
    import sys

    from memsim.core.errors import ConfigError

    try:
        main()
    except ConfigError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
