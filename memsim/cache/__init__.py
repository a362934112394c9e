"""Cache policies: each module registers one with `@POLICIES.register(name)`."""
from memsim.cache.base import POLICIES, CacheOutcome, CachePolicy, count_runs, make_policy
from memsim.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["POLICIES", "CacheOutcome", "CachePolicy", "count_runs", "make_policy"]
