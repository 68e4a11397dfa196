"""The running histogram shared by the histogram observers: binning, re-binning, state loading."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from onnxq.calibration.observers import HistogramObserver
from onnxq.calibration.observers.running_histogram import bin_counts, rebin


def test_bin_counts_match_numpy_histogram() -> None:
    rng = np.random.default_rng(0)
    # values on bin centres so that no value sits on an edge where float rounding could differ
    idx = rng.integers(0, 64, size=10_000)
    x = (-2.0 + (idx + 0.5) * (4.0 / 64)).astype(np.float32).reshape(100, 100)
    want = np.histogram(x, bins=64, range=(-2.0, 2.0))[0]
    np.testing.assert_array_equal(bin_counts(x, -2.0, 2.0, 64), want)


def test_bin_counts_puts_the_maximum_in_the_last_bin() -> None:
    counts = bin_counts(np.array([0.0, 1.0, 1.0], np.float32), 0.0, 1.0, 4)
    np.testing.assert_array_equal(counts, [1, 0, 0, 2])


def test_rebin_preserves_mass_and_location() -> None:
    hist = np.zeros(8)
    hist[[0, 3, 7]] = [5.0, 2.0, 1.0]  # bins of width 0.25 over [0, 2]
    out = rebin(hist, 0.0, 2.0, -2.0, 2.0, upsample_rate=16)  # new bins of width 0.5
    assert out.sum() == pytest.approx(8.0)
    np.testing.assert_allclose(out, [0, 0, 0, 0, 5.0, 2.0, 0, 1.0])


def test_bin_counts_of_a_resnet_activation_is_fast() -> None:
    x = np.maximum(np.random.default_rng(0).normal(size=(16, 64, 56, 56)), 0).astype(np.float32)
    bin_counts(x[:1], 0.0, float(x.max()), 2048)  # warm up
    start = time.perf_counter()
    counts = bin_counts(x, 0.0, float(x.max()), 2048)
    elapsed = time.perf_counter() - start
    assert counts.sum() == x.size
    assert elapsed < 1.0  # ~0.01 s on one core; np.histogram takes ~3x longer


def _state() -> dict:
    obs = HistogramObserver(bins=8)
    obs.update(np.array([0.0, 1.0, 2.0, np.nan], np.float32))
    return json.loads(json.dumps(obs.state_dict()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bins": 0}, r"bins must be an int in \[1, 65536\]"),
        ({"axis": 1}, "'axis' must be null"),
        ({"histogram": [1.0] * 7}, "'histogram' must be a list of 8 counts, got 7"),
        ({"histogram": [-1.0] * 8}, "'histogram' counts must be non-negative"),
        ({"histogram": ["1"] * 8}, "'histogram' must hold numbers only"),
        ({"min": 3.0}, "'min' must not exceed 'max'"),
        ({"min": -1e300}, "'min' must be a float32 number"),
        ({"max": None}, "'min' and 'max' must both be numbers"),
        ({"histogram": [0.0] * 8}, "'histogram' has no counts"),
        ({"nonfinite": -1}, "'nonfinite' must be a non-negative int"),
        ({"extra": 1}, "unknown field 'extra'"),
    ],
)
def test_a_bad_state_field_is_a_one_line_error_naming_it(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        HistogramObserver.from_state_dict(_state() | change)
    assert "\n" not in str(info.value)


def test_a_missing_state_field_is_named() -> None:
    state = _state()
    del state["upsample_rate"]
    with pytest.raises(ValueError, match="lacks field 'upsample_rate'"):
        HistogramObserver.from_state_dict(state)
