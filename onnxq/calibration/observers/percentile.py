"""PercentileObserver: the range is a percentile of the running histogram, as onnxruntime's
``PercentileCalibrater`` chooses it.

With ``p = percentile`` (99.999 and 2048 bins by default, onnxruntime's defaults) and the
histogram's mass spread uniformly within each bin (a piecewise-linear CDF ``F`` over ``[lo, hi]``,
``N`` values in all):

* asymmetric: cut ``c = (100 - p) / 200`` from each side, ``[F^-1(c N), F^-1((1 - c) N)]``;
* symmetric: the ``p``-th percentile ``t`` of ``|x|``, the first ``t`` with
  ``F(t) - F(-t) = p N / 100``, giving ``[max(-t, lo), min(t, hi)]``.

onnxruntime histograms ``|x|`` for a symmetric calibration and ``x`` otherwise, then takes the
lower edge of the bin where its CDF crosses the percentile; one histogram of ``x`` serves both here
(``symmetric`` is known only when ``qparams`` is asked), and the percentile is interpolated within
its bin, so the two agree to within a bin width. The state is the running histogram of
:mod:`~onnxq.calibration.observers.running_histogram`, so ``merge`` is exact when the two ranges
are equal.
"""

from __future__ import annotations

import numpy as np

from onnxq.calibration.observers.base import register_observer
from onnxq.calibration.observers.running_histogram import RunningHistogramObserver
from onnxq.errors import ConfigError


def first_crossing(points: np.ndarray, cumulative: np.ndarray, target: float) -> float:
    """The smallest ``x`` where the piecewise-linear ``cumulative(points)`` reaches ``target``.

    ``points`` are increasing, ``cumulative`` non-decreasing; a target beyond the last value gives
    the last point, one at or below the first value the first point.
    """
    k = int(np.searchsorted(cumulative, target, side="left"))
    if k == 0:
        return float(points[0])
    if k >= points.size:
        return float(points[-1])
    c0, c1 = float(cumulative[k - 1]), float(cumulative[k])
    return float(points[k - 1] + (points[k] - points[k - 1]) * (target - c0) / (c1 - c0))


def histogram_quantile(hist: np.ndarray, lo: float, hi: float, fraction: float) -> float:
    """The value below which ``fraction`` of the histogram's mass lies (uniform within bins)."""
    if not hi > lo:
        return lo
    edges = np.linspace(lo, hi, hist.size + 1)
    cdf = np.concatenate(([0.0], np.cumsum(hist)))
    return first_crossing(edges, cdf, fraction * float(cdf[-1]))


def histogram_abs_quantile(hist: np.ndarray, lo: float, hi: float, fraction: float) -> float:
    """The ``t >= 0`` with ``fraction`` of the mass in ``[-t, t]`` (uniform within bins).

    ``G(t) = F(t) - F(-t)`` is linear between the points ``0`` and ``|edge|``, so it is evaluated
    there (``F`` by interpolation on the bin edges) and inverted on that piecewise-linear curve.
    """
    if not hi > lo:
        return max(abs(lo), abs(hi))
    edges = np.linspace(lo, hi, hist.size + 1)
    cdf = np.concatenate(([0.0], np.cumsum(hist)))
    ts = np.unique(np.concatenate(([0.0], np.abs(edges))))
    inside = np.interp(ts, edges, cdf, left=0.0, right=cdf[-1]) - np.interp(
        -ts, edges, cdf, left=0.0, right=cdf[-1]
    )
    return first_crossing(ts, np.maximum.accumulate(inside), fraction * float(cdf[-1]))


def percentile_range(
    hist: np.ndarray, lo: float, hi: float, percentile: float, symmetric: bool
) -> tuple[float, float]:
    """The range of the module docstring for a histogram over ``[lo, hi]``."""
    if symmetric:
        t = histogram_abs_quantile(hist, lo, hi, percentile / 100.0)
        return max(-t, lo), min(t, hi)
    cut = (100.0 - percentile) / 200.0
    return histogram_quantile(hist, lo, hi, cut), histogram_quantile(hist, lo, hi, 1.0 - cut)


@register_observer("percentile")
class PercentileObserver(RunningHistogramObserver):
    """Percentile range of a running histogram (onnxruntime's percentile calibration), per tensor."""

    kind = "percentile"

    def __init__(self, axis: int | None = None, percentile: float = 99.999, bins: int = 2048) -> None:
        super().__init__(axis, bins)
        p = percentile
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 50.0 < p <= 100.0:
            raise ConfigError(f"observer 'percentile': percentile must be a number in (50, 100], got {p!r}")
        self.percentile = float(p)

    def choose_range(self, dtype: str, symmetric: bool, reduce_range: bool) -> tuple[float, float]:
        return percentile_range(self.histogram, self._lo, self._hi, self.percentile, symmetric)
