"""Small valid inputs the bad-input tests start from (tests/test_robust_*.py): a trace file,
a sweep file and the folder it writes, a tiny corpus."""
from __future__ import annotations

from pathlib import Path

import yaml

from memsim.traces import load_model_shape, synth_trace

SYNTH_SWEEP = {"name": "robust", "base": {"hw": "flagship", "model": "smollm2-135m",
                                          "trace": {"source": "synthetic", "tokens": 8,
                                                    "windows": 1}},
               "axes": {"hw.dram.capacity_GB": [0.03, 0.06], "method": ["dip"]}}


def trace_file(folder: Path) -> Path:
    """A 6-token synthetic SmolLM2 trace."""
    return synth_trace(load_model_shape("smollm2-135m"), 6, 0.5, seed=1).save(folder / "t.npz")


def sweep_file(folder: Path, data: dict | None = None) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data or SYNTH_SWEEP, sort_keys=False))
    return path


def finished_sweep(folder: Path) -> Path:
    """A finished two-point synthetic sweep's output folder (results.parquet inside)."""
    from memsim.sweeps import load_sweep, run_sweep

    out = folder / "sweep_out"
    report = run_sweep(load_sweep(sweep_file(folder)), out, progress=False)
    assert report.num_failed == 0
    return out


def corpus_file(folder: Path) -> Path:
    path = folder / "text.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 200)
    return path


def files_in(folder: Path) -> list[str]:
    """Every file under `folder`, relative, sorted (folders themselves not listed)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())
