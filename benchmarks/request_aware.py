"""Request-aware DIP (dip_ra) against DIP, DIP-CA and dense streaming: writes the generated part
of docs/request_aware.md and docs/figures/request_aware_throughput_vs_perplexity.png (issue 20).

SmolLM2-135M, real masks: `memsim eval` runs on held-out plays (`--split test`, 8 windows x
256 tokens), flagship preset with DRAM 36-60 MB. DIP and dense do not depend on the DRAM (one
trace each); DIP-CA and dip_ra read the cache, so each DRAM size has its own traces (dip_ra
also prices reads on that phone's flash: model order, no merge gap). DIP and DIP-CA are shown
at their best flash access (layout identity / frequency / coactivation, built on 4 windows
of other plays, x merge gap 0 / 4 KiB); dip_ra as it chose (the flash it was made for). Every figure is
memsim's simulation of the trace (exact request counting), never the method's own estimate.
Phi-3-Medium: calibrated traces (`memsim trace calibrate`, synthetic) made from the SmolLM2
traces at the DRAM size whose cache holds about the same share of the MLP, flagship and
midrange presets.

Resumable: every trace is a folder under --data, made once (an interrupted run leaves no
results.json and is made again); rerunning redoes only the simulations and the doc.
    python benchmarks/request_aware.py [--data runs/request_aware] [--out docs/request_aware.md]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from dram_points import capacity_for, with_dram  # same folder: the same DRAM points
from run_info import machine, machine_text, run_main

from memsim import load_hw, load_model_shape, simulate
from memsim.core.files import (
    atomic_write_text,
    atomic_write_with,
    check_output_dir,
    check_output_file,
)
from memsim.core.schema import to_plain
from memsim.hw.layouts import build_layout
from memsim.sim import plan_dram
from memsim.traces import MaskGroup, Trace

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- everything below is written by benchmarks/request_aware.py -->"
PRESET = "flagship"  # the SmolLM2 phone
DRAM_MB = (36, 42, 48, 54, 60)
WEIGHTS = (0.5, 1.0, 2.0)
GAMMA = 0.3  # DIP-CA's gamma in the demo (memsim/demo_sweep.yaml); dip_ra builds on it
DENSITY = 0.5
WINDOWS, WINDOW_LEN = 8, 256
TRAIN_WINDOWS = 4  # windows of other plays (train split) the layouts are built on
LAYOUTS = ("identity", "frequency", "coactivation")
GAPS_KIB = (0.0, 4.0)
ACCESS = [(layout, gap) for layout in LAYOUTS for gap in GAPS_KIB]
PHI3_FRACTIONS = (0.3, 0.6)  # cache share of the MLP at Phi-3-Medium shapes
PHI3_PRESETS = ("flagship", "midrange")
CAL_TOKENS, CAL_SEQUENCES, CAL_SEED = 256, 2, 2  # memsim trace calibrate's Phi-3-Medium traces
FIGURE = "figures/request_aware_throughput_vs_perplexity.png"


# ------------------------------------------------------------------ traces (resumable)
def ensure_eval(data: Path, name: str, flags: list[str]) -> bool:
    """Make the `memsim eval` run `name` when its results are missing; whether it was made."""
    out = data / name
    made = not ((out / "results.json").is_file() and (out / "trace.npz").is_file())
    if made:
        density = [] if "dense" in flags else ["--density", str(DENSITY)]
        cmd = [sys.executable, "-m", "memsim", "eval", "--windows", str(WINDOWS),
               "--window-len", str(WINDOW_LEN), "--split", "test", *density, *flags,
               "--out", str(out), "--no-progress"]  # later flags win: `flags` may override
        print("making", out, flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        print(f"  {time.perf_counter() - start:.0f} s", flush=True)
    return made


def hw_file(data: Path, mb: int) -> Path:
    """The flagship preset with `mb` MB of DRAM, as a YAML file memsim eval can read."""
    path = data / "hw" / f"{PRESET}_{mb}MB.yaml"
    if not path.is_file():
        hw = with_dram(load_hw(PRESET), mb / 1e3)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, yaml.safe_dump(to_plain(hw), sort_keys=False))
    return path


def with_access(hw, layout: str | None, gap_KiB: float):
    return dataclasses.replace(hw, flash=dataclasses.replace(hw.flash, layout=layout,
                                                             merge_gap_KiB=float(gap_KiB)))


def access_label(hw) -> str:
    """"coactivation, gap 4 KiB": the layout (its file's name; identity = model order) and
    the merge gap `hw` reads with."""
    layout = "identity" if hw.flash.layout is None else Path(hw.flash.layout).stem
    return f"{layout}, gap {hw.flash.merge_gap_KiB:g} KiB"


def ra_name(weight: float, mb: int) -> str:
    return f"dip_ra_w{weight:g}_{mb}MB"


def evals(data: Path) -> dict[str, list[str]]:
    """Every SmolLM2 run the doc needs (folder name -> `memsim eval` flags), cheapest first."""
    out = {"dense": ["--method", "dense"], "dip": ["--method", "dip"],
           "dip_train": ["--method", "dip", "--split", "train", "--windows",
                         str(TRAIN_WINDOWS)]}
    for mb in DRAM_MB:
        out[f"dip_ca_{mb}MB"] = ["--method", "dip_ca", "--gamma", str(GAMMA),
                                 "--hw", str(hw_file(data, mb))]
    for weight in WEIGHTS:
        for mb in DRAM_MB:
            out[ra_name(weight, mb)] = ["--method", "dip_ra", "--gamma", str(GAMMA),
                                        "--request-weight", str(weight),
                                        "--hw", str(hw_file(data, mb))]
    return out


def make_traces(data: Path) -> dict:
    """Make the missing runs; how many runs there are, how many this call made, and the
    wall seconds each took when it was made (its results.json)."""
    made = sum(ensure_eval(data, name, flags) for name, flags in evals(data).items())
    wall = [float(json.loads((data / name / "results.json").read_text())["wall_s"])
            for name in evals(data)]
    return {"runs": len(wall), "made": made, "wall_s": sum(wall)}


def layouts(data: Path) -> dict[str, str | None]:
    """identity (None) and the other layouts, built on DIP's train-split trace."""
    out: dict[str, str | None] = {"identity": None}
    trace_path = data / "dip_train" / "trace.npz"
    for method in LAYOUTS[1:]:
        path = data / "layouts" / f"{method}.npz"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            build_layout(Trace.load(trace_path), method, trace_path=str(trace_path)).save(path)
        out[method] = str(path)
    return out


def perplexity(folder: Path) -> float:
    return float(json.loads((folder / "results.json").read_text())["perplexity"])


# ------------------------------------------------------------------ SmolLM2 rows
@dataclasses.dataclass
class Row:
    method: str  # dense, dip, dip_ca, dip_ra
    label: str
    dram: str  # the DRAM point
    perplexity: float | None
    result: object  # memsim Result
    weight: float | None = None
    source_perplexity: float | None = None  # calibrated traces: the SmolLM2 source's

    @property
    def tps(self) -> float:
        return self.result.tokens_per_s


def best_access(hw, trace: Trace, access: list[tuple[str | None, float]]) -> tuple[str, object]:
    """(label, result) of the fastest flash access among `access` ((layout file, gap))."""
    best = None
    for layout, gap in access:
        read_with = with_access(hw, layout, gap)
        r = simulate(read_with, None, trace)
        if best is None or r.tokens_per_s > best[1].tokens_per_s:
            best = (access_label(read_with), r)
    return best


def smollm2_rows(data: Path) -> list[Row]:
    paths = layouts(data)
    access = [(paths[layout], gap) for layout, gap in ACCESS]
    dense, dip = Trace.load(data / "dense" / "trace.npz"), Trace.load(data / "dip" / "trace.npz")
    ppl_dense, ppl_dip = perplexity(data / "dense"), perplexity(data / "dip")
    rows = []
    for mb in DRAM_MB:
        hw = with_dram(load_hw(PRESET), mb / 1e3)
        point = f"{mb} MB"
        rows.append(Row("dense", "dense streaming (LRU cache)", point, ppl_dense,
                        simulate(hw, None, dense)))
        label, r = best_access(hw, dip, access)
        rows.append(Row("dip", f"DIP ({label})", point, ppl_dip, r))
        ca = data / f"dip_ca_{mb}MB"
        label, r = best_access(hw, Trace.load(ca / "trace.npz"), access)
        rows.append(Row("dip_ca", f"DIP-CA ({label})", point, perplexity(ca), r))
        made_for = load_hw(str(hw_file(data, mb))).flash  # the flash its eval was given
        read_with = with_access(hw, made_for.layout, made_for.merge_gap_KiB)
        for weight in WEIGHTS:  # read as it chose: the layout and gap it was made for
            ra = data / ra_name(weight, mb)
            rows.append(Row("dip_ra", f"dip_ra, weight {weight:g} ({access_label(read_with)})",
                            point, perplexity(ra), simulate(read_with, None, ra / "trace.npz"),
                            weight))
    return rows


HEADER = ("| DRAM | method | perplexity | hit rate | requests/token | payload MB/token | "
          "device MB/token | tokens/s | vs dense |\n|---|---|---|---|---|---|---|---|---|")


def table(rows: list[Row]) -> list[str]:
    lines = [HEADER]
    dense = {r.dram: r.tps for r in rows if r.method == "dense"}
    for r in rows:
        ppl = (f"{r.perplexity:.2f}" if r.perplexity is not None else
               f"synthetic (source {r.source_perplexity:.2f})")
        res = r.result
        lines.append(f"| {r.dram} | {r.label} | {ppl} | {res.hit_rate:.3f} | "
                     f"{res.flash_requests_per_token:,.0f} | "
                     f"{res.flash_bytes_per_token / 1e6:,.2f} | "
                     f"{res.flash_device_bytes_per_token / 1e6:,.2f} | {r.tps:,.2f} | "
                     f"{r.tps / dense[r.dram]:.2f}x |")
    return lines


def overtakes(wins: int, points: int) -> str:
    """The verdict on dense streaming, from the count of DRAM points where it is beaten."""
    return (f"overtakes dense streaming at {wins} of {points} DRAM points" if wins
            else "does not overtake dense streaming at any DRAM point")


def verdict(rows: list[Row], scope: str) -> list[str]:
    """Whether dip_ra overtakes dense streaming at any DRAM point, at what perplexity; where
    not, how much of DIP-CA's gap to dense it closes, and what its reads cost."""
    points = list(dict.fromkeys(r.dram for r in rows))
    by = {(r.dram, r.method, r.weight): r for r in rows}
    wins = [r for r in rows if r.method == "dip_ra" and r.tps > by[(r.dram, "dense", None)].tps]
    out = [f"**{scope}: dip_ra {overtakes(len({r.dram for r in wins}), len(points))}.**"]
    for r in wins:
        d, ca = by[(r.dram, "dense", None)], by[(r.dram, "dip_ca", None)]
        out.append(f"- {r.dram}, weight {r.weight:g}: {r.tps:.2f} tokens/s against dense "
                   f"{d.tps:.2f} ({r.tps / d.tps:.2f}x) and DIP-CA {ca.tps:.2f}, at perplexity "
                   f"{r.perplexity:.2f}: {r.perplexity - d.perplexity:+.2f} against dense "
                   f"({d.perplexity:.2f}), {r.perplexity - ca.perplexity:+.2f} against DIP-CA "
                   f"({ca.perplexity:.2f}). It reads {mb(r, 'device')} MB in "
                   f"{r.result.flash_requests_per_token:,.0f} requests per token, dense "
                   f"{mb(d, 'device')} MB in {d.result.flash_requests_per_token:,.0f}.")
    for point in points:
        d, ca = by[(point, "dense", None)], by[(point, "dip_ca", None)]
        best = max((r for r in rows if r.dram == point and r.method == "dip_ra"),
                   key=lambda r: r.tps)
        if best.tps > d.tps:
            continue
        gap = d.tps - ca.tps
        if best.tps <= ca.tps:
            closed = ", no faster than DIP-CA"
        elif gap > 0:
            closed = f", closing {100 * (best.tps - ca.tps) / gap:.0f}% of DIP-CA's gap to dense"
        else:
            closed = ""
        out.append(f"- {point}: the fastest dip_ra (weight {best.weight:g}) makes "
                   f"{best.tps:.2f} tokens/s against DIP-CA {ca.tps:.2f} and dense {d.tps:.2f} "
                   f"({best.tps / d.tps:.2f}x){closed}, at perplexity {best.perplexity:.2f} "
                   f"(DIP-CA {ca.perplexity:.2f}, dense {d.perplexity:.2f}). Why not more: it "
                   f"still reads {mb(best, 'device')} MB of pages for {mb(best, 'payload')} MB "
                   f"of payload, in {best.result.flash_requests_per_token:,.0f} requests per "
                   f"token; dense reads {mb(d, 'device')} MB in "
                   f"{d.result.flash_requests_per_token:,.0f}.")
    return out


def mb(row: Row, what: str) -> str:
    value = (row.result.flash_device_bytes_per_token if what == "device"
             else row.result.flash_bytes_per_token)
    return f"{value / 1e6:,.2f}"


def phi3_summary(rows: list[Row], scope: str) -> list[str]:
    """Per DRAM point, the fastest dip_ra weight against dense streaming and DIP-CA."""
    points = list(dict.fromkeys(r.dram for r in rows))
    by = {(r.dram, r.method, r.weight): r for r in rows}
    lines, wins = [], 0
    for point in points:
        d, ca = by[(point, "dense", None)], by[(point, "dip_ca", None)]
        best = max((r for r in rows if r.dram == point and r.method == "dip_ra"),
                   key=lambda r: r.tps)
        wins += best.tps > d.tps
        word = "faster" if best.tps > ca.tps else "not faster"
        lines.append(f"- {point}: the fastest dip_ra (weight {best.weight:g}) makes "
                     f"{best.tps:.2f} tokens/s, {best.tps / d.tps:.2f}x dense streaming "
                     f"({d.tps:.2f}) and {best.tps / ca.tps:.2f}x DIP-CA ({ca.tps:.2f}: "
                     f"{word} than DIP-CA); device {mb(best, 'device')} MB/token against "
                     f"DIP-CA's {mb(ca, 'device')} MB. Its SmolLM2 source had perplexity "
                     f"{best.source_perplexity:.2f} (DIP-CA's {ca.source_perplexity:.2f}, "
                     f"dense {d.source_perplexity:.2f}).")
    others = {m: sum(by[(p, m, None)].tps > by[(p, "dense", None)].tps for p in points)
              for m in ("dip", "dip_ca")}
    head = (f"**{scope}: dip_ra {overtakes(wins, len(points))}** (DIP overtakes it at "
            f"{others['dip']}, DIP-CA at {others['dip_ca']}).")
    return [head] + lines


def eval_seconds(data: Path) -> dict[str, float]:
    """Mean evaluation seconds of DIP-CA's and dip_ra's runs, as each run recorded it."""
    def mean(names: list[str]) -> float:
        return float(np.mean([json.loads((data / n / "results.json").read_text())["eval_s"]
                              for n in names]))
    return {"dip_ca": mean([f"dip_ca_{mb}MB" for mb in DRAM_MB]),
            "dip_ra": mean([ra_name(w, mb) for w in WEIGHTS for mb in DRAM_MB])}


def eval_times(seconds: dict[str, float]) -> str:
    ca, ra = seconds["dip_ca"], seconds["dip_ra"]
    return (f"Evaluation time per run ({WINDOWS} windows), as each run's results.json recorded "
            f"it when its trace was made (the machine may have been shared with other jobs): "
            f"DIP-CA {ca:.0f} s, dip_ra {ra:.0f} s on average ({ra / ca:.1f}x).")


# ------------------------------------------------------------------ the figure
def figure(rows: list[Row], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(8.5, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    points = list(dict.fromkeys(r.dram for r in rows))
    sizes = {p: 25 + 30 * i for i, p in enumerate(points)}
    series = [("dense", None, "#222222", "o", "dense streaming"), ("dip", None, "C3", "D", "DIP"),
              ("dip_ca", None, "C4", "v", "DIP-CA")]
    series += [("dip_ra", w, color, "s", f"dip_ra, weight {w:g}")
               for w, color in zip(WEIGHTS, ("C0", "C2", "C1"))]
    for method, weight, color, marker, label in series:
        sel = [r for r in rows if r.method == method and r.weight == weight]
        x = [r.perplexity for r in sel]
        y = [r.tps for r in sel]
        ax.plot(x, y, color=color, lw=1, alpha=0.6)
        ax.scatter(x, y, s=[sizes[r.dram] for r in sel], color=color, marker=marker,
                   label=label, zorder=3, edgecolors="white", linewidths=0.5)
    for r in rows:
        if r.method == "dense":
            ax.annotate(r.dram, (r.perplexity, r.tps), textcoords="offset points",
                        xytext=(6, -3), fontsize=7, color="#444444")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("perplexity (held-out plays; log scale)")
    ax.set_ylabel("tokens/s (memsim, flagship)")
    ax.set_title("SmolLM2-135M, DRAM " + ", ".join(points) + " (marker grows with DRAM)",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, lambda fh: fig.savefig(fh, format="png", dpi=110))


# ------------------------------------------------------------------ Phi-3-Medium
def cache_share(mb: int) -> float:
    """Share of SmolLM2's MLP the flagship's cache holds at `mb` MB (256-token windows)."""
    model, hw = load_model_shape("smollm2-135m"), with_dram(load_hw(PRESET), mb / 1e3)
    L, H, I = model.num_hidden_layers, model.hidden_size, model.intermediate_size
    groups = [MaskGroup.from_mask("up_gate", np.zeros((1, L, H), bool), I, 2, "up"),
              MaskGroup.from_mask("down", np.zeros((1, L, I), bool), H, 1, "down")]
    mlp_bytes = L * 3 * H * I * hw.precision.mlp_bits / 8
    return plan_dram(hw, model, groups, WINDOW_LEN).cache_budget_bytes / mlp_bytes


def calibrated(data: Path, source: str) -> Trace:
    out = data / "phi3" / f"{source}.npz"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "memsim", "trace", "calibrate", "--from",
                        str(data / source / "trace.npz"), "--model", "phi-3-medium", "--tokens",
                        str(CAL_TOKENS), "--sequences", str(CAL_SEQUENCES), "--seed",
                        str(CAL_SEED), "--out", str(out)],
                       check=True, capture_output=True)
    return Trace.load(out)


def phi3_rows(data: Path) -> tuple[list[Row], list[tuple[float, int, float]]]:
    """The rows, and per cache fraction (fraction, SmolLM2 DRAM MB its traces come from, the
    share of SmolLM2's MLP that DRAM caches)."""
    model = load_model_shape("phi-3-medium")
    shares = {mb: cache_share(mb) for mb in DRAM_MB}
    rows, sources_of = [], []
    for fraction in PHI3_FRACTIONS:
        mb = min(DRAM_MB, key=lambda m: abs(shares[m] - fraction))  # the source DRAM point
        sources_of.append((fraction, mb, shares[mb]))
        sources = {("dense", None): "dense", ("dip", None): "dip",
                   ("dip_ca", None): f"dip_ca_{mb}MB"}
        sources.update({("dip_ra", w): ra_name(w, mb) for w in WEIGHTS})
        for preset in PHI3_PRESETS:
            base = load_hw(preset)
            hw = with_dram(base, capacity_for(base, model, fraction,
                                              CAL_TOKENS // CAL_SEQUENCES))
            point = f"{preset}, {hw.dram.capacity_GB:.2f} GB (~{fraction:.0%})"
            for (method, weight), source in sources.items():
                trace = calibrated(data, source)
                if method == "dense":
                    label, r = "dense streaming (LRU cache)", simulate(hw, None, trace)
                else:  # its masks were not chosen for these pages: every method's best gap
                    best = None
                    for gap in GAPS_KIB:
                        res = simulate(with_access(hw, None, gap), None, trace)
                        if best is None or res.tokens_per_s > best[1].tokens_per_s:
                            best = (access_label(with_access(hw, None, gap)), res)
                    name = (f"dip_ra, weight {weight:g}" if method == "dip_ra"
                            else {"dip": "DIP", "dip_ca": "DIP-CA"}[method])
                    label, r = f"{name} ({best[0]})", best[1]
                rows.append(Row(method, label, point, None, r, weight,
                                perplexity(data / source)))
    return rows, sources_of


# ------------------------------------------------------------------ the doc
@dataclasses.dataclass
class Report:
    """Everything the generated part of the doc shows."""

    smol: list[Row]
    phi3: list[Row]
    phi3_sources: list[tuple[float, int, float]]  # (cache fraction, SmolLM2 MB, its share)
    eval_s: dict[str, float]  # mean evaluation seconds of DIP-CA's and dip_ra's runs
    evals: dict  # make_traces(): runs, made, wall_s
    minutes: float  # this run
    machine: dict  # run_info.machine()


def render(report: Report) -> str:
    """The generated part of docs/request_aware.md (from MARKER on)."""
    ev = report.evals
    body = [MARKER, "",
            f"Generated by `python benchmarks/request_aware.py` in {report.minutes:.1f} min on "
            f"{machine_text(report.machine)}. Of the {ev['runs']} evaluations behind it, "
            f"{ev['made']} made by this run and {ev['runs'] - ev['made']} reused; "
            f"making them took {ev['wall_s'] / 3600:.1f} h in all, as each recorded it.",
            "", f"## SmolLM2-135M, real masks, {PRESET}", "",
            f"{WINDOWS} windows x {WINDOW_LEN} tokens of held-out plays (`--split test`), MLP "
            f"density {DENSITY:g}, DIP-CA gamma {GAMMA:g} (dip_ra builds on it), dip_ra weights "
            + ", ".join(f"{w:g}" for w in WEIGHTS) + ". DIP and DIP-CA at their best flash "
            "access: layout " + " / ".join(LAYOUTS) + " x merge gap "
            + " / ".join(f"{g:g}" for g in GAPS_KIB) + f" KiB (the layouts built on "
            f"{TRAIN_WINDOWS} windows of other plays, `--split train`); dip_ra read with the "
            "layout and gap it chose for. `vs dense`: tokens/s over dense streaming's at the "
            "same DRAM.", ""]
    scope = f"SmolLM2, {PRESET}, DRAM " + ", ".join(dict.fromkeys(r.dram for r in report.smol))
    body += table(report.smol) + [""] + verdict(report.smol, scope)
    body += ["", eval_times(report.eval_s), ""]
    body += ["## Throughput against perplexity", "", f"![throughput vs perplexity]({FIGURE})",
             "", "Each series is one line through its DRAM sizes (the marker grows with the DRAM; "
             "the dense points are labelled with theirs).", ""]
    notes = [f"cache ~{fraction:.0%} of the MLP: DIP-CA and dip_ra traces made at SmolLM2 "
             f"{mb} MB (cache {share:.0%} of its MLP)" for fraction, mb, share in
             report.phi3_sources]
    body += ["## Phi-3-Medium shapes, calibrated traces (synthetic)", "",
             f"Made by `memsim trace calibrate` from the SmolLM2 traces above "
             f"({CAL_SEQUENCES} sequences x {CAL_TOKENS // CAL_SEQUENCES} tokens, seed "
             f"{CAL_SEED}): " + "; ".join(notes) + ". The generator keeps per-layer "
             "densities, frequency profiles, reuse distances, co-activation groups and "
             "per-token persistence ([calibrated_traces.md](calibrated_traces.md)); it does not "
             "keep which columns share a flash page, so dip_ra's request-aware choice at "
             "SmolLM2's page geometry is carried over only through those statistics (its hit "
             "rates and reuse), not re-made for Phi-3-Medium's pages; every method is "
             "shown at its best merge gap (" + " / ".join(f"{g:g}" for g in GAPS_KIB)
             + " KiB, model order). No perplexity of their own (the masks are synthetic): the "
             "perplexity column gives the SmolLM2 source's, the accuracy those statistics "
             "came with.", ""]
    body += table(report.phi3) + [""]
    for preset in PHI3_PRESETS:
        sel = [r for r in report.phi3 if r.dram.startswith(preset)]
        body += phi3_summary(sel, f"Phi-3-Medium (synthetic), {preset}") + [""]
    return "\n".join(body) + "\n"


def render_example() -> str:
    """The generated part of the doc from a small fixture of fake results
    (tests/test_generated_docs.py)."""
    from types import SimpleNamespace

    def example_row(method, dram, tps, ppl, weight=None, label=None):
        result = SimpleNamespace(tokens_per_s=tps, hit_rate=0.0417 * tps % 0.97,
                                 flash_requests_per_token=13.0 * tps,
                                 flash_bytes_per_token=1.7e5 * tps,
                                 flash_device_bytes_per_token=3.3e5 * tps)
        return Row(method, label or f"{method} (fixture)", dram, ppl, result, weight)

    smol = []
    for dram, dense_tps, ca_tps, ra_tps in (("37 MB", 66.1, 57.3, (58.9, 61.7, 63.3)),
                                            ("59 MB", 111.9, 104.7, (131.9, 153.1, 167.3))):
        smol += [example_row("dense", dram, dense_tps, 47.1),
                 example_row("dip", dram, ca_tps - 3.9, 66.3),
                 example_row("dip_ca", dram, ca_tps, 71.9)]
        smol += [example_row("dip_ra", dram, tps, 77.7 + 9.1 * i, w)
                 for i, (w, tps) in enumerate(zip(WEIGHTS, ra_tps))]
    phi3 = []
    for dram, dense_tps, ca_tps, ra_tps in (("flagship, 3.17 GB (~31%)", 1.03, 1.37,
                                             (1.38, 1.39, 1.41)),
                                            ("midrange, 4.73 GB (~61%)", 0.91, 0.87,
                                             (0.83, 0.84, 0.89))):
        rows = [example_row("dense", dram, dense_tps, None), example_row("dip", dram, 0.97, None),
                example_row("dip_ca", dram, ca_tps, None)]
        rows += [example_row("dip_ra", dram, tps, None, w) for w, tps in zip(WEIGHTS, ra_tps)]
        for r in rows:
            r.source_perplexity = 49.3
        phi3 += rows
    report = Report(smol, phi3, [(0.31, 43, 0.29), (0.61, 53, 0.57)],
                    {"dip_ca": 141.0, "dip_ra": 247.0},
                    {"runs": 23, "made": 1, "wall_s": 9876.0}, 0.7,
                    {"cpus": 7, "load": 3.3, "load_window_min": 11})
    return render(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "request_aware",
                        help="folder of the traces (missing ones are made there)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "request_aware.md")
    args = parser.parse_args()
    check_output_file(args.out, "--out")  # before an hour of evaluations, not after
    check_output_dir(args.data, "--data")
    start = time.perf_counter()
    made = make_traces(args.data)
    smol = smollm2_rows(args.data)
    figure(smol, args.out.parent / FIGURE)
    phi3, sources_of = phi3_rows(args.data)
    report = Report(smol, phi3, sources_of, eval_seconds(args.data), made,
                    (time.perf_counter() - start) / 60, machine())
    head = args.out.read_text().split(MARKER)[0] if args.out.exists() else ""
    atomic_write_text(args.out, head + render(report))
    print(f"wrote {args.out} and {args.out.parent / FIGURE} ({report.minutes:.1f} min)")


if __name__ == "__main__":
    run_main(main)
