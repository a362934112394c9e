"""`simulate(hw, model, trace) -> Result`: the one entry point of the hardware half."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from memsim.cache import CacheOutcome
from memsim.core.errors import ConfigError
from memsim.core.schema import to_plain
from memsim.hw.config import HardwareConfig, load_hw
from memsim.hw.layouts import Layout, load_layout
from memsim.sim import over_time
from memsim.sim.background import check_sustainable
from memsim.sim.costs import (
    StepCosts,
    build_prefill_costs,
    build_step_costs,
    cache_outcome,
    group_geometries,
    kv_lengths,
    token_energy_J,
    with_kv_lengths,
)
from memsim.sim.engine import CompiledRun, TokenTimes
from memsim.sim.plan import DramPlan, kv_budget_tokens, plan_dram
from memsim.sim.reference import analytic_token_times
from memsim.sim.result import Result
from memsim.sim.scenario import ScenarioOutcome, Segment, joined_costs, run_scenario
from memsim.sim.session import (
    ContextWindow,
    SessionSpec,
    load_session,
    session_trace,
    token_rows,
)
from memsim.traces.model_shape import ModelShape, load_model_shape
from memsim.traces.trace import Trace

MODES = ("event", "analytic")
ENGINES = ("auto", "compiled", "event")
_SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size")


def simulate(hw: HardwareConfig | str | Path, model: ModelShape | str | None,
             trace: Trace | str | Path, *, mode: str = "event",
             session: SessionSpec | str | Path | dict | None = None,
             engine: str = "auto") -> Result:
    """Decode `trace` on phone `hw` with `model`'s shapes (None: the shape the trace records).

    mode "event": the SimPy engine (latency, read size, compute, overlap, fills);
    mode "analytic": the authors' closed form (PAPER.md section 4).
    `session`: a chat session (session.py: a file, mapping or SessionSpec) whose answers
    loop the trace's tokens. `engine`: "compiled" (the decode stream alone: no session, no
    thermal model, no background app), "event" (any processes), "auto" (compiled when it
    applies). Both give the same times where both apply (tests/test_engine.py).
    """
    hw = hw if isinstance(hw, HardwareConfig) else load_hw(hw)
    trace = trace if isinstance(trace, Trace) else Trace.load(trace)
    model = trace.model if model is None else (
        model if isinstance(model, ModelShape) else load_model_shape(model))
    _check_fits(model, trace)
    _check_choices(hw, mode, engine, session)
    if session is not None:
        return _simulate_session(hw, model, trace, load_session(session))
    plan = plan_dram(hw, model, trace.groups(), _kv_budget_tokens(hw, trace),
                     trace.adapter_params, trace.predictor_params, trace.sequence_lengths)
    geometries = group_geometries(hw, trace, plan, _layout(hw, model))
    outcome = cache_outcome(hw, trace, plan, geometries)
    costs = build_step_costs(hw, model, trace, plan, outcome, geometries)
    scenario = None
    if mode == "analytic":
        times = _analytic_times(hw, model, trace, plan, outcome)
        ttft = float(times.time_s[0])
    elif engine == "compiled" or (engine == "auto" and _is_static(hw)):
        times = CompiledRun(costs, hw.timing.prefetch_next_layer,
                            hw.timing.flash_dram_concurrent).run(trace.sequences())
        ttft = _prefill_time(hw, model, trace, plan, times)
    else:
        scenario = run_scenario(hw, _trace_segments(hw, model, trace, plan, costs))
        times = scenario.times
        ttft = scenario.ttft_s[0] if scenario.ttft_s else float(times.time_s[0])
    return _make_result(hw, model, trace, mode, plan, outcome, costs, times, ttft,
                        trace.sequences(), scenario)


def _check_choices(hw: HardwareConfig, mode: str, engine: str, session) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}", key_path="mode", allowed=", ".join(MODES))
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}", key_path="engine",
                          allowed=", ".join(ENGINES))
    check_sustainable(hw)
    timed = session is not None or not _is_static(hw)
    if mode == "analytic" and timed:
        raise ConfigError("the analytic closed form has no clock: sessions, thermal and "
                          "background apps need the event engine", key_path="mode",
                          allowed="event")
    if engine == "compiled" and timed:
        raise ConfigError("the compiled path runs the decode stream alone: sessions, "
                          "thermal and background apps need the event path",
                          key_path="engine", allowed="auto, event")


def _is_static(hw: HardwareConfig) -> bool:
    """Nothing else on the phone and nothing that changes with time."""
    return hw.thermal is None and not hw.background


def _trace_segments(hw, model, trace: Trace, plan: DramPlan, costs: StepCosts):
    """The trace on the event path: its prompt's prefill (if any), then its sequences."""
    def segments(env):
        if trace.prompt_len:
            yield Segment("prefill", build_prefill_costs(
                hw, model, trace.prompt_len, plan, adapter_params=trace.adapter_params,
                predictor_params=trace.predictor_params))
        for sl in trace.sequences():
            yield Segment("decode", costs, tokens=sl)
    return segments


def _simulate_session(hw, model, trace: Trace, session: SessionSpec) -> Result:
    """A chat session on the event path (session.py)."""
    plan = plan_dram(hw, model, trace.groups(), float(session.max_context_tokens),
                     trace.adapter_params, trace.predictor_params, trace.sequence_lengths)
    doubled = session_trace(trace)
    geometries = group_geometries(hw, doubled, plan, _layout(hw, model))
    outcome = cache_outcome(hw, doubled, plan, geometries)
    base = build_step_costs(hw, model, doubled, plan, outcome, geometries)
    kv_base = kv_lengths(hw, doubled)

    def segments(env):
        window, decoded = ContextWindow(session.max_context_tokens), 0
        for _, turn in session.played_turns():
            if session.duration_s is not None and env.now >= session.duration_s:
                return
            P, A = turn.prompt_tokens, turn.answer_tokens
            yield Segment("think", think_s=turn.think_s)
            context = window.admit(P, A)
            yield Segment("prefill", build_prefill_costs(
                hw, model, P, plan, context_len=context, adapter_params=trace.adapter_params,
                predictor_params=trace.predictor_params))
            rows = token_rows(decoded, A, trace.num_tokens)
            yield Segment("decode", with_kv_lengths(base, rows, window.kv_lengths(P, A),
                                                    kv_base, hw, model))
            window.close(P, A)
            decoded += A

    scenario = run_scenario(hw, segments)
    costs = joined_costs(scenario.costs)
    return _make_result(hw, model, doubled, "event", plan, outcome, costs, scenario.times,
                        scenario.ttft_s[0], scenario.segments, scenario, session=session,
                        shown=trace)


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
    costs = build_prefill_costs(hw, model, trace.prompt_len, plan,
                                adapter_params=trace.adapter_params,
                                predictor_params=trace.predictor_params)
    run = CompiledRun(costs, hw.timing.prefetch_next_layer, hw.timing.flash_dram_concurrent)
    return float(run.run([slice(0, 1)]).time_s[0])


def _analytic_times(hw, model, trace, plan, outcome) -> TokenTimes:
    """Closed-form times only; the breakdown stays zero (the closed form has no timeline to
    split; sweeps write it as NaN)."""
    times = TokenTimes.empty(trace.num_tokens)
    times.time_s[:] = analytic_token_times(hw, model, trace, plan, outcome)
    return times


def _sequence_rates(segments: list[slice], time_s: np.ndarray) -> float:
    """Mean over sequences (or a session's answers) of tokens / decode time."""
    return float(np.mean([sl.stop - sl.start for sl in segments]
                         / np.array([time_s[sl].sum() for sl in segments])))


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
    energy = token_energy_J(hw, costs)
    return None if energy is None else float(energy.sum(axis=1).mean())


def _effective_bandwidth(mode: str, costs: StepCosts, times: TokenTimes) -> float | None:
    """Payload bytes per second of flash busy time (event mode; None without a timeline)."""
    busy = float(times.busy_flash_s.sum())
    if mode != "event" or busy <= 0:
        return None
    return float(costs.flash_bytes.sum()) / busy


def _make_result(hw, model, trace, mode, plan, outcome, costs, times, ttft, segments,
                 scenario: ScenarioOutcome | None, session: SessionSpec | None = None,
                 shown: Trace | None = None) -> Result:
    """`trace` is the one the cache replay ran on (hit rates); `shown` the one named in the
    result (a session replays its trace twice)."""
    shown = trace if shown is None else shown
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
        hw_name=hw.name, model_name=model.name, method=shown.method,
        trace_source=shown.source, mode=mode, num_tokens=int(times.time_s.shape[0]),
        num_sequences=len(segments),
        tokens_per_s=_sequence_rates(segments, times.time_s),
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
        energy_per_token_J=_energy(hw, costs), plan_notes=plan.notes(),
        **_over_time(hw, times, ttft, scenario, session),
        per_token={"time_s": times.time_s.tolist(),
                   **{f"{k}_s": v.tolist() for k, v in breakdown.items()},
                   "flash_requests": costs.flash_requests.tolist(),
                   "flash_payload_bytes": costs.flash_bytes.tolist(),
                   "flash_device_bytes": costs.flash_device_bytes.tolist(),
                   **_clock_columns(hw, mode, times)})


def _over_time(hw, times: TokenTimes, ttft: float, scenario: ScenarioOutcome | None,
               session: SessionSpec | None) -> dict:
    """The Result fields that say how speed and heat went over the run."""
    p50, p99 = over_time.latency_percentiles_s(times.time_s)
    log = scenario.thermal if scenario is not None else None
    end = scenario.end_s if scenario is not None else float(times.time_s.sum())
    return dict(
        burst_tokens_per_s=over_time.burst_tokens_per_s(times.time_s),
        sustained_tokens_per_s=over_time.sustained_tokens_per_s(times.time_s),
        latency_p50_s=p50, latency_p99_s=p99,
        ttft_per_turn_s=list(scenario.ttft_s) if scenario and scenario.ttft_s else [ttft],
        time_to_first_throttle_s=log.first_throttle_s if log else None,
        peak_temperature_C=max(log.temperature_C, default=hw.thermal.start_C) if log else None,
        longest_queue_wait_s=None if scenario is None else dict(zip(
            ("flash", "dram", "compute"), map(float, scenario.longest_wait_s))),
        throttle_step_changes=log.step_changes if log else None,
        repricing_bound_s=log.repricing_bound_s if log else None,
        simulated_time_s=end, session=session.name if session else None,
        background=[app.name for app in hw.background])


def _clock_columns(hw: HardwareConfig, mode: str, times: TokenTimes) -> dict:
    """Each token's start and end on the run's clock (analytic: tokens back to back) and,
    with a thermal model, the temperature and the governor's step and compute speed when it
    started."""
    if mode == "analytic":
        end = np.cumsum(times.time_s)
        start = end - times.time_s
    else:
        start, end = times.start_s, times.end_s
    out = {"start_s": start.tolist(), "end_s": end.tolist()}
    if hw.thermal is not None:
        out.update(temperature_C=times.temperature_C.tolist(),
                   speed_factor=times.speed_factor.tolist(),
                   throttle_level=times.throttle_level.tolist())
    return out
