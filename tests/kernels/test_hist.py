"""Native grid counts vs the numpy reference (every ISA present): the same counts, exactly; the
native KL divergences of the entropy search vs their reference: the same doubles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxq.errors import KernelError
from onnxq.kernels._ffi import ffi, lib
from onnxq.kernels.hist import grid_counts_f32, kl_divergences
from onnxq.kernels.reference import hist as reference
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
    counts = np.zeros(lib.ONNXQ_HIST_LANES * 4, np.int64)
    size = counts.size
    c_counts = ffi.cast("int64_t*", counts.ctypes.data)
    x = np.ones(3, np.float32)
    c_x = ffi.cast("const float*", x.ctypes.data)
    assert lib.onnxq_grid_counts_f32(c_x, 3, 0.75, 0, c_counts, size, 4) != 0  # not a power of two
    assert lib.onnxq_grid_counts_f32(c_x, 3, 1.0, 0, c_counts, size - 1, 4) != 0  # counts too short
    assert lib.onnxq_grid_counts_f32(ffi.NULL, 3, 1.0, 0, c_counts, size, 4) != 0
    assert lib.onnxq_grid_counts_f32(c_x, 3, 1.0, 0, ffi.NULL, size, 4) != 0
    assert lib.onnxq_grid_counts_f32(c_x, 3, float("inf"), 0, c_counts, size, 4) != 0
    assert not counts.any()
    assert lib.onnxq_grid_counts_f32(c_x, 3, 1.0, 0, c_counts, size, 4) == 0 and counts.sum() == 3


def _histograms() -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(5)

    def hist(x: np.ndarray, bins: int) -> np.ndarray:
        t = float(np.abs(x).max())
        return np.histogram(x, bins=bins, range=(-t, t))[0].astype(np.float64)

    relu = np.maximum(rng.normal(0.5, 2.0, 100_000), 0)
    resampled = hist(rng.laplace(size=50_000), 2048) * 0.37  # fractional counts, as after a regrid
    sparse = np.zeros(512)
    sparse[[3, 250, 256, 300, 511]] = [1, 40, 9, 2, 1]
    return {
        "t3_2048": (hist(rng.standard_t(3, 200_000), 2048), 128),
        "relu_2048": (hist(relu, 2048), 128),
        "fractional": (resampled, 128),
        "sparse": (sparse, 128),
        "odd_bins": (hist(rng.normal(size=5_000), 301), 64),
        "q_255": (hist(rng.exponential(size=20_000), 1000), 255),
        "q_equals_bins": (hist(rng.normal(size=1_000), 256), 256),
        "tiny": (np.array([1.0, 0.0, 2.0]), 2),
        "empty": (np.zeros(64), 8),
        "one_bin": (np.eye(1, 64, 40).ravel() * 3, 8),
    }


@pytest.mark.parametrize("name", sorted(_histograms()))
def test_kl_divergences_are_the_reference_doubles(name: str) -> None:
    """The same doubles, bit for bit: sums left to right, the C library's logarithm, in both."""
    hist, q_bins = _histograms()[name]
    got = kl_divergences(hist, q_bins)
    want = reference.kl_divergences(hist, q_bins)
    assert got.shape == (hist.size // 2 - q_bins // 2 + 1,)
    np.testing.assert_array_equal(got, want)
    if name == "empty":
        assert np.isinf(got).all()
    else:
        assert np.isfinite(got).any() and (got[np.isfinite(got)] >= -1e-12).all()  # a divergence


def test_kl_divergences_match_the_plain_definition() -> None:
    """A candidate's divergence is sum P log(P / Q) of the smoothed, normalised windows (the
    definition the kernel rearranges), to float64 rounding."""
    hist = np.histogram(np.random.default_rng(9).normal(size=3_000), bins=64)[0].astype(np.float64)
    q_bins, z = 8, 32
    got = kl_divergences(hist, q_bins)
    for i in range(q_bins // 2, z + 1):
        s, e = z - i, min(z + i + 1, 64)
        p = hist[s:e].copy()
        p[0] += hist[:s].sum()
        p[-1] += hist[e:].sum()
        m = (e - s) // q_bins
        q = np.zeros_like(p)
        for g in range(q_bins):
            kept = hist[s + g * m : (e if g == q_bins - 1 else s + g * m + m)].sum()
            n = np.count_nonzero(p[g * m : g * m + m])
            q[g * m : g * m + m] = np.floor(kept / n) if n else 0.0

        def smooth(x: np.ndarray) -> np.ndarray:
            zeros = x == 0
            return np.where(zeros, 1e-4, x - 1e-4 * zeros.sum() / (~zeros).sum())

        ps, qs = smooth(p), smooth(q)
        pn, qn = ps / ps.sum(), qs / qs.sum()
        assert got[i - q_bins // 2] == pytest.approx(float(np.sum(pn * np.log(pn / qn))), rel=1e-12)


def test_kl_divergences_refuse_bad_histograms() -> None:
    with pytest.raises(KernelError, match="quantized_bins"):
        kl_divergences(np.ones(64), 65)
    with pytest.raises(KernelError, match="bins"):
        kl_divergences(np.ones(1), 2)
    with pytest.raises(KernelError, match=r"hist\[3\] = -1"):
        kl_divergences(np.array([1.0, 2.0, 3.0, -1.0]), 2)
    with pytest.raises(KernelError, match=r"hist\[0\] = nan"):
        kl_divergences(np.array([np.nan, 2.0, 3.0, 1.0]), 2)
    out = np.zeros(3)
    hist = np.ones(8)
    c_hist = ffi.cast("const double*", hist.ctypes.data)
    c_out = ffi.cast("double*", out.ctypes.data)
    assert lib.onnxq_kl_divergences_f64(c_hist, 8, 4, c_out, 2) != 0  # out too short
    assert lib.onnxq_kl_divergences_f64(ffi.NULL, 8, 4, c_out, 3) != 0
    assert lib.onnxq_kl_divergences_f64(c_hist, 8, 4, ffi.NULL, 3) != 0
    assert not out.any()
    assert lib.onnxq_kl_divergences_f64(c_hist, 8, 4, c_out, 3) == 0 and np.isfinite(out).all()
