"""`memsim hw probe`: the presets' flash models reproduce the published measurements.

Flagship (UFS 4.0, PowerInfer-2 on a Snapdragon 8 Gen 3 phone): 512 KiB reads ~4 GB/s
sequential and ~3.5 GB/s random; 4 KiB random reads ~0.45 GB/s over a large span and ~1 GB/s
within 128 MB, below 0.85 GB/s at 512 MB. Midrange (UFS 3.1, Samsung): ~2.1 GB/s sequential,
~100 K random-read IOPS. Each within 15%.
"""
from __future__ import annotations

import pytest

from memsim.cli import main
from memsim.hw import load_hw
from memsim.hw.probe import probe

WITHIN = 0.15


@pytest.mark.parametrize("size_KiB, sequential, span, gbps", [
    (512, True, None, 4.0), (512, False, 8 * 2**30, 3.5), (4, False, 8 * 2**30, 0.45),
    (4, False, 128 * 2**20, 1.0)])
def test_flagship_flash_matches_powerinfer2_ufs40_measurements(size_KiB, sequential, span,
                                                               gbps):
    got, _ = probe(load_hw("flagship"), size_KiB, sequential, span)
    assert got == pytest.approx(gbps, rel=WITHIN)


def test_flagship_random_512k_is_slower_than_sequential_512k():
    hw = load_hw("flagship")
    assert probe(hw, 512, False, 8 * 2**30)[0] < probe(hw, 512, True, None)[0]


def test_flagship_4k_random_at_512mb_span_is_below_085_gbps_and_above_far_span():
    hw = load_hw("flagship")
    mid = probe(hw, 4, False, 512 * 2**20)[0]
    assert probe(hw, 4, False, 8 * 2**30)[0] < mid < 0.85


def test_midrange_flash_matches_ufs31_figures():
    hw = load_hw("midrange")
    assert probe(hw, 1024, True, None)[0] == pytest.approx(2.1, rel=WITHIN)
    assert probe(hw, 4, False, 8 * 2**30)[1] == pytest.approx(100.0, rel=WITHIN)  # K IOPS


def test_probe_command_prints_every_size_and_pattern(capsys):
    assert main(["hw", "probe", "flagship"]) == 0
    out = capsys.readouterr().out
    assert "| 4 KiB |" in out and "| 1024 KiB |" in out and "sequential" in out


def test_probe_of_an_unknown_preset_is_a_clean_error(capsys):
    assert main(["hw", "probe", "no-such-phone"]) == 2
    assert "no-such-phone" in capsys.readouterr().err
