"""scripts/bench_accuracy.py's paired comparison and the digits' enlarged held-out set it scores on
(the benchmark runs themselves are not part of the test suite)."""

from __future__ import annotations

import math

import numpy as np

from tests.digits import load_digits
from tests.script_modules import load_script

bench = load_script("bench_accuracy")


def test_paired_counts_discordant_samples_and_gives_mcnemars_exact_p() -> None:
    ours = np.array([1, 1, 0, 0, 1, 1], bool)
    peer = np.array([1, 0, 1, 1, 1, 0], bool)
    b, c, p, lo, hi = bench.paired(ours, peer)
    assert (b, c) == (2, 2) and p == 1.0
    assert lo <= 0.0 <= hi
    ours, peer = np.ones(40, bool), np.ones(40, bool)
    ours[:6], peer[6:12] = False, False  # 6 only the peer gets right, 6 only ours
    peer[12:20] = False  # and 8 more only ours: 14 against 6
    b, c, p, lo, hi = bench.paired(ours, peer)
    assert (b, c) == (6, 14)
    assert math.isclose(p, 2 * sum(math.comb(20, i) for i in range(7)) / 2**20)
    assert lo < 100 * (14 - 6) / 40 < hi


def test_paired_interval_is_a_point_for_identical_classifiers() -> None:
    same = np.array([1, 0, 1, 1], bool)
    assert bench.paired(same, same.copy()) == (0, 0, 1.0, 0.0, 0.0)


def test_augmented_test_keeps_the_held_out_digits_first_and_their_labels() -> None:
    digits = load_digits()
    x, y = digits.augmented_test(3, count=50)
    assert x.shape == (200, 1, 8, 8) and x.dtype == np.float32 and y.shape == (200,)
    np.testing.assert_array_equal(x[:50], digits.x_test[:50])
    np.testing.assert_array_equal(y, np.concatenate([digits.y_test[:50], np.repeat(digits.y_test[:50], 3)]))
    assert x.min() >= 0.0 and x.max() <= 1.0 and not np.array_equal(x[50], x[51])  # copies differ
    again, _ = digits.augmented_test(3, count=50)
    np.testing.assert_array_equal(x, again)  # a fixed seed: every run scores the same images
