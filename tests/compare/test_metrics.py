"""The streamed metrics equal their one-shot numpy definitions."""

from __future__ import annotations

import math

import numpy as np

from onnxq.compare.metrics import ErrorStats, Histogram


def test_streamed_sums_equal_the_one_shot_metrics() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(5, 3, 4)).astype(np.float32)
    got = ref + rng.normal(scale=0.05, size=ref.shape).astype(np.float32)
    stats = ErrorStats()
    for r, q in zip(ref, got, strict=True):
        stats.update(r, q)
    r, q = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    assert math.isclose(stats.sqnr_db, 10 * np.log10(np.sum(r**2) / np.sum((r - q) ** 2)), rel_tol=1e-12)
    assert math.isclose(stats.cosine, r @ q / np.linalg.norm(r) / np.linalg.norm(q), rel_tol=1e-12)
    assert stats.max_abs == np.max(np.abs(r - q))


def test_exact_copy_has_infinite_sqnr_and_zeros_have_cosine_one() -> None:
    stats = ErrorStats()
    stats.update(np.zeros(3), np.zeros(3))
    assert stats.sqnr_db == math.inf and stats.cosine == 1.0 and stats.max_abs == 0.0


def test_histogram_bins_are_fixed_and_count_values_outside() -> None:
    h = Histogram(0.0, 1.0, bins=4)
    h.update(np.array([-1.0, 0.0, 0.3, 0.99, 1.0, 2.0, np.nan]))
    h.update(np.array([0.5]))
    assert h.counts.tolist() == [1, 1, 1, 2] and (h.below, h.above) == (1, 1)
