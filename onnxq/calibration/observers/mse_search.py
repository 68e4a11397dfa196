"""Expected quantization MSE of a histogram for candidate scales and zero points, and the search.

A quantizer with scale ``s``, zero point ``z`` and integer range ``[qmin, qmax]`` represents the
lattice ``(k - z) s``; everything below ``L = (qmin - z) s`` becomes ``L`` and everything above
``U = (qmax - z) s`` becomes ``U`` (clipping), everything between rounds to the nearest lattice
point. With a histogram's mass spread uniformly within each bin ``[a, b]`` (density ``h / (b - a)``)
the expected squared error is exact in closed form:

* clipping: ``int_a^b (x - L)^2 dx = ((b - L)^3 - (a - L)^3) / 3`` on the part below ``L``, the same
  with ``U`` above it;
* rounding: the error ``x - s round(x / s)`` is periodic, so with ``u = x / s + 1/2``,
  ``f = u - floor(u)``, ``int (x - s round(x/s))^2 dx = s^3 [R(u)]`` for the primitive
  ``R(u) = floor(u) / 12 + ((f - 1/2)^3 + 1/8) / 3`` (a whole period contributes ``s^3 / 12``).

:func:`mse_range` scales the observed range ``[lo, hi]`` (widened to contain 0) by
``k / grid``, ``k = 1 .. grid``, turns each candidate into the scale and zero point
:func:`onnxq.qparams.choose_qparams` would give it for the requested dtype, symmetry and
``reduce_range`` (the grid actually used), and keeps the candidate of least expected error
(the widest of equal ones). Everything is evaluated at once as a ``grid x bins`` array.
"""

from __future__ import annotations

import numpy as np

from onnxq.qparams import choose_qparams, qrange
from onnxq.scheme import PerChannel


def _rounding_primitive(u: np.ndarray) -> np.ndarray:
    whole = np.floor(u)
    t = u - whole - 0.5
    return whole / 12.0 + (t * t * t + 0.125) / 3.0


def expected_errors(
    hist: np.ndarray, lo: float, hi: float, scales: np.ndarray, zero_points: np.ndarray, qmin: int, qmax: int
) -> np.ndarray:
    """Total expected squared error of the histogram over ``[lo, hi]`` (``lo < hi``) for each
    ``(scale, zero point)`` pair (module docstring); one value per candidate."""
    bins = hist.size
    edges = np.linspace(lo, hi, bins + 1)
    a, b = edges[None, :-1], edges[None, 1:]
    density = hist / ((hi - lo) / bins)
    s = np.asarray(scales, dtype=np.float64)[:, None]
    z = np.asarray(zero_points, dtype=np.float64)[:, None]
    low, high = (qmin - z) * s, (qmax - z) * s
    below_hi = np.minimum(b, low)
    clip_low = np.where(a < low, ((below_hi - low) ** 3 - (a - low) ** 3) / 3.0, 0.0)
    above_lo = np.maximum(a, high)
    clip_high = np.where(b > high, ((b - high) ** 3 - (above_lo - high) ** 3) / 3.0, 0.0)
    mid_a, mid_b = np.maximum(a, low), np.minimum(b, high)
    rounding = np.where(
        mid_b > mid_a,
        s**3 * (_rounding_primitive(mid_b / s + 0.5) - _rounding_primitive(mid_a / s + 0.5)),
        0.0,
    )
    return (clip_low + clip_high + rounding) @ density


def mse_range(
    hist: np.ndarray, lo: float, hi: float, dtype: str, symmetric: bool, reduce_range: bool, grid: int
) -> tuple[float, float]:
    """The candidate ``k / grid * [min(lo, 0), max(hi, 0)]`` of least expected error."""
    if not hi > lo or not hist.any():  # one value: the range's end holds it exactly
        return lo, hi
    lo0, hi0 = min(lo, 0.0), max(hi, 0.0)
    fractions = np.arange(1, grid + 1) / grid
    cand_lo, cand_hi = fractions * lo0, fractions * hi0
    qp = choose_qparams(cand_lo, cand_hi, dtype, symmetric, reduce_range, PerChannel(0))
    qmin, qmax = qrange(dtype, symmetric, reduce_range)
    errors = expected_errors(hist, lo, hi, qp.scale, qp.zero_point.astype(np.int64), qmin, qmax)
    best = int(np.flatnonzero(errors <= errors.min())[-1])
    return float(cand_lo[best]), float(cand_hi[best])
