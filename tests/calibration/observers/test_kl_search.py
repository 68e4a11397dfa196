"""The KL-divergence threshold search against onnxruntime's ``get_entropy_threshold``."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from onnxq.calibration.observers.kl_search import entropy_threshold, kl_divergences


def _ort_collector(x: np.ndarray, bins: int, quantized_bins: int):  # type: ignore[no-untyped-def]
    calibrate = pytest.importorskip("onnxruntime.quantization.calibrate")
    collector = calibrate.HistogramCollector("entropy", False, bins, quantized_bins, 99.999, "same")
    with contextlib.redirect_stdout(io.StringIO()):
        collector.collect({"t": x})
    return collector


_DATA = {
    "normal": lambda r: r.normal(size=50_000),
    "relu": lambda r: np.maximum(r.normal(1.0, 2.0, size=50_000), 0),
    "heavy_tail": lambda r: r.standard_t(2, size=50_000),
    "skewed": lambda r: r.exponential(0.3, size=50_000) - 0.2,
    "bimodal": lambda r: np.concatenate([r.normal(-3, 0.3, 25_000), r.normal(2, 0.5, 25_000)]),
    "few_values": lambda r: r.normal(size=300),
}


@pytest.mark.parametrize(("bins", "quantized_bins"), [(512, 128), (1000, 255), (301, 64)])
@pytest.mark.parametrize("name", sorted(_DATA))
def test_same_window_as_onnxruntime_on_its_histogram(name: str, bins: int, quantized_bins: int) -> None:
    """On onnxruntime's own histogram the window is the same, bin for bin (its threshold is then
    clipped to the data's min/max, which the observer does)."""
    x = _DATA[name](np.random.default_rng(0)).astype(np.float32)
    collector = _ort_collector(x, bins, quantized_bins)
    hist, edges, lo, hi, _ = collector.histogram_dict["t"]
    with contextlib.redirect_stdout(io.StringIO()):
        ort_lo, ort_hi = collector.get_entropy_threshold(collector.histogram_dict["t"], quantized_bins)
    start, end = entropy_threshold(hist, quantized_bins)
    assert max(float(edges[start]), float(lo)) == float(ort_lo)
    assert min(float(edges[end]), float(hi)) == float(ort_hi)


def test_divergences_match_onnxruntimes_in_float32() -> None:
    """onnxruntime computes each divergence in float32: ours agree to its rounding (rtol 1e-4)."""
    calibrate = pytest.importorskip("onnxruntime.quantization.calibrate")
    x = np.random.default_rng(1).laplace(size=50_000).astype(np.float32)
    collector = _ort_collector(x, 400, 128)
    seen: list[np.ndarray] = []
    argmin = np.argmin

    def spy(a, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(np.array(a))
        return argmin(a, *args, **kwargs)

    calibrate.np.argmin = spy
    try:
        collector.get_entropy_threshold(collector.histogram_dict["t"], 128)
    finally:
        calibrate.np.argmin = argmin
    ours = kl_divergences(collector.histogram_dict["t"][0].astype(np.float64), 128)
    np.testing.assert_allclose(ours, seen[0], rtol=1e-4)


def test_the_first_of_divergences_equal_in_float32_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime's float32 divergences cannot tell 0.3 from 0.3 + 3e-8: it takes the first."""
    from onnxq.calibration.observers import kl_search

    fake = np.array([0.5, 0.3 + 3e-8, 0.3, 0.3 + 1e-5])
    monkeypatch.setattr(kl_search, "kl_divergences", lambda hist, q: fake)
    assert kl_search.entropy_threshold(np.ones(64), 8) == (32 - 5, 32 + 5 + 1)  # candidate i = 4 + 1
    fake[1] = 0.3 + 1e-6
    assert kl_search.entropy_threshold(np.ones(64), 8) == (32 - 6, 32 + 6 + 1)

