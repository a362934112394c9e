"""`memsim demo`: the README's first command ends here.

Runs memsim/demo_sweep.yaml (SmolLM2-135M on the flagship preset, DRAM sizes at the model's
scale, dense streaming vs DIP vs DIP-CA, real masked forward passes on Shakespeare), writes
the plots, prints a short table and where everything is. Rerunning resumes.
"""
from __future__ import annotations

import os
from pathlib import Path

from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import load_sweep

DEMO_SWEEP = Path(__file__).resolve().parent / "demo_sweep.yaml"


def run_demo(out_dir: Path, workers: int | None = None) -> int:
    from memsim.sweeps.plots import make_plots
    from memsim.sweeps.table import read_results

    sweep = load_sweep(DEMO_SWEEP)
    workers = workers or os.cpu_count() or 1
    report = run_sweep(sweep, out_dir, workers=workers)
    if report.table_path is None:
        print("no point finished; see the errors above")
        return 1
    _print_table(read_results(report.table_path))
    plots = make_plots(report.table_path, out_dir / "plots")
    print(f"\nresults table: {report.table_path}")
    print(f"plots: {out_dir / 'plots'}/ ({len(plots)} figures, PNG and SVG)")
    for failure in report.failures:
        print(f"failed: {failure}")
    return 1 if report.num_failed else 0


def _print_table(table) -> None:
    print(f"\n{'DRAM MB':>8} {'method':8} {'perplexity':>10} {'tok/s':>8} {'hit rate':>8} "
          f"{'flash MB/tok':>12}")
    for row in sorted(table.rows(), key=lambda r: (r["capacity_GB"], r["method"])):
        print(f"{row['capacity_GB'] * 1e3:8.0f} {row['method']:8} {row['perplexity']:10.3f} "
              f"{row['tokens_per_s']:8.1f} {row['hit_rate']:8.3f} "
              f"{row['flash_bytes_per_token'] / 1e6:12.2f}")
