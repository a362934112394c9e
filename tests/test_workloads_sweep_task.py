"""workloads.sweep_task: a sweep worker loads each model once and reuses it across tasks."""
from __future__ import annotations

import os

import pytest

import workloads.model as model_module
from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import sweep_from_dict
from memsim.sweeps.table import read_results
from workloads.testing import sample_text, save_tiny_checkpoint


@pytest.fixture
def load_log(tmp_path, monkeypatch):
    """A file that gets one line (the process id) per model load, in any worker: the
    local executor forks, so workers inherit this patch."""
    log, real = tmp_path / "loads.txt", model_module._from_pretrained

    def logged(folder, gguf, dtype):
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return real(folder, gguf, dtype)

    monkeypatch.setattr(model_module, "_from_pretrained", logged)
    return log


def _tiny_sweep(tmp_path) -> dict:
    model = save_tiny_checkpoint(tmp_path / "tiny", "llama")
    corpus = tmp_path / "text.txt"
    corpus.write_text(sample_text(3000))
    return {"name": "tiny", "base": {"hw": "flagship", "model": str(model),
                                     "trace": {"source": "model", "corpus": str(corpus),
                                               "windows": 2, "window_len": 16}},
            "axes": {"hw.dram.capacity_GB": [0.03, 0.05], "density": [0.5, 0.7],
                     "method": ["dip", "cats"]}}


def test_each_worker_loads_the_model_at_most_once_across_its_tasks(tmp_path, load_log):
    report = run_sweep(sweep_from_dict(_tiny_sweep(tmp_path)), tmp_path / "run", workers=2,
                       progress=False)
    assert report.num_failed == 0 and report.num_points == 8
    loads = load_log.read_text().split()  # 1 preparing task + 4 evaluations on 2 workers
    assert len(loads) == len(set(loads)) and 1 <= len(loads) <= 2
    rows = read_results(report.table_path).rows()
    assert len(rows) == 8 and all(row["perplexity"] > 1 for row in rows)


def test_one_worker_loads_the_model_once_for_the_whole_sweep(tmp_path, load_log):
    spec = sweep_from_dict(_tiny_sweep(tmp_path))
    run_sweep(spec, tmp_path / "run", workers=1, progress=False)
    assert len(load_log.read_text().split()) == 1
