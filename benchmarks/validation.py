"""memsim held against published measurements of real machines (issue 19) -> docs/validation.md.

    python benchmarks/validation.py [--tokens 256] [--write-docs]

One table: for each published case, memsim's configuration, the published figure, memsim's
figure and the error. Each case runs one preset (hw_configs/m1max.yaml, hw_configs/
oneplus12.yaml) with the paper's stated settings; nothing is tuned per row.

LLM in a flash (Alizadeh et al., arXiv 2312.11514), OPT-6.7B in fp16 on an Apple M1 Max,
128-token prompt, 256 generated tokens, batch 1. Table 2 (I/O per token) and Table 3 (whole
token on the CPU). Their settings, as memsim keys:
  naive       everything streamed from flash every token (dense masks);
  hybrid      half the model in DRAM: attention and embeddings resident, the largest share of
              the FFN that fits resident (`placement.mlp_resident_share`), the rest streamed;
  +predictor  attention, embeddings and a predictor of 1.25% of the model resident; the FFN
              read per predicted neuron (a row of W_up and a column of W_down, stored apart:
              `flash.bundle_up_gate: false`), no neuron cache;
  +windowing  the same with `cache.impl: window`, `window_tokens: 5`, DRAM = the stated 52.1%
              of the model (attention 32.3, embeddings 3, predictor 1.25, FFN window 15.5);
  +bundling   the same with the row and column stored together (`bundle_up_gate: true`).
No OPT-6.7B weights can be had here, so the neuron masks are synthetic with the paper's stated
statistics (memsim/traces/synth.py `synth_neuron_trace`): ~10% of FFN neurons loaded per token
without a window, ~2.4% new with a 5-token window, i.e. 76% of a token's neurons were active
within the last 5 tokens. The DRAM of the hybrid row is half the model's bytes, of the
predictor rows 52.1%, each plus the KV cache (the paper's shares are of the weights).
PowerInfer-2 (Xue et al., arXiv 2406.06282): the UFS 4.0 figures of the OnePlus 12, probed as
fio would (memsim/hw/probe.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from memsim.cache.window import window_union
from memsim.core.files import atomic_write_text
from memsim.hw.config import HardwareConfig, load_hw
from memsim.hw.probe import probe
from memsim.sim.footprint import Footprint
from memsim.sim.result import Result
from memsim.sim.simulator import simulate
from memsim.traces.bits import popcount
from memsim.traces.model_shape import load_model_shape
from memsim.traces.synth import synth_neuron_trace
from memsim.traces.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "validation.md"
TOLERANCE = 0.25  # the bar: each figure within +-25% of the published one
PROMPT, DENSE_TOKENS = 128, 16  # dense rows need few tokens: every token reads the same
ACTIVE, NEW_WITH_WINDOW, WINDOW = 0.10, 0.024, 5  # LLM in a flash, section 3.1 / appendix
PREDICTOR_SHARE = 0.0125  # predictor parameters as a share of the model's (section 3.1)
HYBRID_DRAM, WINDOW_DRAM = 0.50, 0.521  # share of the model's bytes in DRAM (Table 2, App. C)
LIAF = "LLM in a flash, OPT-6.7B, M1 Max"
PI2 = "PowerInfer-2, OnePlus 12 UFS 4.0"


@dataclass(frozen=True)
class Row:
    """One line of the table: a published figure and memsim's."""

    case: str
    config: str  # memsim keys that differ from the preset
    quantity: str
    unit: str
    published: float
    memsim: float
    kind: str = "value"  # "value" (error vs the figure) or "below" (the figure is a bound)
    cause: str = ""  # why memsim would be off here (words; shown only if the run misses)

    @property
    def error(self) -> float:
        return (self.memsim - self.published) / self.published

    @property
    def holds(self) -> bool:
        if self.kind == "below":
            return self.memsim < self.published
        return abs(self.error) <= TOLERANCE


# ------------------------------------------------------------------ LLM in a flash
def _with(hw: HardwareConfig, **sections) -> HardwareConfig:
    """`hw` with keys of its sections replaced: _with(hw, cache={"impl": "none"})."""
    out = hw
    for name, values in sections.items():
        out = dataclasses.replace(out, **{name: dataclasses.replace(getattr(out, name),
                                                                    **values)})
    return out


def _capacity(hw: HardwareConfig, model, share: float, tokens: int) -> dict:
    """DRAM = `share` of the model's weight bytes plus the KV cache at the longest length."""
    fp = Footprint.of(model, hw)
    weights = model.num_params * hw.precision.mlp_bits / 8
    kv = (PROMPT + tokens) * fp.kv_bytes_per_token_per_layer * model.num_hidden_layers
    return {"capacity_GB": (share * weights + kv) / 1e9}


def _largest_share(hw: HardwareConfig, model, tokens: int) -> float:
    """The FFN share that fills the DRAM left after attention, embeddings and the KV cache."""
    fp = Footprint.of(model, hw)
    L = model.num_hidden_layers
    kv = (PROMPT + tokens) * fp.kv_bytes_per_token_per_layer * L
    free = hw.dram.capacity_bytes - kv - L * fp.attention_bytes_per_layer - \
        fp.embedding_table_bytes
    return float(np.floor(free / (L * fp.mlp_bytes_per_layer) * 1e6) / 1e6)


def liaf_runs(tokens: int) -> tuple[dict[str, Result], Trace]:
    """The five Table 2 configurations on the m1max preset (name -> Result) and the neuron
    trace they share."""
    model, base = load_model_shape("opt-6.7b"), load_hw("m1max")
    dense = _dense_trace(model)
    neurons = synth_neuron_trace(model, tokens, ACTIVE, 1 - NEW_WITH_WINDOW / ACTIVE, WINDOW,
                                 seed=0, prompt_len=PROMPT,
                                 predictor_params=round(PREDICTOR_SHARE * model.num_params))
    streamed = {"attention": "streamed", "embedding": "streamed", "lm_head": "streamed",
                "mlp": "streamed"}
    half = _with(base, dram=_capacity(base, model, HYBRID_DRAM, DENSE_TOKENS))
    stated = _with(base, dram=_capacity(base, model, WINDOW_DRAM, tokens))
    configs = {
        "naive": (_with(base, placement=streamed, cache={"impl": "none"}), dense),
        "hybrid": (_with(half, placement={"mlp_resident_share": _largest_share(
            half, model, DENSE_TOKENS)}, cache={"impl": "none"}), dense),
        "predictor": (_with(stated, cache={"impl": "none"},
                            flash={"bundle_up_gate": False}), neurons),
        "windowing": (_with(stated, flash={"bundle_up_gate": False}), neurons),
        "bundling": (stated, neurons),
        # diagnostic, not a table row: the same window with DRAM to spare (never capped)
        "uncapped": (_with(stated, dram={"capacity_GB": 40.0}), neurons),
    }
    return {name: simulate(hw, None, trace) for name, (hw, trace) in configs.items()}, neurons


def _dense_trace(model) -> Trace:
    T, L = DENSE_TOKENS, model.num_hidden_layers
    return Trace(up=np.ones((T, L, model.hidden_size), bool),
                 down=np.ones((T, L, model.intermediate_size), bool), model=model,
                 method="dense", prompt_len=PROMPT, source="dense")


def mean_window_share(trace: Trace) -> float:
    """Mean over tokens (after the first k) of the union of k masks, as a share of neurons."""
    words = trace.words["neurons"]
    union = popcount(window_union(words, trace.sequence_lengths, WINDOW)).sum(axis=2)
    return float(union[WINDOW:].mean() / trace.model.intermediate_size)


# Table 2 (I/O per token) and Table 3 (CPU, whole token) of LLM in a flash, as PAPER.md
# section 7 quotes them: name -> (GB moved, I/O ms)
TABLE2 = {"naive": (13.4, 2196), "hybrid": (6.7, 1090), "predictor": (0.9, 738),
          "windowing": (0.2, 164), "bundling": (0.2, 87)}
TABLE3 = {"naive": 3182, "bundling": 669}
CONFIG_TEXT = {
    "naive": "all streamed, dense; cache none",
    "hybrid": "DRAM 50% of model; FFN share that fits resident, rest streamed",
    "predictor": "DRAM 52.1%; neurons 10%/token; cache none; bundling off",
    "windowing": "+ cache window, k = 5; bundling off",
    "bundling": "+ bundling on (preset as is)",
}
CAUSES = {
    "gb": "the bytes follow from the model shape and the masks, which reproduce the stated "
          "fractions",
    "io_dense": "one sequential request per layer and matrix at the measured 6.1 GB/s, plus "
                "a 100 us latency per transfer (assumed, not published)",
    "whole": "memsim does not model LLM in a flash's memory management (58 ms per token "
             "in their Table 3) and prices CPU compute at the preset's 50% of peak, far "
             "above what their fp32 CPU code reached (986 ms for the naive model: about 2% "
             "of peak)",
}


def _window_cause(result: Result, window_share: float) -> str:
    """Why a windowing row's bytes differ, from the run: was the window capped?"""
    if "capped" in result.plan_notes.get("window", ""):
        return (f"the synthetic trace meets the two stated statistics (10% per token, 2.4% "
                f"new against a 5-token window) with a window of {100 * window_share:.0f}% of "
                f"the FFN (reuse drawn uniformly from the window), wider than the paper's "
                f"24%: the stated DRAM (15.5% of the model for the window) caps it, and the "
                f"capped window loads more. Real tokens reuse recent neurons more, which "
                f"keeps their window narrower; the generator takes no third statistic")
    return CAUSES["gb"]


def _io_cause(result: Result) -> str:
    """I/O of sparse rows: the bytes at the rate the request model gives them."""
    rate = result.flash_bytes_per_token / max(result.busy_s["flash"], 1e-12) / 1e9
    return (f"the time follows the bytes: {result.flash_bytes_per_token / 1e9:.3g} GB at an "
            f"effective {rate:.3g} GB/s (the preset's random-read rates are the paper's own "
            f"1.25 GB/s at 8 KiB and 2.25 at 16 KiB, plus 100 us per transfer)")


def liaf_rows(tokens: int) -> tuple[list[Row], Result]:
    """The LLM in a flash rows, and the uncapped-window diagnostic run."""
    runs, neurons = liaf_runs(tokens)
    share = mean_window_share(neurons)
    rows = []
    for name, (gb, ms) in TABLE2.items():
        r = runs[name]
        sparse = name not in ("naive", "hybrid")
        gb_cause = _window_cause(r, share) if name in ("windowing", "bundling") else CAUSES["gb"]
        rows.append(Row(f"{LIAF}: {name}", CONFIG_TEXT[name], "flash GB per token", "GB", gb,
                        r.flash_bytes_per_token / 1e9, cause=gb_cause))
        rows.append(Row(f"{LIAF}: {name}", CONFIG_TEXT[name], "I/O ms per token", "ms", ms,
                        r.busy_s["flash"] * 1e3,
                        cause=_io_cause(r) if sparse else CAUSES["io_dense"]))
    rows.append(Row(f"{LIAF}: windowing", "synthetic trace, k = 5, uncapped",
                    "window / FFN neurons", "%", 24.0, 100 * share,
                    cause="reused neurons are drawn uniformly from the window (module "
                    "docstring of memsim/traces/synth.py); the paper's 24% needs reuse "
                    "that favours recent neurons"))
    for name, ms in TABLE3.items():
        rows.append(Row(f"{LIAF}: {name}", CONFIG_TEXT[name] + "; CPU fp32 0.82 TFLOPS x 0.5",
                        "whole token, CPU (ms)", "ms", ms, runs[name].time_per_token_s * 1e3,
                        cause=CAUSES["whole"]))
    return rows, runs["uncapped"]


# ------------------------------------------------------------------ PowerInfer-2
PI2_CASES = (  # (label, request KiB, sequential, span bytes, published GB/s, kind, input?)
    ("512 KiB sequential", 512, True, None, 4.0, "value", True),
    ("512 KiB random", 512, False, 8 * 2**30, 3.5, "value", True),
    ("4 KiB random, large range", 4, False, 8 * 2**30, 0.45, "value", True),
    ("4 KiB random, 128 MB range, big core", 4, False, 2**27, 1.076, "value", True),
    ("4 KiB random, 512 MB range", 4, False, 2**29, 0.85, "below", False),
)


def powerinfer2_rows() -> list[Row]:
    hw = load_hw("oneplus12")
    rows = []
    for label, size, sequential, span, published, kind, is_input in PI2_CASES:
        gbps, _ = probe(hw, size, sequential, span)
        how = "preset input" if is_input else "predicted (log-interpolated)"
        rows.append(Row(f"{PI2}: {label}", f"probe, {how}", "read GB/s", "GB/s", published,
                        gbps, kind=kind, cause="the IOPS of spans between 128 MiB and 4 GiB "
                        "are interpolated in log(span), not measured"))
    return rows


# ------------------------------------------------------------------ the document
def table(rows: list[Row]) -> str:
    lines = ["| case | memsim configuration | quantity | published | memsim | error | "
             "within ±25% |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        published = f"< {_num(r.published)}" if r.kind == "below" else _num(r.published)
        error = "bound" if r.kind == "below" else f"{100 * r.error:+.1f}%"
        lines.append(f"| {r.case} | {r.config} | {r.quantity} | {published} | "
                     f"{_num(r.memsim)} | {error} | {'yes' if r.holds else '**no**'} |")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def paragraph(rows: list[Row], uncapped: Result | None = None) -> str:
    """Where memsim is off and why: every number and verdict from `rows`."""
    misses = [r for r in rows if not r.holds]
    held = len(rows) - len(misses)
    table2 = [r for r in rows if r.case.startswith(LIAF) and r.unit in ("GB", "ms")
              and "whole" not in r.quantity]
    t2_misses = [r for r in table2 if not r.holds]
    out = [f"{held} of {len(rows)} figures are within ±25% of the published ones "
           f"(bounds: below the bound). Of the {len(table2)} Table 2 figures (GB moved and I/O "
           f"ms of the five LLM in a flash rows), {len(table2) - len(t2_misses)} are within "
           f"±25%" + (":" if not t2_misses else "; these miss:")]
    if not t2_misses:
        worst = max(table2, key=lambda r: abs(r.error))
        out[0] += (f" the largest error is {100 * worst.error:+.1f}% ({worst.case.split(': ')[1]}"
                   f", {worst.quantity}).")
    for r in misses:
        out.append(f"- {r.case}, {r.quantity}: memsim {_num(r.memsim)} {r.unit} against "
                   f"{_num(r.published)} ({100 * r.error:+.1f}%): {r.cause}.")
    if uncapped is not None:
        gb, ms = uncapped.flash_bytes_per_token / 1e9, uncapped.busy_s["flash"] * 1e3
        out.append("")
        out.append(f"A diagnostic outside the table (not the paper's DRAM): the same bundled "
                   f"windowing run with DRAM to spare, so the window is never capped, moves "
                   f"{gb:.3g} GB per token ({100 * (gb / TABLE2['bundling'][0] - 1):+.1f}% "
                   f"against 0.2) in {ms:.0f} ms "
                   f"({100 * (ms / TABLE2['bundling'][1] - 1):+.1f}% against 87): the window "
                   f"policy and the request model account for the stated statistics; what the "
                   f"capped rows miss is the window's width.")
    return "\n".join(out)


HEADER = """# memsim against published measurements

Generated by `python benchmarks/validation.py --write-docs` (every number and verdict below
comes from that run). Each case runs one preset with the paper's stated settings; nothing is
tuned per row. Error = (memsim - published) / published.

Cases and settings (benchmarks/validation.py docstring has them in full):
- **LLM in a flash** (Alizadeh et al., arXiv 2312.11514, Tables 2 and 3): OPT-6.7B in fp16
  on the `m1max` preset (the M1 Max's SSD as the paper measured it, 32 reader threads),
  128-token prompt, batch 1. The predictor rows replay synthetic neuron masks with the
  paper's stated statistics (`memsim trace synth --group neurons --active-fraction 0.1
  --reuse-share 0.76 --window-tokens 5`): ~10% of FFN neurons loaded per token without a
  window, ~2.4% new with a 5-token window. I/O ms is memsim's flash busy time per token.
- **PowerInfer-2** (Xue et al., arXiv 2406.06282): the OnePlus 12's UFS 4.0 read rates on
  the `oneplus12` preset, probed as fio measures (`memsim hw probe oneplus12`). Rows marked
  "preset input" check only that the request model reproduces the figure it was given.

What is not here: PowerInfer-2's Mixtral-47B throughput (2.13 tok/s at 7 GB, 11.68 at 19 GB):
memsim has no MoE layers. Ripple's access-collapse and placement gains need OPT and Llama-2
activation traces, which cannot be had here.

"""


def build(tokens: int) -> tuple[str, float]:
    start = time.perf_counter()
    liaf, uncapped = liaf_rows(tokens)
    rows = liaf + powerinfer2_rows()
    seconds = time.perf_counter() - start
    text = (HEADER + table(rows) + "\n\n" + paragraph(rows, uncapped) + "\n\n"
            + f"_Run: {tokens} generated tokens per predictor row, {seconds:.0f} s._\n")
    return text, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256,
                        help="generated tokens of the predictor rows (256, as the paper)")
    parser.add_argument("--write-docs", action="store_true", help="write docs/validation.md")
    args = parser.parse_args(argv)
    if not 8 <= args.tokens <= 4096:
        parser.error("--tokens: between 8 and 4096")
    text, seconds = build(args.tokens)
    print(text)
    if args.write_docs:
        atomic_write_text(DOC, text)
        print(f"wrote {DOC} ({seconds:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
