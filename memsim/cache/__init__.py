"""Cache policies: which MLP columns stay in DRAM. Each module registers one with
`@POLICIES.register(name)`; base.py states the rules every policy keeps. `resident()` is the
small torch-free interface cache-aware masking (workloads/) reads; `LruQueue` and
`lru_queue_access` step an LRU policy inside its compiled walk.

May import: memsim.core, memsim.traces.
"""
from memsim.cache._lru_queue import LruQueue, lru_queue_access
from memsim.cache.base import (
    POLICIES,
    CacheOutcome,
    CachePolicy,
    count_runs,
    make_policy,
)
from memsim.core.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["POLICIES", "CacheOutcome", "CachePolicy", "LruQueue", "count_runs",
           "lru_queue_access", "make_policy"]
