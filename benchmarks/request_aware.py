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
from flash_layout_study import capacity_for, with_dram  # same folder: the same DRAM points

from memsim import load_hw, load_model_shape, simulate
from memsim.core.files import atomic_write_text, atomic_write_with
from memsim.core.schema import to_plain
from memsim.hw.layouts import build_layout
from memsim.sim import plan_dram
from memsim.traces import MaskGroup, Trace

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- everything below is written by benchmarks/request_aware.py -->"
DRAM_MB = (36, 42, 48, 54, 60)
WEIGHTS = (0.5, 1.0, 2.0)
GAMMA = 0.3  # DIP-CA's gamma in the demo (memsim/demo_sweep.yaml); dip_ra builds on it
DENSITY = 0.5
WINDOWS, WINDOW_LEN = 8, 256
LAYOUTS = ("identity", "frequency", "coactivation")
ACCESS = [(layout, gap) for layout in LAYOUTS for gap in (0.0, 4.0)]
PHI3_FRACTIONS = (0.3, 0.6)  # cache share of the MLP at Phi-3-Medium shapes
PHI3_PRESETS = ("flagship", "midrange")
FIGURE = "figures/request_aware_throughput_vs_perplexity.png"


# ------------------------------------------------------------------ traces (resumable)
def ensure_eval(data: Path, name: str, flags: list[str]) -> Path:
    """The folder of a `memsim eval` run, made when its results are missing."""
    out = data / name
    if not ((out / "results.json").is_file() and (out / "trace.npz").is_file()):
        density = [] if "dense" in flags else ["--density", str(DENSITY)]
        cmd = [sys.executable, "-m", "memsim", "eval", "--windows", str(WINDOWS),
               "--window-len", str(WINDOW_LEN), "--split", "test", *density, *flags,
               "--out", str(out), "--no-progress"]  # later flags win: `flags` may override
        print("making", out, flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        print(f"  {time.perf_counter() - start:.0f} s", flush=True)
    return out


def hw_file(data: Path, mb: int) -> Path:
    """The flagship preset with `mb` MB of DRAM, as a YAML file memsim eval can read."""
    path = data / "hw" / f"flagship_{mb}MB.yaml"
    if not path.is_file():
        hw = with_dram(load_hw("flagship"), mb / 1e3)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, yaml.safe_dump(to_plain(hw), sort_keys=False))
    return path


def with_access(hw, layout: str | None, gap_KiB: float):
    return dataclasses.replace(hw, flash=dataclasses.replace(hw.flash, layout=layout,
                                                             merge_gap_KiB=float(gap_KiB)))


def ra_name(weight: float, mb: int) -> str:
    return f"dip_ra_w{weight:g}_{mb}MB"


def make_traces(data: Path) -> None:
    """Every SmolLM2 run the doc needs, cheapest first."""
    ensure_eval(data, "dense", ["--method", "dense"])
    ensure_eval(data, "dip", ["--method", "dip"])
    ensure_eval(data, "dip_train", ["--method", "dip", "--split", "train", "--windows", "4"])
    for mb in DRAM_MB:
        ensure_eval(data, f"dip_ca_{mb}MB", ["--method", "dip_ca", "--gamma", str(GAMMA),
                                            "--hw", str(hw_file(data, mb))])
    for weight in WEIGHTS:
        for mb in DRAM_MB:
            ensure_eval(data, ra_name(weight, mb),
                        ["--method", "dip_ra", "--gamma", str(GAMMA), "--request-weight",
                         str(weight), "--hw", str(hw_file(data, mb))])


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


def best_access(hw, trace: Trace, paths: dict) -> tuple[str, object]:
    """(label, result) of the fastest flash access among ACCESS."""
    best = None
    for layout, gap in ACCESS:
        r = simulate(with_access(hw, paths[layout], gap), None, trace)
        if best is None or r.tokens_per_s > best[1].tokens_per_s:
            best = (f"{layout}, gap {gap:g} KiB", r)
    return best


def smollm2_rows(data: Path) -> list[Row]:
    paths = layouts(data)
    dense, dip = Trace.load(data / "dense" / "trace.npz"), Trace.load(data / "dip" / "trace.npz")
    ppl_dense, ppl_dip = perplexity(data / "dense"), perplexity(data / "dip")
    rows = []
    for mb in DRAM_MB:
        hw = with_dram(load_hw("flagship"), mb / 1e3)
        point = f"{mb} MB"
        rows.append(Row("dense", "dense streaming (LRU cache)", point, ppl_dense,
                        simulate(hw, None, dense)))
        label, r = best_access(hw, dip, paths)
        rows.append(Row("dip", f"DIP ({label})", point, ppl_dip, r))
        ca = data / f"dip_ca_{mb}MB"
        label, r = best_access(hw, Trace.load(ca / "trace.npz"), paths)
        rows.append(Row("dip_ca", f"DIP-CA ({label})", point, perplexity(ca), r))
        for weight in WEIGHTS:
            ra = data / ra_name(weight, mb)
            rows.append(Row("dip_ra", f"dip_ra, weight {weight:g} (identity, gap 0 KiB)",
                            point, perplexity(ra), simulate(hw, None, ra / "trace.npz"),
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


def verdict(rows: list[Row], scope: str) -> list[str]:
    """Whether dip_ra overtakes dense streaming at any DRAM point, at what perplexity; where
    not, how much of DIP-CA's gap to dense it closes, and what its reads cost."""
    points = list(dict.fromkeys(r.dram for r in rows))
    by = {(r.dram, r.method, r.weight): r for r in rows}
    wins = [r for r in rows if r.method == "dip_ra" and r.tps > by[(r.dram, "dense", None)].tps]
    out = []
    if wins:
        out.append(f"**{scope}: dip_ra overtakes dense streaming at "
                   f"{len({r.dram for r in wins})} of {len(points)} DRAM points.**")
    else:
        out.append(f"**{scope}: dip_ra does not overtake dense streaming at any DRAM point.**")
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
        closed = ("" if gap <= 0 else
                  f", closing {100 * (best.tps - ca.tps) / gap:.0f}% of DIP-CA's gap to dense")
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
    head = (f"**{scope}: dip_ra overtakes dense streaming at {wins} of {len(points)} DRAM "
            f"points** (DIP at {others['dip']}, DIP-CA at {others['dip_ca']}).")
    return [head] + lines


def eval_times(data: Path) -> str:
    """Mean evaluation seconds of DIP-CA's and dip_ra's runs (loaded shared machine)."""
    def mean(names: list[str]) -> float:
        return float(np.mean([json.loads((data / n / "results.json").read_text())["eval_s"]
                              for n in names]))
    ca = mean([f"dip_ca_{mb}MB" for mb in DRAM_MB])
    ra = mean([ra_name(w, mb) for w in WEIGHTS for mb in DRAM_MB])
    return (f"Evaluation time per run ({WINDOWS} windows, shared and loaded 2-core machine): "
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
    model, hw = load_model_shape("smollm2-135m"), with_dram(load_hw("flagship"), mb / 1e3)
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
                        "256", "--sequences", "2", "--seed", "2", "--out", str(out)],
                       check=True, capture_output=True)
    return Trace.load(out)


def phi3_rows(data: Path) -> tuple[list[Row], list[str]]:
    model = load_model_shape("phi-3-medium")
    shares = {mb: cache_share(mb) for mb in DRAM_MB}
    rows, notes = [], []
    for fraction in PHI3_FRACTIONS:
        mb = min(DRAM_MB, key=lambda m: abs(shares[m] - fraction))  # the source DRAM point
        notes.append(f"cache ~{fraction:.0%} of the MLP: DIP-CA and dip_ra traces made at "
                     f"SmolLM2 {mb} MB (cache {shares[mb]:.0%} of its MLP)")
        sources = {("dense", None): "dense", ("dip", None): "dip",
                   ("dip_ca", None): f"dip_ca_{mb}MB"}
        sources.update({("dip_ra", w): ra_name(w, mb) for w in WEIGHTS})
        for preset in PHI3_PRESETS:
            base = load_hw(preset)
            hw = with_dram(base, capacity_for(base, model, fraction, 128))
            point = f"{preset}, {hw.dram.capacity_GB:.2f} GB (~{fraction:.0%})"
            for (method, weight), source in sources.items():
                trace = calibrated(data, source)
                if method == "dense":
                    label, r = "dense streaming (LRU cache)", simulate(hw, None, trace)
                else:  # its masks were not chosen for these pages: every method's best gap
                    best = None
                    for gap in (0.0, 4.0):
                        res = simulate(with_access(hw, None, gap), None, trace)
                        if best is None or res.tokens_per_s > best[1].tokens_per_s:
                            best = (f"identity, gap {gap:g} KiB", res)
                    name = (f"dip_ra, weight {weight:g}" if method == "dip_ra"
                            else {"dip": "DIP", "dip_ca": "DIP-CA"}[method])
                    label, r = f"{name} ({best[0]})", best[1]
                rows.append(Row(method, label, point, None, r, weight,
                                perplexity(data / source)))
    return rows, notes


# ------------------------------------------------------------------ the doc
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "request_aware",
                        help="folder of the traces (missing ones are made there)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "request_aware.md")
    args = parser.parse_args()
    if not args.out.parent.is_dir():
        parser.error(f"--out: no such folder {args.out.parent}")
    args.data.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    make_traces(args.data)
    smol = smollm2_rows(args.data)
    figure(smol, args.out.parent / FIGURE)
    phi3, notes = phi3_rows(args.data)
    minutes = (time.perf_counter() - start) / 60
    head = args.out.read_text().split(MARKER)[0] if args.out.exists() else ""
    body = [MARKER, "",
            f"Generated by `python benchmarks/request_aware.py` in {minutes:.1f} min on a shared "
            "2-core machine (traces already made are reused; making them all takes hours there).",
            "", "## 1. SmolLM2-135M, real masks, flagship", "",
            f"{WINDOWS} windows x {WINDOW_LEN} tokens of held-out plays (`--split test`), MLP "
            f"density {DENSITY}, DIP-CA gamma {GAMMA} (dip_ra builds on it), dip_ra weights "
            + ", ".join(f"{w:g}" for w in WEIGHTS) + ". DIP and DIP-CA at their best flash "
            "access: layout " + " / ".join(dict.fromkeys(a for a, _ in ACCESS)) + " x merge gap "
            + " / ".join(f"{g:g}" for g in dict.fromkeys(g for _, g in ACCESS)) + " KiB (the "
            "layouts built on 4 windows of other plays). `vs dense`: tokens/s over "
            "dense streaming's at the same DRAM.", ""]
    scope = "SmolLM2, flagship, DRAM " + ", ".join(str(m) for m in DRAM_MB) + " MB"
    body += table(smol) + [""] + verdict(smol, scope) + ["", eval_times(args.data), ""]
    body += ["## Throughput against perplexity", "", f"![throughput vs perplexity]({FIGURE})",
             "", "Each series is one line through its DRAM sizes (the marker grows with the DRAM; "
             "the dense points are labelled with theirs).", ""]
    body += ["## 2. Phi-3-Medium shapes, calibrated traces (synthetic)", "",
             "Made by `memsim trace calibrate` from the SmolLM2 traces above (2 sequences x 128 "
             "tokens, seed 2): " + "; ".join(notes) + ". The generator keeps per-layer "
             "densities, frequency profiles, reuse distances, co-activation groups and "
             "per-token persistence ([calibrated_traces.md](calibrated_traces.md)); it does not "
             "keep which columns share a flash page, so dip_ra's request-aware choice at "
             "SmolLM2's page geometry is carried over only through those statistics (its higher "
             "hit rates and reuse), not re-made for Phi-3-Medium's pages; every method is "
             "shown at its best merge gap (0 / 4 KiB, model order). No perplexity of their own "
             "(the masks are synthetic): the perplexity column gives the SmolLM2 source's, the "
             "accuracy those statistics came with.", ""]
    body += table(phi3) + [""]
    for preset in PHI3_PRESETS:
        sel = [r for r in phi3 if r.dram.startswith(preset)]
        body += phi3_summary(sel, f"Phi-3-Medium (synthetic), {preset}") + [""]
    atomic_write_text(args.out, head + "\n".join(body) + "\n")
    print(f"wrote {args.out} and {args.out.parent / FIGURE} ({minutes:.1f} min)")


if __name__ == "__main__":
    main()
