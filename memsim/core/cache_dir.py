"""The user cache folder (corpora, dequantised models) and how its writers take turns.

`cache_root()` is `$MEMSIM_CACHE_DIR` if set (benchmarks and tests point it at a temporary
folder), else `$XDG_CACHE_HOME/memsim`, else `~/.cache/memsim`. Entries are written by
whichever process needs them first; `exclusive(lock_path)` makes the others wait for that
writer instead of repeating its work (two sweep workers needing the same model). Locks are
advisory POSIX `flock`s; where `fcntl` is missing (Windows) the block runs unlocked and
concurrent writers only repeat work (every entry is still written atomically).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CACHE_DIR_ENV = "MEMSIM_CACHE_DIR"


def cache_root() -> Path:
    """$MEMSIM_CACHE_DIR, else $XDG_CACHE_HOME/memsim, else ~/.cache/memsim."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memsim"


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if needed) for the block; blocks while
    another process holds it. The lock file stays (removing it would race a waiter)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking, see the module docstring
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
