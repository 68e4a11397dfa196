"""Native grid counts vs the numpy reference (every ISA present): the same counts, exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxq.errors import KernelError
from onnxq.kernels._ffi import ffi, lib
from onnxq.kernels.hist import grid_counts_f32
from onnxq.kernels.reference.hist import grid_counts


@pytest.mark.parametrize(("k0", "e", "cells"), [(0, -11, 16384), (-1024, -8, 2048), (7, 3, 5), (0, 0, 1)])
def test_counts_match_the_reference(isa, k0: int, e: int, cells: int) -> None:
    rng = np.random.default_rng(cells)
    w = math.ldexp(1.0, e)
    x = (rng.uniform(k0 * w, (k0 + cells) * w, size=10_001)).astype(np.float32)
    x[::7] = 0.0 if k0 <= 0 < k0 + cells else x[::7]  # runs of one value
    np.testing.assert_array_equal(grid_counts_f32(x, k0, e, cells), grid_counts(x, k0, e, cells))


def test_cell_edges_and_values_outside_the_grid(isa) -> None:
    k0, e, cells = -8, -2, 16  # cells of 0.25 over [-2, 2)
    edges = np.arange(-2.0, 2.0, 0.25, dtype=np.float32)
    below = np.nextafter(edges, np.float32(-np.inf))
    outside = np.array([-1e30, -3.0, 2.0, 7.5, 1e30, -np.inf, np.inf], np.float32)
    x = np.concatenate([edges, below, outside])
    got = grid_counts_f32(x, k0, e, cells)
    np.testing.assert_array_equal(got, grid_counts(x, k0, e, cells))
    # cell 0: -2, the value just below it and just below -1.75, and -1e30, -3, -inf (clipped)
    assert got.sum() == x.size and got[0] == 6 and got[-1] == 1 + 4  # 1.75; 2, 7.5, 1e30, inf


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.floats(-1e6, 1e6, width=32, allow_subnormal=True), max_size=300),
    st.integers(-(2**40), 2**40),
    st.integers(-60, 20),
    st.integers(1, 4096),
)
def test_any_finite_values(isa, values: list[float], k0: int, e: int, cells: int) -> None:
    x = np.asarray(values, np.float32)
    np.testing.assert_array_equal(grid_counts_f32(x, k0, e, cells), grid_counts(x, k0, e, cells))


def test_nan_goes_to_the_first_cell_without_harm(isa) -> None:
    got = grid_counts_f32(np.array([np.nan, 1.0, np.nan], np.float32), 0, 0, 4)
    np.testing.assert_array_equal(got, [2, 1, 0, 0])


def test_bad_arguments_are_kernel_errors() -> None:
    x = np.ones(4, np.float32)
    with pytest.raises(KernelError, match="x: expected dtype float32, got float64"):
        grid_counts_f32(x.astype(np.float64), 0, 0, 4)
    with pytest.raises(KernelError, match="cells"):
        grid_counts_f32(x, 0, 0, 0)
    with pytest.raises(KernelError, match="k0"):
        grid_counts_f32(x, 1 << 62, 0, 4)
    np.testing.assert_array_equal(grid_counts_f32(x[::2], 0, 0, 4), [0, 2, 0, 0])  # a view is copied


def test_c_refuses_what_it_cannot_check_from_python() -> None:
    """The C entry point checks every length and argument itself (an error status, never a crash)."""
    counts = np.zeros(2 * 4, np.int64)
    c_counts = ffi.cast("int64_t*", counts.ctypes.data)
    x = np.ones(3, np.float32)
    c_x = ffi.cast("const float*", x.ctypes.data)
    assert lib.onnxq_grid_counts_f32(c_x, 3, 0.75, 0, c_counts, 8, 4) != 0  # not a power of two
    assert lib.onnxq_grid_counts_f32(c_x, 3, 1.0, 0, c_counts, 7, 4) != 0  # counts too short
    assert lib.onnxq_grid_counts_f32(ffi.NULL, 3, 1.0, 0, c_counts, 8, 4) != 0
    assert lib.onnxq_grid_counts_f32(c_x, 3, 1.0, 0, ffi.NULL, 8, 4) != 0
    assert lib.onnxq_grid_counts_f32(c_x, 3, float("inf"), 0, c_counts, 8, 4) != 0
    assert not counts.any()
    assert lib.onnxq_grid_counts_f32(c_x, 3, 1.0, 0, c_counts, 8, 4) == 0 and counts.sum() == 3
