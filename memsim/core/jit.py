"""`@kernel`: how memsim compiles its hot loops (numba, no Python objects inside).

Compiled machine code is cached on disk (numba's cache: next to the source when that folder
is writable, else the user's cache folder, or NUMBA_CACHE_DIR), so only the first run on a
machine pays the compile time. Where no cache folder is writable (a read-only install for a
user without a home folder), kernels compile in memory on each run instead of failing.
"""
from __future__ import annotations

from typing import Callable

import numba

_IN_MEMORY: list[str] = []  # kernels defined without a disk cache (no writable location)


def kernel(fn: Callable) -> Callable:
    """numba.njit(cache=True, nogil=True), falling back to no disk cache when numba finds no
    writable cache location."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        _IN_MEMORY.append(f"{fn.__module__}.{fn.__qualname__}")
        return numba.njit(cache=False, nogil=True)(fn)


def disk_cached() -> bool:
    """Whether every kernel defined so far keeps its compiled code in numba's disk cache, so
    that another process compiling it leaves it ready for this one."""
    return not _IN_MEMORY
