"""Numpy reference of the ``hist`` kernel family: counts on a power-of-two grid.

Value ``v`` goes to cell ``floor(v 2^-e) - k0`` of ``cells`` (clipped to the end cells, which the
observers never need: their grid holds their data). The scaling and the floor are computed in
float64, where both are exact for every float32 or float64 value in range: the counts are exact,
and the native kernel gives the same ones. The observers' grid is
:mod:`onnxq.calibration.observers.histogram_binning`.
"""

from __future__ import annotations

import math

import numpy as np

_CHUNK = 1 << 16  # elements binned per step: keeps the temporaries in cache
_LANES = 4  # interleaved sub-histograms: runs of equal values (ReLU zeros) do not serialise
_LANE_OF = np.arange(_CHUNK, dtype=np.int64) % _LANES


def grid_counts(x: np.ndarray, k0: int, e: int, bins: int) -> np.ndarray:
    """Counts of the finite values ``x`` (all inside the grid) in the grid's ``bins`` cells.

    The cell ``floor(v 2^-e)`` is computed in float64, where the scaling by a power of two and the
    floor are exact for every float32 or float64 value in range. Element ``j`` of each chunk counts
    into sub-histogram ``j % 4`` so that runs of equal values do not serialise one counter; the
    lane offset and ``-k0`` are added in integers, and a single ``np.bincount`` counts the chunk.
    A value outside the grid (none, for a grid from :func:`grid_for` of the data) is clipped to
    the end bin rather than counted elsewhere.
    """
    flat = x.reshape(-1)
    counts = np.zeros(bins, dtype=np.float64)
    if flat.size == 0:
        return counts
    inv = np.float64(math.ldexp(1.0, -e))  # a float64 scalar: float32 data is scaled in float64
    n0 = min(_CHUNK, flat.size)
    offset = _LANE_OF[:n0] * bins
    tmp = np.empty(n0, dtype=np.float64)
    idx = np.empty(n0, dtype=np.int64)
    width = _LANES * bins
    lanes = np.zeros(width, dtype=np.int64)
    for begin in range(0, flat.size, _CHUNK):
        part = flat[begin : begin + _CHUNK]
        n = part.size
        t, ix = tmp[:n], idx[:n]
        np.multiply(part, inv, out=t)
        np.floor(t, out=t)
        np.subtract(t, float(k0), out=t)  # exact: both are integers below 2^53
        np.clip(t, 0.0, bins - 1.0, out=t)
        np.copyto(ix, t, casting="unsafe")
        ix += offset[:n]
        lanes += np.bincount(ix, minlength=width)
    counts += lanes.reshape(_LANES, bins).sum(axis=0)
    return counts


__all__ = ["grid_counts"]
