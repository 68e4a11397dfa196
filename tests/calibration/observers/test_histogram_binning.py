"""The power-of-two grid: exact bin indices, nesting grids, and histograms that depend on the
data set alone (order, batching and sharding do not change a count)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onnxq.calibration.observers.histogram_binning import grid_counts, grid_edges, grid_for, regrid


def _reference_counts(x: np.ndarray, k0: int, e: int, bins: int) -> np.ndarray:
    """Cell of each value by exact rational arithmetic (Python floats scaled by 2^-e are exact)."""
    counts = np.zeros(bins)
    for v in x.astype(np.float64).ravel():
        counts[math.floor(math.ldexp(float(v), -e)) - k0] += 1
    return counts


@pytest.mark.parametrize(
    ("lo", "hi", "bins", "centred"),
    [
        (0.0, 6.27, 2048, False),
        (-3.5, 1e-3, 256, False),
        (1000.0, 1000.001, 64, False),
        (-2.0, 5.0, 2048, True),
    ],
)
def test_grid_is_the_narrowest_power_of_two_holding_the_range(
    lo: float, hi: float, bins: int, centred: bool
) -> None:
    k0, e = grid_for(lo, hi, bins, centred)
    a, b = grid_edges(k0, e, bins)
    t = max(-lo, hi)
    want_lo, want_hi = (-t, t) if centred else (lo, hi)
    assert a <= want_lo and want_hi < b
    # one step finer no longer holds the range
    half = math.ldexp(1.0, e - 1)
    if centred:
        assert t >= (bins // 2) * half
    else:
        assert math.floor(want_hi / half) - math.floor(want_lo / half) + 1 > bins
    assert (b - a) / bins == math.ldexp(1.0, e)


def test_counts_are_exact_at_every_cell_edge() -> None:
    k0, e = grid_for(-1.0, 1.0, 64)
    w = math.ldexp(1.0, e)
    edges = np.array([(k0 + i) * w for i in range(64)], np.float32)
    x = np.concatenate([edges, np.nextafter(edges, np.float32(-np.inf)), [1.0]]).astype(np.float32)
    x = x[(x >= -1.0) & (x <= 1.0)]
    np.testing.assert_array_equal(grid_counts(x, k0, e, 64), _reference_counts(x, k0, e, 64))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, width=32, allow_subnormal=True), min_size=1, max_size=200),
    st.integers(2, 300),
)
def test_counts_match_exact_arithmetic(values: list[float], bins: int) -> None:
    x = np.asarray(values, np.float32)
    k0, e = grid_for(float(x.min()), float(x.max()), bins)
    np.testing.assert_array_equal(grid_counts(x, k0, e, bins), _reference_counts(x, k0, e, bins))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e4, 1e4, width=32), min_size=2, max_size=300),
    st.integers(1, 299),
    st.booleans(),
)
def test_binning_then_coarsening_equals_binning_coarse(values: list[float], cut: int, centred: bool) -> None:
    x = np.asarray(values, np.float32)
    first = x[: cut % len(x) or 1]
    bins = 128
    k0, e = grid_for(float(first.min()), float(first.max()), bins, centred)
    fine = grid_counts(first, k0, e, bins)
    K0, E = grid_for(float(x.min()), float(x.max()), bins, centred)
    np.testing.assert_array_equal(regrid(fine, k0, e, K0, E), grid_counts(first, K0, E, bins))


def test_constant_and_zero_ranges_get_fixed_grids() -> None:
    k0, e = grid_for(0.0, 0.0, 16)
    assert grid_counts(np.zeros(5, np.float32), k0, e, 16)[0] == 5
    k0, e = grid_for(3.0, 3.0, 16)
    counts = grid_counts(np.full(7, 3.0, np.float32), k0, e, 16)
    assert counts[0] == 7 and counts.sum() == 7
    # widening from a constant moves the whole count into one cell of the wider grid
    K0, E = grid_for(-5.0, 3.0, 16)
    assert regrid(counts, k0, e, K0, E).sum() == 7


def test_regrid_refuses_a_finer_grid() -> None:
    with pytest.raises(ValueError, match="finer grid"):
        regrid(np.ones(4), 0, 3, 0, 2)


def test_counts_of_a_resnet_activation() -> None:
    x = np.maximum(np.random.default_rng(0).normal(size=(4, 64, 56, 56)), 0).astype(np.float32)
    k0, e = grid_for(0.0, float(x.max()), 2048)
    counts = grid_counts(x, k0, e, 2048)
    assert counts.sum() == x.size
    w = math.ldexp(1.0, e)
    want = np.histogram(x.astype(np.float64), bins=2048, range=(k0 * w, (k0 + 2048) * w))[0]
    np.testing.assert_array_equal(counts, want)
