"""The accuracy metrics of an accuracy budget, and their bootstrap confidence intervals.

A metric scores a quantized model's outputs ``q`` against the fp32 model's ``r`` on held-out
samples (every output with the samples on axis 0); higher is better, and a budget sets the least
score allowed (:attr:`Metric.threshold`):

* ``top1``: top-1 agreement with fp32, in percent: the share of samples whose first output has its
  largest value (last axis) at the same index in both models (at every position, for an output
  with more axes). The budget is the **points of
  agreement the quantized model may lose**: ``0.5`` means agreement ``>= 99.5%``.
* ``sqnr``: output SQNR in dB, ``10 log10(sum r^2 / sum (r - q)^2)`` over every element of every
  output and sample (infinite when ``q == r``). The budget is the **least SQNR allowed, in dB**:
  ``30`` means ``>= 30 dB``.
* a callable ``metric(float_outputs, quant_outputs) -> float`` (each a list of arrays, one per
  model output in graph order, samples on axis 0): its own score; the budget is the **least score
  allowed**.

The interval is the bootstrap percentile interval (:data:`CONFIDENCE`): the held-out samples are
drawn with replacement :data:`RESAMPLES` times (numpy's ``default_rng(seed)``, one ``(resamples,
n)`` index matrix), the metric is computed on each draw, and the interval is the 2.5th and 97.5th
percentiles (numpy's default, linear interpolation) of the draws. For ``top1`` and ``sqnr`` the
draws are computed from per-sample quantities (agreement; signal and noise energy), which gives
the same numbers as recomputing the metric on each drawn set.

How many samples the interval needs to be trusted: the half-width shrinks as ``1/sqrt(n)``, so
the interval's half-width ``h`` on ``n`` samples falls below a tolerance ``t`` from
``n_needed = ceil(n (h / t)^2)`` samples. ``t`` is the budget for ``top1`` (the interval is then
narrower than the loss allowed), :data:`SQNR_TOLERANCE_DB` for ``sqnr``, and given by the caller
for a callable (else not estimated). When the samples agree everywhere (``h = 0``) ``top1`` uses
the rule of three instead: with no disagreement in ``n`` samples the 95% upper bound of the
disagreement rate is ``3 / n``, below ``t`` points from ``n >= 300 / t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxq.compare.metrics import sqnr_db
from onnxq.errors import OnnxqError

#: Bootstrap resamples of the held-out samples.
RESAMPLES = 1000
#: Two-sided confidence of the interval.
CONFIDENCE = 0.95
#: The interval half-width, in dB, at which an SQNR estimate is trusted.
SQNR_TOLERANCE_DB = 0.5

Outputs = Sequence[np.ndarray]
MetricFn = Callable[[Outputs, Outputs], float]


@dataclass(frozen=True)
class Estimate:
    """A metric on the held-out samples with its bootstrap interval.

    ``samples_needed``: held-out samples for the interval's half-width to fall below the
    tolerance (module docstring); None when it cannot be estimated.
    """

    value: float
    low: float
    high: float
    samples: int
    samples_needed: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": _json_float(self.value),
            "ci95": [_json_float(self.low), _json_float(self.high)],
            "samples": self.samples,
            "samples_needed": self.samples_needed,
        }


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


class Metric:
    """A score of quantized outputs against fp32 outputs, the least score a budget allows, and its
    bootstrap draws."""

    def __init__(self, name: str, budget: float, fn: MetricFn | None = None, tolerance: float | None = None):
        self.name = name
        self.budget = float(budget)
        self._fn = fn
        if name == "top1":
            if not budget >= 0:
                raise OnnxqError(f"accuracy budget for top1 is points of agreement lost: >= 0, got {budget}")
            self.threshold, self.unit = 100.0 - self.budget, "% top-1 agreement"
            self.tolerance: float | None = self.budget if tolerance is None else tolerance
        elif name == "sqnr":
            if not math.isfinite(budget):
                raise OnnxqError(f"accuracy budget for sqnr is the least SQNR in dB, got {budget}")
            self.threshold, self.unit = self.budget, " dB output SQNR"
            self.tolerance = SQNR_TOLERANCE_DB if tolerance is None else tolerance
        elif fn is not None:
            self.threshold, self.unit, self.tolerance = self.budget, f" ({name})", tolerance
        else:
            raise OnnxqError(f"unknown metric {name!r}: give 'top1', 'sqnr' or a callable")

    def meets(self, score: float) -> bool:
        return score >= self.threshold

    def score(self, ref: Outputs, got: Outputs) -> float:
        """The metric on all held-out samples."""
        if self._fn is not None:
            return self._call(ref, got)
        if self.name == "top1":
            return float(100.0 * np.mean(_agree(ref, got)))
        signal, noise = _energies(ref, got)
        return sqnr_db(float(signal.sum()), float(noise.sum()))

    def estimate(self, ref: Outputs, got: Outputs, resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
        """The score with its bootstrap interval and the samples the interval needs."""
        n = len(ref[0])
        value = self.score(ref, got)
        idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        draws = self.draws(ref, got, idx)
        alpha = (1.0 - CONFIDENCE) / 2
        with np.errstate(invalid="ignore"):
            low, high = (float(v) for v in np.percentile(draws, [100 * alpha, 100 * (1 - alpha)]))
        low, high = (v if not math.isnan(v) else math.inf for v in (low, high))
        return Estimate(value, low, high, n, self._needed(n, low, high, value))

    def draws(self, ref: Outputs, got: Outputs, idx: np.ndarray) -> np.ndarray:
        """The metric on each resample (a row of sample indices of ``idx``)."""
        if self.name == "top1":
            return 100.0 * _agree(ref, got).astype(np.float64)[idx].mean(axis=1)
        if self.name == "sqnr":
            signal, noise = _energies(ref, got)
            with np.errstate(divide="ignore", invalid="ignore"):
                return 10.0 * np.log10(signal[idx].sum(axis=1) / noise[idx].sum(axis=1))
        return np.array([self._call([o[i] for o in ref], [o[i] for o in got]) for i in idx])

    def _needed(self, n: int, low: float, high: float, value: float) -> int | None:
        finite = math.isfinite(low) and math.isfinite(high)
        if self.tolerance is None or not self.tolerance > 0 or not finite:
            return None
        half = (high - low) / 2
        if half > 0:
            return math.ceil(n * (half / self.tolerance) ** 2)
        if self.name == "top1" and value == 100.0:
            return math.ceil(300.0 / self.tolerance)
        return None

    def _call(self, ref: Outputs, got: Outputs) -> float:
        assert self._fn is not None
        try:
            value = self._fn(list(ref), list(got))
        except Exception as e:  # the user's code: any failure is reported in one line
            raise OnnxqError(f"metric {self.name} raised {type(e).__name__}: {e}") from e
        try:
            return float(value)
        except (TypeError, ValueError):
            raise OnnxqError(f"metric {self.name} returned {type(value).__name__}, not a number") from None


def metric_named(metric: str | MetricFn, budget: float, tolerance: float | None = None) -> Metric:
    """The :class:`Metric` for ``"top1"``, ``"sqnr"`` or a callable (named after its ``__name__``)."""
    if callable(metric):
        name = getattr(metric, "__qualname__", None) or getattr(metric, "__name__", None) or repr(metric)
        return Metric(str(name), budget, metric, tolerance)
    return Metric(metric, budget, tolerance=tolerance)


def _agree(ref: Outputs, got: Outputs) -> np.ndarray:
    """Per sample: whether the first output's argmax (last axis) is the same in both."""
    r, q = np.asarray(ref[0]), np.asarray(got[0])
    n = len(r)
    top_r = np.argmax(r.reshape(n, -1, r.shape[-1]), axis=-1)
    top_q = np.argmax(q.reshape(n, -1, q.shape[-1]), axis=-1)
    return (top_r == top_q).all(axis=1)


def _energies(ref: Outputs, got: Outputs) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the fp32 outputs' energy and the error's energy, summed over outputs."""
    n = len(ref[0])
    signal, noise = np.zeros(n), np.zeros(n)
    for r, q in zip(ref, got, strict=True):
        r64, q64 = np.asarray(r, np.float64).reshape(n, -1), np.asarray(q, np.float64).reshape(n, -1)
        signal += np.einsum("ij,ij->i", r64, r64)
        noise += np.einsum("ij,ij->i", r64 - q64, r64 - q64)
    return signal, noise


__all__ = ["CONFIDENCE", "RESAMPLES", "SQNR_TOLERANCE_DB", "Estimate", "Metric", "MetricFn", "metric_named"]
