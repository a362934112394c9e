"""memsim.core.jit.kernel: compiled with a disk cache, or without one where none is writable."""
from __future__ import annotations

import numba

from memsim.core import jit


def test_kernel_compiles_without_a_disk_cache_when_no_location_is_writable(monkeypatch):
    real = numba.njit

    def no_locator(*args, cache=False, **kwargs):
        if cache:
            raise RuntimeError("cannot cache function 'f': no locator available for file")
        return real(*args, cache=cache, **kwargs)

    monkeypatch.setattr(jit.numba, "njit", no_locator)
    monkeypatch.setattr(jit, "_IN_MEMORY", [])  # this test's kernel only
    assert jit.disk_cached()

    @jit.kernel
    def twice(x):
        return 2 * x

    assert twice(21) == 42
    assert not jit.disk_cached()  # sweeps then warm kernels up before forking their workers
