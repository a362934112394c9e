"""The flash model's tables in docs/flash_layout.md that need no layout study: the probe
against published measurements, and how the Phi-3-Medium verdict moves with `flash.locality`.

Writes the section between its two markers in docs/flash_layout.md (the rest of the page is
left as it is; benchmarks/flash_layout_study.py writes the part below its own marker):
  1. the presets probed (memsim/hw/probe.py) against every figure in probe.PUBLISHED;
  2. the span each locality reading gives a masked read, and its 4 KiB random-read rate;
  3. the verdict on the flagship at DRAM_GB: DIP and DIP-CA against dense streaming under each
     reading. Traces: a synthetic DIP trace (the one issue 17 quotes: `memsim trace synth`,
     Phi-3-Medium, 256 tokens, density 0.5, seed 0) and calibrated DIP and DIP-CA traces at
     Phi-3-Medium's shapes (`memsim trace calibrate` of the SmolLM2 test traces the layout
     study uses, made in DATA when missing: minutes each); dense streaming reads every
     column (all-true masks). Admission off, model order, no merging (the presets as they are).
Every number and verdict word comes from this run. A few seconds once the traces exist:
    python benchmarks/flash_model_tables.py [--data runs/fidelity] [--out docs/flash_layout.md]
"""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

from calibration_fidelity import SOURCES, WINDOWS, _hw_file  # same folder: shared traces

from memsim import load_hw, load_model_shape, simulate
from memsim.core.errors import ConfigError
from memsim.core.files import atomic_write_text, read_text
from memsim.hw.flash.ufs import LOCALITIES
from memsim.hw.probe import PUBLISHED, WITHIN
from memsim.sim.costs import weight_file_bytes
from memsim.traces.calibrated import calibrate, generate
from memsim.traces.synth import synth_trace
from memsim.traces.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- begin: written by benchmarks/flash_model_tables.py -->"
END = "<!-- end: written by benchmarks/flash_model_tables.py -->"
DRAM_GB = (2.5, 4.0, 5.5)
TOKENS, SEQUENCES, DENSITY, SEED = 256, 1, 0.5, 0  # the trace issue 17 quotes
CALIBRATED = {"dip": "smol_dip_test", "dip_ca": "smol_dipca60_test"}  # DATA/<name>/trace.npz
LABEL = {"dip": "DIP", "dip_ca": "DIP-CA"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "fidelity",
                        help="folder of the SmolLM2 traces (missing ones are made there)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "flash_layout.md")
    args = parser.parse_args()
    start = time.perf_counter()
    try:
        page = read_text(args.out, what="page to write into")
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    if page.count(BEGIN) != 1 or page.count(END) != 1 or page.index(BEGIN) > page.index(END):
        raise SystemExit(f"{args.out}: needs one {BEGIN!r} and, after it, one {END!r}")
    body = probe_section() + locality_section(traces(args.data))
    took = time.perf_counter() - start
    head, rest = page.split(BEGIN)
    text = "\n".join([BEGIN, "", f"Written by `python benchmarks/flash_model_tables.py` "
                      f"({took:.0f} s).", ""] + body + [""])
    atomic_write_text(args.out, head + text + END + rest.split(END, 1)[1])
    print(f"wrote the generated section of {args.out} ({took:.0f} s)")


# ----- 1. the probe against published figures ---------------------------------------------
def probe_section() -> list[str]:
    lines = ["### The flash model against published measurements", "",
             f"`memsim hw probe PRESET` measures a preset's flash model the way fio measures a "
             f"phone (long streams of requests of one size, priced by the function every "
             f"simulated request is priced with). `tests/test_probe.py` pins each row; "
             f"\"~\" means within {WITHIN:.0%}.", "",
             "| preset | measurement | published | memsim | holds | source |",
             "|---|---|---|---|---|---|"]
    for p in PUBLISHED:
        got = p.measured(load_hw(p.preset))
        fmt = "{:,.1f}" if p.metric == "K IOPS" else "{:.2f}"
        published = ("below " if p.relation == "below" else "~") + fmt.format(p.value)
        lines.append(f"| {p.preset} | {p.what} | {published} {p.metric} | "
                     f"{fmt.format(got)} {p.metric} | {'yes' if p.holds(got) else 'no'} | "
                     f"{p.source} |")
    return lines + [""]


# ----- 2-3. locality -------------------------------------------------------------------------
def traces(data: Path) -> dict[str, Trace]:
    """label -> trace at Phi-3-Medium's shapes (dense, synthetic DIP, calibrated DIP/DIP-CA)."""
    phi3 = load_model_shape("phi-3-medium")
    out = {"dense": synth_trace(phi3, TOKENS, DENSITY, seed=SEED, method="dense",
                                num_sequences=SEQUENCES),
           "DIP (synthetic)": synth_trace(phi3, TOKENS, DENSITY, seed=SEED,
                                          num_sequences=SEQUENCES)}
    for method, name in CALIBRATED.items():
        stats = calibrate(Trace.load(ensure_test_trace(data, name)))
        out[f"{LABEL[method]} (calibrated)"] = generate(stats, phi3, TOKENS, seed=SEED,
                                                        num_sequences=SEQUENCES)
    return out


def ensure_test_trace(data: Path, name: str) -> Path:
    """DATA/<name>/trace.npz, made with `memsim eval` as calibration_fidelity.ensure_traces
    makes it (the same flags and windows; the held-out split only)."""
    path = data / name / "trace.npz"
    if not path.is_file():
        flags, share = SOURCES[name.removeprefix("smol_").removesuffix("_test")]
        cmd = [sys.executable, "-m", "memsim", "eval", *flags, "--split", "test", "--windows",
               str(WINDOWS), "--out", str(path.parent), "--no-progress"]
        if share is not None:
            cmd += ["--hw", str(_hw_file(data, share))]
        print("making", path.parent, flush=True)
        subprocess.run(cmd, check=True)
    return path


def with_settings(hw, capacity_GB: float, locality: str):
    return dataclasses.replace(hw, dram=dataclasses.replace(hw.dram, capacity_GB=capacity_GB),
                               flash=dataclasses.replace(hw.flash, locality=locality))


def span_rows() -> list[str]:
    """Per reading, the span of a masked read and the 4 KiB random-read rate it gets."""
    hw = load_hw("flagship")
    lines = ["| reading | span of a masked read: Phi-3-Medium (W_down / up+gate) | "
             "its 4 KiB random reads | SmolLM2-135M (W_down / up+gate) | its 4 KiB random "
             "reads |", "|---|---|---|---|---|"]
    for locality in LOCALITIES:
        cells = []
        for name in ("phi-3-medium", "smollm2-135m"):
            spans = masked_spans(hw, load_model_shape(name), locality)
            gbps = [4096 / hw.flash.request_time_s(1, s, False) / 1e9 for s in spans]
            cells += [" / ".join(size_text(s) for s in spans),
                      " / ".join(f"{g:.2f} GB/s" for g in gbps)]
        lines.append(f"| `{locality}` | " + " | ".join(cells) + " |")
    return lines


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


def size_text(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.2f} GB" if num_bytes >= 1e9 else f"{num_bytes / 1e6:.1f} MB"


def locality_section(phi3: dict[str, Trace]) -> list[str]:
    hw = load_hw("flagship")
    local = hw.flash.local_range_MiB * 2**20
    lines = ["### Locality: which span a masked read is priced within", "",
             f"`flash.locality` decides the span passed to the IOPS curve for masked "
             f"(random) reads on `ufs` flash: the flagship's {hw.flash.local_read_iops_K:g} K "
             f"IOPS hold up to {hw.flash.local_range_MiB:g} MiB, "
             f"{hw.flash.max_read_iops_K:g} K from {hw.flash.far_range_GiB:g} GiB on "
             f"(log-interpolated between).", ""] + span_rows() + [""]
    smol = load_model_shape("smollm2-135m")
    smol_file = weight_file_bytes(smol, hw)
    same = smol_file <= local
    lines += [f"SmolLM2-135M's whole weight file is {size_text(smol_file)} at the "
              f"flagship's precision, {'within' if same else 'beyond'} "
              f"`local_range_MiB`: its figures "
              f"{'are the same under every reading' if same else 'depend on the reading'}.",
              "", f"The Phi-3-Medium verdict on the flagship (tokens/s; ratio to dense "
              f"streaming at the same DRAM; {TOKENS} tokens in {SEQUENCES} "
              f"sequence{'s' if SEQUENCES > 1 else ''}, "
              f"density {DENSITY:g}, LRU, admission off, model order, no merging):", ""]
    header = "| DRAM | trace | dense streaming | " + " | ".join(f"`{r}`" for r in LOCALITIES)
    lines += [header + " |", "|---|---|---|" + "---|" * len(LOCALITIES)]
    verdicts = {}
    for capacity in DRAM_GB:
        dense = {r: simulate(with_settings(hw, capacity, r), None, phi3["dense"]).tokens_per_s
                 for r in LOCALITIES}
        if len({round(v, 9) for v in dense.values()}) != 1:  # whole regions: sequential
            raise SystemExit("dense streaming depends on the locality reading: a bug")
        for label, trace in phi3.items():
            if label == "dense":
                continue
            cells = []
            for r in LOCALITIES:
                tps = simulate(with_settings(hw, capacity, r), None, trace).tokens_per_s
                ratio = tps / dense[r]
                verdicts[(label, capacity, r)] = ratio
                cells.append(f"{tps:.2f} ({ratio:.2f}x)")
            lines.append(f"| {capacity:g} GB | {label} | {dense[LOCALITIES[0]]:.2f} | "
                         + " | ".join(cells) + " |")
    return lines + [""] + verdict_lines(verdicts)


def verdict_lines(verdicts: dict) -> list[str]:
    """Per trace, where the method beats dense under each reading (words from the ratios)."""
    lines = []
    for label in dict.fromkeys(k[0] for k in verdicts):
        parts = []
        for r in LOCALITIES:
            ratios = [verdicts[(label, c, r)] for c in DRAM_GB]
            wins = [c for c, x in zip(DRAM_GB, ratios) if x > 1]
            where = ("at every DRAM size" if len(wins) == len(DRAM_GB) else
                     "at no DRAM size" if not wins else
                     "at " + ", ".join(f"{c:g}" for c in wins) + " GB")
            parts.append(f"`{r}`: beats dense {where} ({', '.join(f'{x:.2f}x' for x in ratios)})")
        lines.append(f"- {label}: " + "; ".join(parts) + ".")
    return lines


if __name__ == "__main__":
    sys.exit(main())
