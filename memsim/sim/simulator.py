"""`simulate(hw, model, trace) -> Result`: the one entry point of the hardware half."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from memsim.cache import CacheOutcome
from memsim.core.errors import ConfigError
from memsim.core.schema import to_plain
from memsim.hw.config import HardwareConfig, load_hw
from memsim.hw.layouts import Layout, load_layout
from memsim.sim.costs import (
    StepCosts,
    build_prefill_costs,
    build_step_costs,
    cache_outcome,
    group_geometries,
)
from memsim.sim.engine import DecodeRun, TokenTimes
from memsim.sim.plan import DramPlan, kv_budget_tokens, plan_dram
from memsim.sim.reference import analytic_token_times
from memsim.sim.result import Result
from memsim.traces.model_shape import ModelShape, load_model_shape
from memsim.traces.trace import Trace

MODES = ("event", "analytic")
_SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size")


def simulate(hw: HardwareConfig | str | Path, model: ModelShape | str | None,
             trace: Trace | str | Path, *, mode: str = "event") -> Result:
    """Decode `trace` on phone `hw` with `model`'s shapes (None: the shape the trace records).

    mode "event": the SimPy engine (latency, read size, compute, overlap, fills);
    mode "analytic": the authors' closed form (PAPER.md section 4).
    """
    hw = hw if isinstance(hw, HardwareConfig) else load_hw(hw)
    trace = trace if isinstance(trace, Trace) else Trace.load(trace)
    model = trace.model if model is None else (
        model if isinstance(model, ModelShape) else load_model_shape(model))
    _check_fits(model, trace)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}", key_path="mode", allowed=", ".join(MODES))
    plan = plan_dram(hw, model, trace.groups(), _kv_budget_tokens(hw, trace),
                     trace.adapter_params, trace.predictor_params)
    geometries = group_geometries(hw, trace, plan, _layout(hw, model))
    outcome = cache_outcome(hw, trace, plan, geometries)
    costs = build_step_costs(hw, model, trace, plan, outcome, geometries)
    if mode == "event":
        times = DecodeRun(costs, hw.timing.prefetch_next_layer,
                          hw.timing.flash_dram_concurrent).run(trace.sequences())
        ttft = _prefill_time(hw, model, trace, plan, times)
    else:
        times = _analytic_times(hw, model, trace, plan, outcome)
        ttft = float(times.time_s[0])
    return _make_result(hw, model, trace, mode, plan, outcome, costs, times, ttft)


def resolved_config(hw: HardwareConfig, model: ModelShape, trace: Trace, mode: str) -> dict:
    """Everything that decided a result, as plain data (written beside it)."""
    return {"hw": to_plain(hw), "model": model.to_dict(), "mode": mode,
            "trace": {k: v for k, v in trace.metadata().items() if k != "model"}}


def _check_fits(model: ModelShape, trace: Trace) -> None:
    for key in _SHAPE_KEYS:
        if getattr(model, key) != getattr(trace.model, key):
            raise ConfigError(f"trace was made for {trace.model.name} ({key}="
                              f"{getattr(trace.model, key)}), not {model.name} "
                              f"({getattr(model, key)})", key_path=f"model.{key}",
                              allowed=f"a model with {key}={getattr(trace.model, key)}")


def _layout(hw: HardwareConfig, model: ModelShape) -> Layout | None:
    """The flash layout `hw` names (checked against the model), or None: model order."""
    if hw.flash.layout is None:
        return None
    layout = load_layout(hw.flash.layout)
    layout.check_model(model, source=hw.flash.layout)
    return layout


def _kv_budget_tokens(hw: HardwareConfig, trace: Trace) -> float:
    return kv_budget_tokens(hw, trace.prompt_len, max(trace.sequence_lengths))


def _prefill_time(hw, model, trace, plan, times: TokenTimes) -> float:
    if trace.prompt_len == 0:
        return float(times.time_s[0])
    costs = build_prefill_costs(hw, model, trace.prompt_len, plan)
    run = DecodeRun(costs, hw.timing.prefetch_next_layer, hw.timing.flash_dram_concurrent)
    return float(run.run([slice(0, 1)]).time_s[0])


def _analytic_times(hw, model, trace, plan, outcome) -> TokenTimes:
    """Closed-form times only; the breakdown stays zero (the closed form has no timeline to
    split; sweeps write it as NaN)."""
    times = TokenTimes.empty(trace.num_tokens)
    times.time_s[:] = analytic_token_times(hw, model, trace, plan, outcome)
    return times


def _sequence_rates(trace: Trace, time_s: np.ndarray) -> float:
    return float(np.mean([sl.stop - sl.start for sl in trace.sequences()]
                         / np.array([time_s[sl].sum() for sl in trace.sequences()])))


def _hit_rates(hw, trace: Trace, plan: DramPlan, outcome: CacheOutcome):
    needed = np.stack([trace.column_counts(g.mask_name) for g in trace.groups()], axis=1)
    if hw.placement.mlp == "dynamic":
        hits = outcome.hits.astype(np.float64)
    else:
        share = 1.0 - plan.overflow_fraction if hw.placement.mlp == "resident" else 0.0
        hits = needed * share
    overall = float(hits.sum() / max(needed.sum(), 1))
    per_layer = hits.sum(axis=0) / np.maximum(needed.sum(axis=0), 1)  # (G, L)
    names = [g.name for g in trace.groups()]
    return overall, {n: per_layer[i].tolist() for i, n in enumerate(names)}


def _energy(hw: HardwareConfig, costs: StepCosts) -> float | None:
    figures = (hw.flash.read_energy_pJ_per_byte, hw.dram.read_energy_pJ_per_byte,
               hw.dram.write_energy_pJ_per_byte)
    if any(f is None for f in figures):
        return None  # energy needs all three pJ/byte figures
    op_pJ = hw.compute.units[hw.compute.decode_unit].energy_pJ_per_op or 0.0
    pj = (costs.flash_device_bytes * figures[0] + costs.dram_read_bytes * figures[1]
          + costs.dram_write_bytes * figures[2] + costs.ops * op_pJ)
    return float(pj.mean() * 1e-12)


def _effective_bandwidth(mode: str, costs: StepCosts, times: TokenTimes) -> float | None:
    """Payload bytes per second of flash busy time (event mode; None without a timeline)."""
    busy = float(times.busy_flash_s.sum())
    if mode != "event" or busy <= 0:
        return None
    return float(costs.flash_bytes.sum()) / busy


def _make_result(hw, model, trace, mode, plan, outcome, costs, times, ttft) -> Result:
    hit_rate, per_layer = _hit_rates(hw, trace, plan, outcome)
    cache_bytes = float(sum((outcome.resident[:, g, :].max(axis=0) * vb).sum()
                            for g, vb in enumerate(plan.vector_bytes)))
    resident = plan.resident_weight_bytes * (1.0 - plan.overflow_fraction)
    breakdown = {"flash": times.flash_s, "dram": times.dram_s, "compute": times.compute_s,
                 "stall": times.stall_s}
    if mode == "analytic":
        breakdown = {k: np.zeros_like(times.time_s) for k in breakdown}
    busy = {"flash": times.busy_flash_s, "dram": times.busy_dram_s,
            "compute": times.busy_compute_s}
    return Result(
        hw_name=hw.name, model_name=model.name, method=trace.method,
        trace_source=trace.source, mode=mode, num_tokens=trace.num_tokens,
        num_sequences=len(trace.sequence_lengths),
        tokens_per_s=_sequence_rates(trace, times.time_s),
        time_per_token_s=float(times.time_s.mean()), ttft_s=ttft,
        breakdown_s={k: float(v.mean()) for k, v in breakdown.items()},
        busy_s={k: float(v.mean()) for k, v in busy.items()},
        flash_bytes_per_token=float(costs.flash_bytes.mean()),
        flash_device_bytes_per_token=float(costs.flash_device_bytes.mean()),
        flash_requests_per_token=float(costs.flash_requests.mean()),
        flash_payload_bytes_total=float(costs.flash_bytes.sum()),
        flash_device_bytes_total=float(costs.flash_device_bytes.sum()),
        flash_requests_total=float(costs.flash_requests.sum()),
        effective_flash_bandwidth_Bps=_effective_bandwidth(mode, costs, times),
        dram_read_bytes_per_token=float(costs.dram_read_bytes.mean()),
        dram_write_bytes_per_token=float(costs.dram_write_bytes.mean()),
        ops_per_token=float(costs.ops.mean()), hit_rate=hit_rate, hit_rate_per_layer=per_layer,
        dram_used_bytes=resident + cache_bytes + plan.kv_bytes,
        dram_used_breakdown_bytes={"resident_weights": resident, "cache": cache_bytes,
                                   "kv": plan.kv_bytes},
        cache_capacity_columns={g.name: c.tolist() for g, c in zip(trace.groups(),
                                                                    plan.capacities)},
        energy_per_token_J=_energy(hw, costs),
        per_token={"time_s": times.time_s.tolist(),
                   **{f"{k}_s": v.tolist() for k, v in breakdown.items()},
                   "flash_requests": costs.flash_requests.tolist(),
                   "flash_payload_bytes": costs.flash_bytes.tolist(),
                   "flash_device_bytes": costs.flash_device_bytes.tolist()})
