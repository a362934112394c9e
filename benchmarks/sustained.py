"""docs/sustained.md: burst vs sustained speed on a phone that heats and runs other apps.

1. Calibration check of the thermal preset (hw_configs/thermal/flagship_phone.yaml): a
   2B-class 4-bit model (Gemma-2-2B shapes), dense, resident in DRAM on the flagship
   preset's NPU, decoding without pause for 10 minutes, against the published run it is
   fitted to (PUBLISHED below, with its source).
2. The study: Phi-3-Medium shapes on the flagship preset, traces calibrated on SmolLM2 DIP
   and DIP-CA traces (a real masked forward pass, memsim.traces.calibrated), dense streaming
   as all-true masks; the chat session examples/chat.yaml (10 simulated minutes) at
   CAPACITIES_GB; on a cool phone (no heat), with heat (flagship_phone), and with heat and a
   camera preview beside the model. Burst (first tokens) vs sustained (last minute of
   decode) tokens/s, energy per token and power; which method wins in each setting, and
   whether heat or the camera changes it.
Every number and verdict in the doc comes from this run; the template holds words.
    python benchmarks/sustained.py [--out runs/sustained] [--doc docs/sustained.md]
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from memsim.core.files import atomic_write_text
from memsim.core.schema import to_plain
from memsim.hw.config import hw_from_dict, load_hw
from memsim.sim.over_time import rate_over_time
from memsim.sim.session import load_session
from memsim.sim.simulator import simulate
from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import sweep_from_dict
from memsim.sweeps.table import read_results
from memsim.traces.calibrated import calibrate, generate
from memsim.traces.model_shape import ModelShape, load_model_shape
from memsim.traces.synth import synth_trace
from memsim.traces.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
CAPACITIES_GB = (2.5, 4.0, 5.5)
METHODS = {"dense": "dense streaming", "dip": "DIP", "dip_ca": "DIP-CA"}
SCENARIOS = {"cool": ("none", []), "heat": ("flagship_phone", []),
             "heat + camera": ("flagship_phone", ["camera_preview"])}
FIGURE_CAPACITY_GB = 4.0
TOKENS, SEQUENCES = 256, 2
SMOL_CAPACITY_GB, GAMMA = 0.054, 0.5  # the SmolLM2 traces calibrated on (docs/results.md)
# The published run the thermal preset is fitted to: Gemma 4 E2B (4-bit) on an iPhone 17
# Pro's Neural Engine, 10 minutes of generation (D. Majima, dev.to, 2025, "iPhone on-device
# LLM: the GPU wins the sprint, the Neural Engine wins the marathon"; quoted by issue 18).
PUBLISHED = {"burst": 33.0, "sustained": 22.0, "t10_s": 93.0, "t25_s": 390.0}
TOLERANCE = 0.20  # the issue's +-20% on the burst-to-sustained ratio
GEMMA_2B = ModelShape(name="2b-class (gemma-2-2b shapes)", num_hidden_layers=26,
                      hidden_size=2304, intermediate_size=9216, num_attention_heads=8,
                      num_key_value_heads=4, head_dim=256, vocab_size=256000,
                      tie_word_embeddings=True)


# ---------------------------------------------------------------------- calibration
def calibration() -> dict:
    data = to_plain(load_hw("flagship"))
    data.update(thermal="flagship_phone", placement={**data["placement"], "mlp": "resident"})
    data["dram"]["capacity_GB"] = 8.0
    trace = synth_trace(GEMMA_2B, 256, 1.0, seed=0, method="dense")
    session = {"name": "continuous", "turns": [{"prompt_tokens": 16, "answer_tokens": 512}],
               "duration_s": 600.0, "max_context_tokens": 1024}
    r = simulate(hw_from_dict(data), GEMMA_2B, trace, session=session)
    rate, end = 1.0 / np.asarray(r.per_token["time_s"]), np.asarray(r.per_token["end_s"])

    def first_below(share):
        below = np.nonzero(rate < share * r.burst_tokens_per_s)[0]
        return float(end[below[0]]) if len(below) else None

    ratio = r.sustained_tokens_per_s / r.burst_tokens_per_s
    published = PUBLISHED["sustained"] / PUBLISHED["burst"]
    return {"burst": r.burst_tokens_per_s, "sustained": r.sustained_tokens_per_s,
            "ratio": ratio, "published_ratio": published,
            "within": abs(ratio / published - 1) <= TOLERANCE,
            "t10_s": first_below(0.9), "t25_s": first_below(0.75),
            "first_throttle_s": r.time_to_first_throttle_s}


# ---------------------------------------------------------------------- traces
def smollm2_sources(out: Path) -> dict[str, str]:
    """SmolLM2 DIP and DIP-CA traces (a real masked forward pass), made once."""
    sweep = {"name": "sustained-sources",
             "base": {"hw": "flagship", "model": "smollm2-135m", "density": 0.5,
                      "trace": {"source": "model", "windows": SEQUENCES, "window_len": TOKENS},
                      "dip_ca": {"gamma": GAMMA}},
             "axes": {"method": ["dip", "dip_ca"], "hw.dram.capacity_GB": [SMOL_CAPACITY_GB]}}
    outcome = run_sweep(sweep_from_dict(sweep, source="sustained"), out / "smollm2",
                        workers=1, progress=False)
    table = read_results(outcome.table_path)
    return {m: str(p) for m, p in zip(table["method"], table["trace_path"])}


def phi3_traces(sources: dict[str, str], out: Path) -> dict[str, Trace]:
    phi3 = load_model_shape("phi-3-medium")
    traces = {"dense": synth_trace(phi3, TOKENS * SEQUENCES, method="dense",
                                   num_sequences=SEQUENCES)}
    for method, source in sources.items():
        path = out / f"phi3_{method}.npz"
        if not path.is_file():
            generate(calibrate(Trace.load(source)), phi3, TOKENS * SEQUENCES, seed=0,
                     num_sequences=SEQUENCES).save(path)
        traces[method] = Trace.load(path)
    return traces


# ---------------------------------------------------------------------- the study
def run_point(trace: Trace, capacity_gb: float, scenario: str, session) -> dict:
    thermal, background = SCENARIOS[scenario]
    data = to_plain(load_hw("flagship"))
    data.update(thermal=thermal, background=background)
    data["dram"]["capacity_GB"] = capacity_gb
    r = simulate(hw_from_dict(data), None, trace, session=session)
    decode_s = float(np.sum(r.per_token["time_s"]))
    return {"burst": r.burst_tokens_per_s, "sustained": r.sustained_tokens_per_s,
            "energy_J": r.energy_per_token_J, "power_W": r.energy_per_token_J * r.num_tokens
            / decode_s, "peak_C": r.peak_temperature_C,
            "throttle_s": r.time_to_first_throttle_s, "tokens": r.num_tokens,
            "p99_ms": r.latency_p99_s * 1e3, "ttft_ms": float(np.mean(r.ttft_per_turn_s)) * 1e3,
            "flash_share": r.breakdown_s["flash"] / r.time_per_token_s,
            "series": (np.asarray(r.per_token["start_s"]), np.asarray(r.per_token["end_s"]),
                       np.asarray(r.per_token.get("temperature_C",
                                                  np.full(r.num_tokens, np.nan))))}


def study(traces: dict[str, Trace]) -> dict:
    session = load_session(ROOT / "examples" / "chat.yaml")
    return {(scenario, cap, method): run_point(traces[method], cap, scenario, session)
            for scenario in SCENARIOS for cap in CAPACITIES_GB for method in METHODS}


def winners(points: dict, key: str) -> dict:
    """(scenario, capacity) -> the method with the highest `key` tokens/s."""
    return {(s, c): max(METHODS, key=lambda m: points[(s, c, m)][key])
            for s in SCENARIOS for c in CAPACITIES_GB}


# ---------------------------------------------------------------------- the doc
def _loss(points: dict, scenario: str, cap: float, method: str) -> float:
    """Share of the cool phone's sustained tokens/s lost in `scenario`."""
    return 1 - points[(scenario, cap, method)]["sustained"] / points[("cool", cap, method)][
        "sustained"]


def _mean(points: dict, scenario: str, method: str, key: str) -> float:
    return float(np.mean([points[(scenario, c, method)][key] for c in CAPACITIES_GB]))


def verdict_lines(points: dict) -> list[str]:
    """Whether heat or the camera changes the winner at each DRAM size, and why (power per
    token, and how much of each method's time the governor can slow)."""
    won = winners(points, "sustained")
    lines = []
    for cap in CAPACITIES_GB:
        names = {s: METHODS[won[(s, cap)]] for s in SCENARIOS}
        changed = len(set(names.values())) > 1
        setting = ", ".join(f"{s}: {n}" for s, n in names.items())
        lines.append(f"- **{cap:g} GB**: the winner by sustained tokens/s "
                     f"{'changes' if changed else 'does not change'} ({setting}).")
    lines += ["", "Why: what each method draws, and how much of its time the governor can "
              "slow (it scales the NPU and DRAM clocks, not flash), averaged over the DRAM "
              "sizes:", ""]
    for scenario in list(SCENARIOS)[1:]:
        cells = [f"{name} {_mean(points, scenario, m, 'energy_J'):.2f} J/token, "
                 f"{_mean(points, scenario, m, 'power_W'):.2f} W, "
                 f"{_mean(points, scenario, m, 'flash_share'):.0%} of its time on flash, "
                 f"loses {np.mean([_loss(points, scenario, c, m) for c in CAPACITIES_GB]):.1%}"
                 for m, name in METHODS.items()]
        lines.append(f"- {scenario}: " + "; ".join(cells) + ".")
    lines.append("")
    lines += _mechanism_lines(points)
    warm = sum(p["sustained"] > p["burst"] for p in points.values())
    lines += ["", f"In {warm} of {len(points)} rows the sustained speed is above the burst: "
              "the burst is the session's first tokens on a cold DRAM cache, the sustained "
              "speed its last minute on a warm one; heat's own cost is the loss against the "
              "cool phone above."]
    return lines


def _sentence_start(name: str) -> str:
    return name[:1].upper() + name[1:]


def _mechanism_lines(points: dict) -> list[str]:
    """The method heat (with the camera) costs most, against the most power-hungry one and
    the least flash-bound one: which explains the loss."""
    scenario = list(SCENARIOS)[-1]
    loss = {m: np.mean([_loss(points, scenario, c, m) for c in CAPACITIES_GB]) for m in METHODS}
    power = {m: _mean(points, scenario, m, "power_W") for m in METHODS}
    flash = {m: _mean(points, scenario, m, "flash_share") for m in METHODS}
    most = max(loss, key=loss.get)
    hungriest, least_flash = max(power, key=power.get), min(flash, key=flash.get)
    cause = []
    if most == least_flash:
        cause.append("it spends the least of its time on flash, the one resource the "
                     "governor does not slow")
    if most == hungriest:
        cause.append("it draws the most power")
    if not cause:
        cause.append("neither its power nor its flash share alone explains it")
    margin = min(points[(scenario, c, won)]["sustained"]
                 / max(points[(scenario, c, m)]["sustained"] for m in METHODS if m != won)
                 for c in CAPACITIES_GB for won in [winners(points, "sustained")[(scenario, c)]])
    return [f"With heat and the camera, {METHODS[most]} loses the most ({loss[most]:.1%} on "
            f"average): {'; '.join(cause)}. {_sentence_start(METHODS[hungriest])} draws the "
            "most power "
            f"({power[hungriest]:.2f} W) yet loses {loss[hungriest]:.1%}: its time is "
            f"{flash[hungriest]:.0%} flash reads. The winner keeps at least "
            f"{margin - 1:.0%} over the runner-up in every setting with heat and the camera."]


def table_lines(points: dict) -> list[str]:
    lines = ["| setting | DRAM (GB) | method | burst tok/s | sustained tok/s | kept | vs cool | "
             "J/token | W | flash share | peak C | first throttle (s) | p99 latency (ms) | "
             "mean TTFT (ms) |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (s, cap, m), p in points.items():
        peak = "-" if p["peak_C"] is None else f"{p['peak_C']:.1f}"
        throttle = "-" if p["throttle_s"] is None else f"{p['throttle_s']:.0f}"
        lines.append(f"| {s} | {cap:g} | {METHODS[m]} | {p['burst']:.2f} | "
                     f"{p['sustained']:.2f} | {p['sustained'] / p['burst']:.0%} | "
                     f"{1 - _loss(points, s, cap, m):.1%} | {p['energy_J']:.2f} | "
                     f"{p['power_W']:.2f} | {p['flash_share']:.0%} | {peak} | {throttle} | "
                     f"{p['p99_ms']:.0f} | {p['ttft_ms']:.0f} |")
    return lines


def calibration_lines(cal: dict) -> list[str]:
    def t(value):
        return "never" if value is None else f"{value:.0f}"
    return ["| | burst tok/s | sustained tok/s | kept | -10% after (s) | -25% after (s) |",
            "|---|---|---|---|---|---|",
            f"| published (iPhone 17 Pro ANE, Gemma 4 E2B) | {PUBLISHED['burst']:g} | "
            f"{PUBLISHED['sustained']:g} | {cal['published_ratio']:.0%} | "
            f"{PUBLISHED['t10_s']:g} | {PUBLISHED['t25_s']:g} |",
            f"| memsim (flagship + flagship_phone, 2B-class dense, resident) | "
            f"{cal['burst']:.1f} | {cal['sustained']:.1f} | {cal['ratio']:.0%} | "
            f"{t(cal['t10_s'])} | {t(cal['t25_s'])} |", "",
            f"The simulated share kept is {cal['ratio'] / cal['published_ratio'] - 1:+.0%} "
            f"off the published one: "
            f"{'within' if cal['within'] else 'outside'} the +-{TOLERANCE:.0%} the preset is "
            "fitted to. (Absolute tokens/s differ: another model and phone; only the shares "
            "and times are compared.)"]


TEMPLATE = """# Sustained speed: heat and other apps

*Generated by `python benchmarks/sustained.py` ({wall}); every number and verdict below
comes from that run.*

A phone that runs a model for minutes heats up, and its governor slows the clocks; other
apps share its flash, DRAM bus and NPU. memsim simulates both as processes beside the decode
stream ([hardware_model.md](hardware_model.md)): a lumped RC heat model heated by the
energy model's power, a throttling governor, and background apps issuing bursts of work.

## 1. The thermal preset against a published run

{calibration}

## 2. Phi-3-Medium on the flagship phone, a 10-minute chat

Traces: Phi-3-Medium shapes, DIP and DIP-CA at density 0.5 generated from statistics of
SmolLM2-135M traces (a real masked forward pass, {smol_tokens} tokens), dense streaming reads
every column. Session: `examples/chat.yaml` (three turns with think time, repeated for 10
simulated minutes; the answers loop the trace). Settings: a cool phone (`thermal: none`),
heat (`thermal: flagship_phone`), heat and a 4K camera preview
(`background: [camera_preview]`). Burst: the first 32 tokens; sustained: the last 60 s of
decode time; kept: sustained / burst; vs cool: sustained / the cool phone's sustained; W: the
decode's own power (energy per token x tokens/s, without idle and the camera's); flash
share: the part of each token's critical path spent waiting for flash.

{table}

![tokens/s and temperature over the session]({figure})

## 3. Verdict

{verdict}

## What this study ignores

The heat model is one node (no spread between die, board and skin), so it cannot show a
quick early drop and a slow later one at once; throttling scales the NPU and DRAM clocks,
not the flash; the camera profile captures DRAM traffic, an NPU detector and its own power,
not CPU contention (hw_configs/background/camera_preview.yaml states its figures).
"""


def plot(points: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6.5))
    speed, heat = fig.subplots(2, 1, sharex=True)
    colours = {"dense": "black", "dip": "tab:blue", "dip_ca": "tab:orange"}
    for scenario, style in (("heat", "-"), ("heat + camera", "--")):
        for m, name in METHODS.items():
            start, end, temp = points[(scenario, FIGURE_CAPACITY_GB, m)]["series"]
            centres, rate = rate_over_time(end, 30.0)
            speed.plot(centres, rate, style, color=colours[m], label=f"{name}, {scenario}")
            heat.plot(start, temp, style, color=colours[m], label=f"{name}, {scenario}")
    speed.set_ylabel("tokens/s (30 s bins)")
    heat.set_ylabel("temperature (C)")
    heat.set_xlabel("session time (s)")
    speed.set_title(f"Phi-3-Medium on flagship at {FIGURE_CAPACITY_GB:g} GB, 10-minute chat")
    speed.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/sustained")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "sustained.md"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cal = calibration()
    traces = phi3_traces(smollm2_sources(out), out)
    points = study(traces)
    figure = Path(args.doc).parent / "figures" / "sustained_over_time.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    plot(points, figure)
    wall = f"{time.perf_counter() - start:.0f} s"
    doc = TEMPLATE.format(wall=wall, calibration="\n".join(calibration_lines(cal)),
                          smol_tokens=f"{SEQUENCES} x {TOKENS}",
                          table="\n".join(table_lines(points)),
                          figure=f"figures/{figure.name}", verdict="\n".join(verdict_lines(points)))
    atomic_write_text(Path(args.doc), doc)
    print(doc)


if __name__ == "__main__":
    main()
