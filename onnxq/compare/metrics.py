"""The error metrics of ``onnxq compare``, as pure numpy, streamed over samples.

For a reference tensor ``r`` (fp32 model) and the quantized model's ``q``, over every element of
every sample seen:

* SQNR (dB) ``= 10 log10(sum r^2 / sum (r - q)^2)`` (infinite when ``q == r``);
* cosine similarity ``= sum r q / sqrt(sum r^2 * sum q^2)`` (1 when both are all zeros);
* max abs error ``= max |r - q|``.

:class:`ErrorStats` keeps only the four sums (float64) and the running maximum, so its memory does
not depend on the number of samples; :class:`Histogram` counts values on bins fixed before the
first sample (a quantized tensor's representable range), with counts below and above it.
"""

from __future__ import annotations

import math

import numpy as np


def sqnr_db(signal_energy: float, noise_energy: float) -> float:
    """``10 log10(signal / noise)``; ``inf`` without noise, ``-inf`` for noise on a zero signal."""
    if noise_energy == 0.0:
        return math.inf
    if signal_energy == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_energy / noise_energy)


def cosine(dot: float, energy_a: float, energy_b: float) -> float:
    """``dot / sqrt(energy_a * energy_b)``; 1 when both are zero, 0 when only one is."""
    if energy_a == 0.0 and energy_b == 0.0:
        return 1.0
    if energy_a == 0.0 or energy_b == 0.0:
        return 0.0
    return float(dot / math.sqrt(energy_a * energy_b))


class ErrorStats:
    """Running sums for SQNR, cosine and max abs error of ``got`` against ``reference``."""

    def __init__(self) -> None:
        self.count = 0
        self.ref_energy = 0.0
        self.got_energy = 0.0
        self.noise_energy = 0.0
        self.dot = 0.0
        self.max_abs = 0.0

    def update(self, reference: np.ndarray, got: np.ndarray) -> None:
        r = np.asarray(reference, dtype=np.float64).reshape(-1)
        q = np.asarray(got, dtype=np.float64).reshape(-1)
        if r.shape != q.shape:
            raise ValueError(f"reference has {r.size} elements, the quantized tensor {q.size}")
        e = r - q
        self.count += r.size
        self.ref_energy += float(r @ r)
        self.got_energy += float(q @ q)
        self.noise_energy += float(e @ e)
        self.dot += float(r @ q)
        if e.size:
            self.max_abs = max(self.max_abs, float(np.max(np.abs(e))))

    @property
    def sqnr_db(self) -> float:
        return sqnr_db(self.ref_energy, self.noise_energy)

    @property
    def cosine(self) -> float:
        return cosine(self.dot, self.ref_energy, self.got_energy)


class Histogram:
    """Counts of values on ``bins`` equal bins over ``[lo, hi]``, plus counts below and above."""

    def __init__(self, lo: float, hi: float, bins: int = 32) -> None:
        if not hi > lo:
            hi = lo + 1.0
        self.lo, self.hi = float(lo), float(hi)
        self.counts = np.zeros(bins, dtype=np.int64)
        self.below = 0
        self.above = 0

    def update(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        v = v[np.isfinite(v)]
        self.below += int(np.count_nonzero(v < self.lo))
        self.above += int(np.count_nonzero(v > self.hi))
        inside = v[(v >= self.lo) & (v <= self.hi)]
        idx = ((inside - self.lo) * (len(self.counts) / (self.hi - self.lo))).astype(np.int64)
        self.counts += np.bincount(np.minimum(idx, len(self.counts) - 1), minlength=len(self.counts))


__all__ = ["ErrorStats", "Histogram", "cosine", "sqnr_db"]
