"""What runs on the phone over time, on the event path (engine.EventRun).

The decode process plays segments in order: think (idle), prefill (a prompt: its time is a
TTFT) and decode (a run of tokens); beside it run the thermal governor (thermal.py) when
`hw.thermal` is set and one process per background app (background.py). The segments come
from a generator that sees the clock, so a session can stop once its duration has passed
(session.py). The run ends when the decode process does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from memsim.hw.config import HardwareConfig
from memsim.sim.background import AppLoad
from memsim.sim.costs import StepCosts, token_energy_J
from memsim.sim.engine import EventRun, TokenTimes, token_power
from memsim.sim.thermal import Governor, ThermalLog


@dataclass(frozen=True)
class Segment:
    kind: str  # "think", "prefill" or "decode"
    costs: StepCosts | None = None
    think_s: float = 0.0
    tokens: slice | None = None  # decode: which tokens of `costs` (None: all)


@dataclass
class ScenarioOutcome:
    """The decode tokens' records (segments joined), the costs they ran, the prefills'
    times, the governor's log and the run's end."""

    times: TokenTimes | None = None
    costs: list[StepCosts] = field(default_factory=list)
    segments: list[slice] = field(default_factory=list)  # each decode segment's tokens
    ttft_s: list[float] = field(default_factory=list)
    thermal: ThermalLog | None = None
    end_s: float = 0.0
    background_bursts: dict[str, int] = field(default_factory=dict)
    longest_wait_s: np.ndarray | None = None  # per resource: the phone's wait_s at the end


def run_scenario(hw: HardwareConfig, segments: Callable[[object], Iterator[Segment]]
                 ) -> ScenarioOutcome:
    """Run `segments(env)` as the decode process on `hw`'s phone with its governor and
    background apps."""
    run = EventRun(hw.timing.prefetch_next_layer, hw.timing.flash_dram_concurrent)
    env, out = run.env, ScenarioOutcome()
    governor = Governor(hw.thermal, run.phone, hw.background) if hw.thermal else None
    apps = [AppLoad(hw, app) for app in hw.background]
    others = ([governor.run(env)] if governor else []) + [a.run(env, run.phone) for a in apps]
    parts: list[TokenTimes] = []

    def decode():
        for seg in segments(env):
            if seg.kind == "think":
                if seg.think_s > 0:
                    yield env.timeout(seg.think_s)
                continue
            energy = token_energy_J(hw, seg.costs) if governor else None
            stream = run.stream(seg.costs, token_power(seg.costs, energy))
            start = env.now
            tokens = seg.tokens or slice(0, seg.costs.flash_ahead_s.shape[0])
            yield from stream.run(tokens.start, tokens.stop)
            if seg.kind == "prefill":
                out.ttft_s.append(env.now - start)
            else:
                parts.append(stream.times().rows(tokens))
                out.costs.append(costs_rows(seg.costs, tokens))

    run.run(decode(), others)
    out.times = _joined(parts)
    ends = np.cumsum([p.time_s.shape[0] for p in parts])
    out.segments = [slice(int(e - p.time_s.shape[0]), int(e)) for p, e in zip(parts, ends)]
    out.thermal = governor.log if governor else None
    out.end_s = float(env.now)
    out.background_bursts = {a.app.name: a.bursts for a in apps}
    out.longest_wait_s = run.phone.wait_s.copy()
    return out


def _joined(parts: list[TokenTimes]) -> TokenTimes:
    return TokenTimes(**{n: np.concatenate([getattr(p, n) for p in parts])
                         for n in TokenTimes.__dataclass_fields__})


def costs_rows(costs: StepCosts, rows) -> StepCosts:
    """The tokens `rows` (a slice or index array) of `costs`."""
    return StepCosts(**{n: costs.step_phase if n == "step_phase" else getattr(costs, n)[rows]
                        for n in StepCosts.__dataclass_fields__})


def joined_costs(parts: list[StepCosts]) -> StepCosts:
    """One StepCosts of the decode segments' tokens, in play order."""
    if len(parts) == 1:
        return parts[0]
    fields = StepCosts.__dataclass_fields__
    return StepCosts(**{n: parts[0].step_phase if n == "step_phase" else
                        np.concatenate([getattr(p, n) for p in parts]) for n in fields})
