"""The L2 range search: error formula against numerical integration, the walk against a literal loop."""

from __future__ import annotations

import time

import numpy as np
import pytest

from onnxq.calibration.observers.l2_search import candidate_ranges, quantization_errors, search_range


def _numeric_error(hist: np.ndarray, width: float, start: int, end: int, dst_bins: int) -> float:
    """Squared distance to the nearest clamped destination-bin centre, integrated by sampling."""
    dst_w = width * (end - start + 1) / dst_bins
    total = 0.0
    samples = 4000
    for i, count in enumerate(hist):
        if count == 0:
            continue
        # points spread uniformly inside source bin i, measured from the first destination bin
        x = ((i - start) + (np.arange(samples) + 0.5) / samples) * width
        j = np.clip(np.floor(x / dst_w), 0, dst_bins - 1)
        total += count * float(np.mean((x - (j + 0.5) * dst_w) ** 2))
    return total


@pytest.mark.parametrize(("start", "end"), [(0, 63), (5, 40), (20, 21), (0, 10), (30, 63)])
def test_quantization_error_matches_numeric_integration(start: int, end: int) -> None:
    rng = np.random.default_rng(0)
    hist = rng.integers(0, 20, size=64).astype(np.float64)
    width = 0.37
    got = quantization_errors(hist, width, np.array([start]), np.array([end]), 16)[0]
    want = _numeric_error(hist, width, start, end, 16)
    assert got == pytest.approx(want, rel=2e-3)


def _literal_walk(hist: np.ndarray, step: float) -> list[tuple[int, int]]:
    """The search walk written as the plain step-by-step loop of the module docstring."""
    csum = np.cumsum(hist).astype(np.float32)  # PyTorch compares in float32
    total = hist.sum()
    alpha, beta = 0.0, 1.0
    start, end = 0, len(hist) - 1
    out = []
    while alpha < beta:
        na, nb = alpha + step, beta - step
        left, right = start, end
        while left < end and csum[left] < np.float32(na * total):
            left += 1
        while right > start and csum[right] > np.float32(nb * total):
            right -= 1
        if left - start > end - right:
            new = (left, end)
            alpha = na
        else:
            new = (start, right)
            beta = nb
        if new != (start, end):
            out.append(new)
            start, end = new
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_candidate_walk_matches_literal_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    hist = np.histogram(rng.standard_t(3, size=5000), bins=96)[0].astype(np.float64)
    hist[rng.integers(0, 96, size=10)] = 0  # empty bins exercise the jumps
    step = 1.0 / 1024  # exact in binary: both walks accumulate the same floats
    assert list(candidate_ranges(hist, step)) == _literal_walk(hist, step)


def test_search_trims_heavy_tails_but_keeps_the_bulk() -> None:
    rng = np.random.default_rng(5)
    data = rng.standard_t(2, size=200_000)
    lo_d, hi_d = float(data.min()), float(data.max())
    hist = np.histogram(data, bins=2048, range=(lo_d, hi_d))[0].astype(np.float64)
    lo, hi = search_range(hist, lo_d, hi_d)
    assert lo_d <= lo < np.quantile(data, 0.001)
    assert np.quantile(data, 0.999) < hi <= hi_d
    assert (hi - lo) < 0.9 * (hi_d - lo_d)  # at least one tail is cut


def test_search_keeps_the_full_range_of_a_uniform_distribution() -> None:
    hist = np.full(2048, 100.0)
    lo, hi = search_range(hist, -2.0, 2.0)
    assert lo == pytest.approx(-2.0, abs=4 * 4 / 2048)
    assert hi == pytest.approx(2.0, abs=4 * 4 / 2048)


def test_search_on_degenerate_input_returns_the_input_range() -> None:
    assert search_range(np.zeros(2048), -1.0, 1.0) == (-1.0, 1.0)
    hist = np.zeros(2048)
    hist[0] = 7
    assert search_range(hist, 3.0, 3.0) == (3.0, 3.0)


def test_search_is_fast_on_full_histograms() -> None:
    rng = np.random.default_rng(9)
    hists = [
        np.histogram(rng.normal(size=200_000), bins=2048)[0],
        np.histogram(rng.uniform(size=200_000), bins=2048)[0],
        np.histogram(rng.standard_cauchy(size=200_000), bins=2048)[0],
        np.histogram(np.maximum(rng.normal(size=200_000), 0), bins=2048)[0],
    ]
    t0 = time.perf_counter()
    for h in hists:
        search_range(h.astype(np.float64), 0.0, 1.0)
    assert time.perf_counter() - t0 < 1.0  # PyTorch's loop takes seconds on some of these
