"""The flash model's tables in docs/flash_layout.md that need no layout study: the probe
against published measurements, and how the Phi-3-Medium verdict moves with `flash.locality`.

Writes the section between its two markers in docs/flash_layout.md (the rest of the page is
left as it is; benchmarks/flash_layout_study.py writes the part below its own marker):
  1. the presets probed (memsim/hw/probe.py) against every figure in probe.PUBLISHED (each
     with its source);
  2. the span each locality reading gives a masked read, and the random-read rate of one read
     unit (a page) within it;
  3. the verdict on the flagship at DRAM_GB: DIP and DIP-CA against dense streaming under each
     reading. Traces: a synthetic DIP trace (the one issue 17 quotes: `memsim trace synth`,
     Phi-3-Medium, 256 tokens, density 0.5, seed 0) and calibrated DIP and DIP-CA traces at
     Phi-3-Medium's shapes (`memsim trace calibrate` of the SmolLM2 test traces the layout
     study uses, made in DATA when missing: minutes each); dense streaming reads every
     column (all-true masks). Admission off, model order, no merging (the presets as they are).
Every number and verdict word comes from this run (`measure`); `render` only words them, and
`render_example` renders a fake fixture for tests/test_generated_docs.py. A few seconds once
the traces exist:
    python benchmarks/flash_model_tables.py [--data runs/fidelity] [--out docs/flash_layout.md]
"""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

from calibration_fidelity import (  # same folder: shared traces
    SOURCES,
    WINDOWS,
    _hw_file,
    eval_flags,
)
from run_info import run_main  # same folder

from memsim import load_hw, load_model_shape, simulate
from memsim.core.files import atomic_write_text, check_output_dir, check_output_file, read_text
from memsim.hw.flash.ufs import LOCALITIES
from memsim.hw.probe import PUBLISHED, WITHIN, Published
from memsim.sim.costs import weight_file_bytes
from memsim.traces.calibrated import calibrate, generate
from memsim.traces.synth import synth_trace
from memsim.traces.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- begin: written by benchmarks/flash_model_tables.py -->"
END = "<!-- end: written by benchmarks/flash_model_tables.py -->"
PRESET = "flagship"
DRAM_GB = (2.5, 4.0, 5.5)
TOKENS, SEQUENCES, DENSITY, SEED = 256, 1, 0.5, 0  # the trace issue 17 quotes
VERDICT_MODEL = "phi-3-medium"
SPAN_MODELS = (VERDICT_MODEL, "smollm2-135m")  # the span table's models; the last is small
CALIBRATED = {"dip": "smol_dip_test", "dip_ca": "smol_dipca60_test"}  # DATA/<name>/trace.npz
LABEL = {"dip": "DIP", "dip_ca": "DIP-CA"}


@dataclasses.dataclass(frozen=True)
class Tables:
    """What the run measured; `render` words it."""

    within: float  # probe.WITHIN
    probe: list[tuple[Published, float]]  # each published figure and memsim's measurement
    preset: str
    flash: dict  # the preset's IOPS curve: local/max IOPS (K), local range (MiB), far (GiB)
    unit_bytes: float  # the read unit the span table prices
    spans: dict  # (locality, model name) -> [(span bytes, GB/s), ...] (W_down, up+gate)
    small_file_bytes: float  # the last span model's weight file
    local_bytes: float  # local_range_MiB in bytes
    verdict_model: str
    dense: dict  # capacity GB -> dense streaming tokens/s
    tps: dict  # (trace label, capacity GB, locality) -> tokens/s
    took_s: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "fidelity",
                        help="folder of the SmolLM2 traces (missing ones are made there)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "flash_layout.md")
    args = parser.parse_args()
    page = read_text(args.out, what="page to write into")
    check_output_file(args.out, "--out")
    check_output_dir(args.data, "--data")
    if page.count(BEGIN) != 1 or page.count(END) != 1 or page.index(BEGIN) > page.index(END):
        raise SystemExit(f"{args.out}: needs one {BEGIN!r} and, after it, one {END!r}")
    tables = measure(args.data)
    head, rest = page.split(BEGIN)
    atomic_write_text(args.out, head + render(tables) + END + rest.split(END, 1)[1])
    print(f"wrote the generated section of {args.out} ({tables.took_s:.0f} s)")


# ----- the run -------------------------------------------------------------------------------
def measure(data: Path) -> Tables:
    start = time.perf_counter()
    hw = load_hw(PRESET)
    probe = [(p, p.measured(load_hw(p.preset))) for p in PUBLISHED]
    flash = {"local_K": hw.flash.local_read_iops_K, "local_MiB": hw.flash.local_range_MiB,
             "max_K": hw.flash.max_read_iops_K, "far_GiB": hw.flash.far_range_GiB}
    unit = float(hw.flash.page_bytes)
    spans = {(r, name): [(s, unit / float(hw.flash.request_time_s(1, s, False)) / 1e9)
                         for s in masked_spans(hw, load_model_shape(name), r)]
             for r in LOCALITIES for name in SPAN_MODELS}
    dense, tps = verdicts(hw, traces(data))
    return Tables(WITHIN, probe, PRESET, flash, unit, spans,
                  weight_file_bytes(load_model_shape(SPAN_MODELS[-1]), hw),
                  hw.flash.local_range_MiB * 2**20, VERDICT_MODEL, dense, tps,
                  time.perf_counter() - start)


def traces(data: Path) -> dict[str, Trace]:
    """label -> trace at the verdict model's shapes (dense, synthetic DIP, calibrated)."""
    model = load_model_shape(VERDICT_MODEL)
    out = {"dense": synth_trace(model, TOKENS, DENSITY, seed=SEED, method="dense",
                                num_sequences=SEQUENCES),
           "DIP (synthetic)": synth_trace(model, TOKENS, DENSITY, seed=SEED,
                                          num_sequences=SEQUENCES)}
    for method, name in CALIBRATED.items():
        stats = calibrate(Trace.load(ensure_test_trace(data, name)))
        out[f"{LABEL[method]} (calibrated)"] = generate(stats, model, TOKENS, seed=SEED,
                                                        num_sequences=SEQUENCES)
    return out


def ensure_test_trace(data: Path, name: str) -> Path:
    """DATA/<name>/trace.npz, made with `memsim eval` as calibration_fidelity.ensure_traces
    makes it (the same flags and windows; the held-out split only)."""
    path = data / name / "trace.npz"
    if not path.is_file():
        source = name.removeprefix("smol_").removesuffix("_test")
        _, share = SOURCES[source]
        cmd = [sys.executable, "-m", "memsim", "eval", *eval_flags(source), "--split", "test",
               "--windows", str(WINDOWS), "--out", str(path.parent), "--no-progress"]
        if share is not None:
            cmd += ["--hw", str(_hw_file(data, share))]
        print("making", path.parent, flush=True)
        subprocess.run(cmd, check=True)
    return path


def with_settings(hw, capacity_GB: float, locality: str):
    return dataclasses.replace(hw, dram=dataclasses.replace(hw.dram, capacity_GB=capacity_GB),
                               flash=dataclasses.replace(hw.flash, locality=locality))


def masked_spans(hw, model, locality: str) -> list[float]:
    """(W_down, up+gate) spans a DIP read is priced within under `locality`."""
    bytes_per = hw.precision.mlp_bits / 8
    down = model.intermediate_size * model.hidden_size * bytes_per
    up_gate = 2 * down
    if locality == "token":
        return [(down + up_gate) * model.num_hidden_layers] * 2
    if locality == "file":
        return [weight_file_bytes(model, hw)] * 2
    return [down, up_gate]


def verdicts(hw, model_traces: dict[str, Trace]) -> tuple[dict, dict]:
    """Dense streaming tokens/s per DRAM size, and every sparse trace's per reading."""
    dense, tps = {}, {}
    for capacity in DRAM_GB:
        by_reading = {r: simulate(with_settings(hw, capacity, r), None,
                                  model_traces["dense"]).tokens_per_s for r in LOCALITIES}
        if len({round(v, 9) for v in by_reading.values()}) != 1:  # whole regions: sequential
            raise SystemExit("dense streaming depends on the locality reading: a bug")
        dense[capacity] = by_reading[LOCALITIES[0]]
        for label, trace in model_traces.items():
            if label != "dense":
                for r in LOCALITIES:
                    tps[(label, capacity, r)] = simulate(with_settings(hw, capacity, r), None,
                                                         trace).tokens_per_s
    return dense, tps


# ----- the words -----------------------------------------------------------------------------
def render(t: Tables) -> str:
    lines = [BEGIN, "", f"Written by `python benchmarks/flash_model_tables.py` "
             f"({t.took_s:.0f} s).", ""] + probe_section(t) + locality_section(t)
    return "\n".join(lines + [""])


def probe_section(t: Tables) -> list[str]:
    lines = ["### The flash model against published measurements", "",
             f"`memsim hw probe PRESET` measures a preset's flash model the way fio measures a "
             f"phone (long streams of requests of one size, priced by the function every "
             f"simulated request is priced with). Each published figure and its source are "
             f"data (`PUBLISHED` in memsim/hw/probe.py); `tests/test_probe.py` pins each row; "
             f"\"~\" means within {t.within:.0%}.", "",
             "| preset | measurement | published | memsim | holds | source |",
             "|---|---|---|---|---|---|"]
    for p, got in t.probe:
        fmt = "{:,.1f}" if p.metric == "K IOPS" else "{:.2f}"
        published = ("below " if p.relation == "below" else "~") + fmt.format(p.value)
        lines.append(f"| {p.preset} | {p.what} | {published} {p.metric} | "
                     f"{fmt.format(got)} {p.metric} | {'yes' if p.holds(got) else 'no'} | "
                     f"{p.source} |")
    return lines + [""]


def size_text(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.2f} GB" if num_bytes >= 1e9 else f"{num_bytes / 1e6:.1f} MB"


def span_rows(t: Tables) -> list[str]:
    """Per reading, the span of a masked read and the random-read rate it gets."""
    unit = f"{t.unit_bytes / 1024:g} KiB"
    lines = ["| reading | " + " | ".join(
        f"span of a masked read: {name} (W_down / up+gate) | its {unit} random reads"
        for name in SPAN_MODELS) + " |", "|---|" + "---|---|" * len(SPAN_MODELS)]
    for r in LOCALITIES:
        cells = []
        for name in SPAN_MODELS:
            cells += [" / ".join(size_text(s) for s, _ in t.spans[(r, name)]),
                      " / ".join(f"{g:.2f} GB/s" for _, g in t.spans[(r, name)])]
        lines.append(f"| `{r}` | " + " | ".join(cells) + " |")
    return lines


def locality_section(t: Tables) -> list[str]:
    f = t.flash
    lines = ["### Locality: which span a masked read is priced within", "",
             f"`flash.locality` decides the span passed to the IOPS curve for masked "
             f"(random) reads on `ufs` flash: the {t.preset}'s {f['local_K']:g} K "
             f"IOPS apply up to {f['local_MiB']:g} MiB, "
             f"{f['max_K']:g} K from {f['far_GiB']:g} GiB on "
             f"(log-interpolated between).", ""] + span_rows(t) + [""]
    small = SPAN_MODELS[-1]
    rates = {round(g, 9) for r in LOCALITIES for _, g in t.spans[(r, small)]}
    same = ("is the same under every reading" if len(rates) == 1
            else "differs between readings")
    within = t.small_file_bytes <= t.local_bytes
    lines += [f"{small}'s whole weight file is {size_text(t.small_file_bytes)} at the "
              f"{t.preset}'s precision, {'within' if within else 'beyond'} "
              f"`local_range_MiB`: its random-read rate "
              f"{same} in the table above.", "",
              f"The {t.verdict_model} verdict on the {t.preset} (tokens/s; ratio to dense "
              f"streaming at the same DRAM; {TOKENS} tokens in {SEQUENCES} "
              f"sequence{'s' if SEQUENCES > 1 else ''}, "
              f"density {DENSITY:g}, LRU, admission off, model order, no merging):", ""]
    header = "| DRAM | trace | dense streaming | " + " | ".join(f"`{r}`" for r in LOCALITIES)
    lines += [header + " |", "|---|---|---|" + "---|" * len(LOCALITIES)]
    labels = list(dict.fromkeys(k[0] for k in t.tps))
    for capacity in t.dense:
        for label in labels:
            cells = [f"{t.tps[(label, capacity, r)]:.2f} "
                     f"({t.tps[(label, capacity, r)] / t.dense[capacity]:.2f}x)"
                     for r in LOCALITIES]
            lines.append(f"| {capacity:g} GB | {label} | {t.dense[capacity]:.2f} | "
                         + " | ".join(cells) + " |")
    return lines + [""] + verdict_lines(t, labels)


def verdict_lines(t: Tables, labels: list[str]) -> list[str]:
    """Per trace, where the method beats dense under each reading (words from the ratios)."""
    lines = []
    for label in labels:
        parts = []
        for r in LOCALITIES:
            ratios = {c: t.tps[(label, c, r)] / t.dense[c] for c in t.dense}
            wins = [c for c, x in ratios.items() if x > 1]
            where = ("at every DRAM size" if len(wins) == len(ratios) else
                     "at no DRAM size" if not wins else
                     "at " + ", ".join(f"{c:g}" for c in wins) + " GB")
            parts.append(f"`{r}`: beats dense {where} "
                         f"({', '.join(f'{x:.2f}x' for x in ratios.values())})")
        lines.append(f"- {label}: " + "; ".join(parts) + ".")
    return lines


def render_example() -> str:
    """The section from a small fake fixture (tests/test_generated_docs.py)."""
    probe = [(Published("fast", "37 KiB reads", 37, True, None, "GB/s", 6.13, "about", "src A"),
              6.71),
             (Published("slow", "7 KiB reads", 7, False, 3e9, "K IOPS", 91.3, "below",
                        "src B"), 97.9)]
    spans = {(r, name): [(0.31e6 * (i + 1) * (j + 1), 0.57 / (i + 1)) for j in range(2)]
             for i, r in enumerate(LOCALITIES) for name in SPAN_MODELS}
    dense = {c: 0.23 * c for c in DRAM_GB}
    tps = {(label, c, r): 0.29 * c / (i + 1) * (k + 1)
           for k, label in enumerate(("A (fake)", "B (fake)"))
           for c in DRAM_GB for i, r in enumerate(LOCALITIES)}
    flash = {"local_K": 333, "local_MiB": 77, "max_K": 111, "far_GiB": 9}
    return render(Tables(0.19, probe, "phone", flash, 8192.0, spans, 61e6, 77 * 2**20,
                         "model-x", dense, tps, 71.0))


if __name__ == "__main__":
    run_main(main)
