"""`memsim demo`: the README's first command ends here.

Runs memsim/demo_sweep.yaml (SmolLM2-135M on the flagship preset, DRAM sizes at the model's
scale, dense streaming vs DIP vs DIP-CA, real masked forward passes on Shakespeare; DIP and
DIP-CA with naive flash access and searched: the fastest of four flash-access settings at
each DRAM size, named per point), writes the figures, prints the summary table (the one
`memsim sweep` prints) and where everything is. Rerunning resumes.
"""
from __future__ import annotations

import os
from pathlib import Path

from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import load_sweep
from memsim.sweeps.summary import summary_lines

DEMO_SWEEP = Path(__file__).resolve().parent / "demo_sweep.yaml"


def run_demo(out_dir: Path, workers: int | None = None, progress: bool = True) -> int:
    from memsim.sweeps.figures import make_plots
    from memsim.sweeps.table import read_results

    sweep = load_sweep(DEMO_SWEEP)
    workers = workers or os.cpu_count() or 1
    report = run_sweep(sweep, out_dir, workers=workers, progress=progress)
    if report.table_path is None:
        print("no point finished; see the errors above")
        return 1
    table = read_results(report.table_path)
    print("\n".join(["", *summary_lines(table)]))
    plots = make_plots(table, out_dir / "plots")
    print(f"\nresults table: {report.table_path}")
    print(f"figures: {out_dir / 'plots'}/ ({len(plots)} figures, PNG and SVG)")
    for name, why in plots.skipped.items():
        print(f"  skipped {name}: {why}")
    for failure in report.failures:
        print(f"failed: {failure}")
    return 1 if report.num_failed else 0
