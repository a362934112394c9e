"""The simulation of one (hardware, model, trace): DRAM plan (plan.py, footprint.py) -> cache
outcome -> step costs (costs.py) -> the SimPy engine on the phone's resources (engine.py,
resources.py) or the authors' closed form (reference.py) -> Result (result.py); simulator.py
holds `simulate()`, the entry point.

May import: memsim.core, memsim.traces, memsim.cache, memsim.hw.
"""
from memsim.sim.plan import DramPlan, cache_capacities, kv_budget_tokens, plan_dram
from memsim.sim.request_estimate import (
    ColumnPlacement,
    ReadEstimate,
    dip_placements,
    estimate_reads,
)
from memsim.sim.result import Result, read_per_token_csv, write_result
from memsim.sim.simulator import MODES, resolved_config, simulate

__all__ = ["ColumnPlacement", "DramPlan", "MODES", "ReadEstimate", "Result", "cache_capacities",
           "dip_placements", "estimate_reads", "kv_budget_tokens", "plan_dram",
           "read_per_token_csv", "resolved_config", "simulate", "write_result"]
