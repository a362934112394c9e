"""What the `memsim` commands print: the sweep's summary and resume line, analytic mode's
missing breakdown, the whole-matrix note, a preset to start from."""
from __future__ import annotations

import re

import yaml

import memsim.demo
from memsim.cli import main
from memsim.sweeps.table import read_results

SWEEP = {"name": "tiny", "base": {"hw": "flagship", "model": "smollm2-135m",
                                  "trace": {"source": "synthetic", "tokens": 24, "windows": 2}},
         "axes": {"hw.dram.capacity_GB": [0.04, 0.06], "method": ["dense", "dip"]}}


def test_sweep_prints_the_summary_table_and_a_rerun_says_what_was_done(tmp_path, capfd):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SWEEP))
    argv = ["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"),
            "--no-progress"]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    assert "%|" not in err and "it/s" not in err  # --no-progress: no bar, not even a worker's
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("DRAM MB"))
    assert [line.split()[:2] for line in lines[header + 1:header + 5]] == [
        ["40", "Dense"], ["40", "DIP"], ["60", "Dense"], ["60", "DIP"]]
    assert "perplexity: none (synthetic traces carry no accuracy)" in out
    assert main(argv) == 0
    assert f"{tmp_path / 'out'}: 4 of 4 points already done; nothing to run" in \
        capfd.readouterr().out


def test_sweep_table_carries_dense_reference_throughputs(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SWEEP))
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path), "--no-progress"]) \
        == 0
    table = read_results(tmp_path)
    streaming = set(table["ref_dense_streaming_tokens_per_s"])
    everything = set(table["ref_all_in_dram_tokens_per_s"])
    assert len(streaming) == len(everything) == 1  # one phone: one pair, whatever the DRAM
    dense = table["tokens_per_s"][table["method"] == "dense"]
    assert everything.pop() >= dense.max() and streaming.pop() <= dense.max()


def _synth_trace(tmp_path) -> str:
    path = str(tmp_path / "t.npz")
    assert main(["trace", "synth", "--model", "smollm2-135m", "--tokens", "16",
                 "--density", "0.5", "--out", path]) == 0
    return path


def test_analytic_mode_says_it_has_no_breakdown_instead_of_zeros(tmp_path, capsys):
    trace = _synth_trace(tmp_path)
    capsys.readouterr()
    assert main(["simulate", "--hw", "flagship", "--trace", trace, "--mode", "analytic"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"breakdown +n/a \(analytic mode has no timeline\)", out)
    assert "flash  " not in out and "0.000 ms" not in out
    assert re.search(r"DRAM used +\d+\.\d{3} MB", out)  # below 1 GB: MB


def test_a_cache_that_holds_every_column_gets_one_note(tmp_path, capsys):
    trace = _synth_trace(tmp_path)
    capsys.readouterr()
    assert main(["hw", "show", "flagship"]) == 0
    preset = yaml.safe_load(capsys.readouterr().out)
    preset["dram"]["capacity_GB"] = 0.04
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(preset))
    assert main(["hw", "validate", str(tmp_path / "small.yaml")]) == 0
    assert main(["simulate", "--hw", "flagship", "--trace", trace]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note")]
    assert len(notes) == 1 and "holds every MLP column" in notes[0]
    assert main(["simulate", "--hw", str(tmp_path / "small.yaml"), "--trace", trace]) == 0
    assert "note" not in capsys.readouterr().out


def test_hw_show_of_an_unknown_preset_lists_the_presets(capsys):
    assert main(["hw", "show", "nope"]) == 2
    assert "flagship" in capsys.readouterr().err


def test_demo_passes_no_progress_and_checks_workers(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(memsim.demo, "run_demo", lambda out, workers, progress:
                        calls.append((str(out), workers, progress)) or 0)
    assert main(["demo", "--out", "runs/x", "--no-progress"]) == 0
    assert calls == [("runs/x", None, False)]
    assert main(["demo", "--workers", "0"]) == 2 and "--workers" in capsys.readouterr().err
