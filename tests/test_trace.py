"""The trace format: the one interface between workloads/ and memsim/."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from memsim.core.errors import TraceError
from memsim.traces.trace import Trace
from tests.helpers import TINY, random_trace


def test_trace_round_trips_through_npz(tmp_path):
    trace = random_trace(T=9, sequence_lengths=(4, 5), prompt_len=7,
                         method_params={"density": 0.5})
    loaded = Trace.load(trace.save(tmp_path / "t.npz"))
    assert np.array_equal(loaded.up, trace.up) and np.array_equal(loaded.down, trace.down)
    assert loaded.gate is None and loaded.metadata() == trace.metadata()
    assert np.array_equal(loaded.column_counts("down"), trace.down.sum(axis=2))


def test_cats_style_trace_with_row_masks_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    down = rng.random((3, 2, 160)) < 0.3
    trace = Trace(up_rows=down, gate=np.ones((3, 2, 64), bool), down=down, model=TINY,
                  method="cats")
    loaded = Trace.load(trace.save(tmp_path / "cats.npz"))
    assert [g.name for g in loaded.groups()] == ["up_rows", "gate", "down"]
    assert np.array_equal(loaded.up_rows, down)


def test_trace_is_bit_packed_on_disk(tmp_path):
    trace = random_trace(T=64)
    path = trace.save(tmp_path / "t.npz")
    with np.load(path, allow_pickle=False) as data:
        assert data["down_bits"].dtype == np.uint64
        assert json.loads(str(data["meta"]))["format_version"] == 1


def test_mlp_density_of_full_masks_is_one():
    trace = random_trace(T=3, density=1.0)
    assert np.allclose(trace.mlp_density(), 1.0)


@pytest.mark.parametrize("bad", ["shape", "both", "neither", "lengths", "rows_without_gate"])
def test_malformed_traces_are_rejected_with_the_field_named(bad):
    up, down = np.ones((4, 2, 64), bool), np.ones((4, 2, 160), bool)
    kwargs = {"shape": dict(up=up[:, :, :10], down=down),
              "both": dict(up=up, up_rows=down, gate=up, down=down),
              "neither": dict(down=down),
              "lengths": dict(up=up, down=down, sequence_lengths=(3, 3)),
              "rows_without_gate": dict(up_rows=down, down=down)}[bad]
    with pytest.raises(TraceError):
        Trace(model=TINY, **kwargs)


def test_corrupt_file_is_a_trace_error(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(TraceError):
        Trace.load(path)


def test_concatenate_makes_independent_sequences():
    a, b = random_trace(T=3, seed=1), random_trace(T=5, seed=2)
    both = Trace.concatenate([a, b])
    assert both.sequence_lengths == (3, 5) and both.num_tokens == 8
    assert [s.stop - s.start for s in both.sequences()] == [3, 5]


def test_loading_a_trace_does_not_import_torch(tmp_path):
    path = random_trace(T=2).save(tmp_path / "t.npz")
    code = ("import sys; from memsim import Trace; Trace.load(sys.argv[1]); "
            "import memsim.sim.simulator, memsim.cli; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


@pytest.mark.parametrize("width", [1, 63, 64, 65, 130, 1536])
def test_packed_words_give_the_booleans_and_counts_back_at_any_width(width):
    """The packed path (words, popcount) equals the boolean one: masks, per-row counts."""
    from memsim.traces.bits import PackedMasks

    rng = np.random.default_rng(width)
    masks = rng.random((5, 3, width)) < 0.4
    packed = PackedMasks.pack(masks)
    np.testing.assert_array_equal(packed.unpack(), masks)
    np.testing.assert_array_equal(packed.counts(), masks.sum(axis=-1))
    assert packed.shape == masks.shape
