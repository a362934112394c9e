"""Synthetic traces: exact densities and reuse between tokens beyond i.i.d. chance."""
from __future__ import annotations

import numpy as np
import pytest

from memsim.traces.density import dip_keep_fractions, mlp_density
from memsim.traces.model_shape import load_model_shape
from memsim.traces.synth import synth_trace
from tests.helpers import TINY


def test_dip_fit_matches_the_reference_values():
    up, down = dip_keep_fractions(0.5)
    assert (round(up, 3), round(down, 3)) == (0.574, 0.351)
    assert mlp_density(up, down) == pytest.approx(0.5)


def test_synthetic_masks_keep_exactly_k_columns_per_token():
    trace = synth_trace(TINY, 20, 0.5, seed=1)
    up_keep, down_keep = dip_keep_fractions(0.5)
    assert (trace.up.sum(axis=2) == round(up_keep * 64)).all()
    assert (trace.down.sum(axis=2) == round(down_keep * 160)).all()


def test_synthetic_masks_reuse_columns_more_than_iid_masks():
    m = load_model_shape("smollm2-135m")
    trace = synth_trace(m, 32, 0.5, seed=0)
    keep = trace.down.mean()
    overlap = (trace.down[1:] & trace.down[:-1]).mean() / keep  # P(used at t | used at t-1)
    assert overlap > keep + 0.2  # i.i.d. masks would give `keep`


def test_same_seed_same_trace_and_dense_is_all_true():
    a, b = synth_trace(TINY, 5, 0.3, seed=4), synth_trace(TINY, 5, 0.3, seed=4)
    assert np.array_equal(a.down, b.down)
    assert synth_trace(TINY, 3, method="dense").down.all()
