"""The array operations of the running histograms, on a power-of-two grid. Pure numpy, no state.

A histogram of ``B`` bins lives on the grid of width ``w = 2^e``: bin ``i`` holds the values
``v`` with ``floor(v / w) = k0 + i``, i.e. ``(k0 + i) w <= v < (k0 + i + 1) w``. For a data range
``[lo, hi]`` (:func:`grid_for`) ``e`` is the smallest exponent whose ``B`` cells, starting at the
cell of ``lo``, reach the cell of ``hi`` (for a *centred* histogram: the cells ``-B/2 .. B/2 - 1``
reach ``-T`` and ``T = max(|lo|, |hi|)``). Three properties follow, and make a histogram a
function of the data set alone, whatever the order, the batching or the sharding of the data:

* a bin index is exact: ``v / 2^e`` is exact in floating point, so is its floor
  (:func:`grid_counts`); no value moves between bins by rounding;
* grids nest: a cell of width ``2^e`` lies inside one cell of width ``2^(e + d)``, the one of
  index ``floor(k / 2^d)``, so moving a histogram to a wider range adds whole counts together
  (:func:`regrid`), exactly, and binning then coarsening equals binning coarse;
* ``e`` grows with the range, so the grid of a union of data sets is at least as wide as each
  part's: merging two histograms is regridding both onto the union's grid and adding them.

The price is resolution: the data range fills between half of the cells and all of them. The
running histograms therefore keep ``8 x bins`` cells and hand their searches ``bins`` equal bins
over exactly the data range (:func:`resample`), as PyTorch's and onnxruntime's histograms are
laid out, each bin within a quarter of a bin of where a direct histogram would put its mass.
A range of one value (a constant tensor) gets the grid of width ``2^(exponent(|v|) - 60)``,
fine enough for any float32 range and a fixed function of the value; an all-zero tensor the
width ``2^-1000``.
"""

from __future__ import annotations

import math

import numpy as np

from onnxq.kernels.hist import grid_counts_f32
from onnxq.kernels.reference.hist import grid_counts as reference_grid_counts

#: Finest grid: a range of a single value ``v`` gets width ``2^(exponent(v) - FINEST)``.
FINEST = 60
ZERO_EXPONENT = -1000


def _cells(lo: float, hi: float, e: int) -> int:
    return math.floor(math.ldexp(hi, -e)) - math.floor(math.ldexp(lo, -e)) + 1


def _fits(lo: float, hi: float, bins: int, e: int, centred: bool) -> bool:
    if centred:
        half = bins // 2
        return math.floor(math.ldexp(lo, -e)) >= -half and math.floor(math.ldexp(hi, -e)) <= bins - half - 1
    return _cells(lo, hi, e) <= bins


def grid_for(lo: float, hi: float, bins: int, centred: bool = False) -> tuple[int, int]:
    """``(k0, e)``: the power-of-two grid of ``bins`` cells (module docstring) holding the finite
    range ``[lo, hi]``; centred: the cells ``-bins // 2 ...`` holding ``[-T, T]``."""
    if centred:
        t = max(-lo, hi, 0.0)
        lo, hi = -t, t
    magnitude = max(abs(lo), abs(hi))
    floor_e = math.frexp(magnitude)[1] - FINEST if magnitude > 0 else ZERO_EXPONENT
    span = hi - lo
    e = floor_e if not span > 0 else max(floor_e, math.frexp(span / bins)[1] - 1)
    while not _fits(lo, hi, bins, e, centred):
        e += 1
    while e > floor_e and _fits(lo, hi, bins, e - 1, centred):
        e -= 1
    k0 = -(bins // 2) if centred else math.floor(math.ldexp(lo, -e))
    return k0, e


def grid_edges(k0: int, e: int, bins: int) -> tuple[float, float]:
    """The interval ``[k0 w, (k0 + bins) w)`` the bins cover, ``w = 2^e``."""
    return math.ldexp(float(k0), e), math.ldexp(float(k0 + bins), e)


def grid_counts(x: np.ndarray, k0: int, e: int, bins: int) -> np.ndarray:
    """Counts of the finite values ``x`` (all inside the grid) in the grid's ``bins`` cells: the
    native kernel for float32 data (:func:`onnxq.kernels.hist.grid_counts_f32`), its numpy
    reference (:func:`onnxq.kernels.reference.hist.grid_counts`, the same counts) otherwise."""
    if x.dtype == np.float32:
        return grid_counts_f32(x, k0, e, bins)
    return reference_grid_counts(x, k0, e, bins)


def regrid(hist: np.ndarray, k0: int, e: int, new_k0: int, new_e: int) -> np.ndarray:
    """``hist`` on grid ``(k0, e)`` moved onto the grid ``(new_k0, new_e)`` (``new_e >= e``, the
    new cells covering the old ones): each cell's count is added to the coarse cell holding it."""
    bins = hist.shape[0]
    if (k0, e) == (new_k0, new_e):
        return hist.copy()
    if new_e < e:
        raise ValueError(f"cannot regrid a histogram onto a finer grid (2^{e} -> 2^{new_e})")
    shift = new_e - e
    cells = np.arange(k0, k0 + bins, dtype=np.int64)
    # floor division by 2^shift, negatives included; from 2^62 on every cell lands in -1 or 0
    target = np.right_shift(cells, shift) if shift < 62 else np.where(cells < 0, -1, 0)
    target = target - new_k0
    used = hist != 0
    if np.any((target[used] < 0) | (target[used] >= bins)):
        raise ValueError("the new grid does not cover the histogram")
    return np.bincount(target[used], weights=hist[used], minlength=bins)[:bins]


def resample(cells: np.ndarray, k0: int, e: int, lo: float, hi: float, bins: int) -> np.ndarray:
    """The counts of grid ``(k0, e)`` moved onto ``bins`` equal bins over ``[lo, hi]``, each cell's
    count spread uniformly over the cell: the differences of the piecewise-linear cumulative count
    at the new edges. With ``hi == lo`` everything goes in bin 0. Counts are kept exactly (the
    total is the same); a cell's count is split where a new edge cuts it."""
    out = np.zeros(bins, dtype=np.float64)
    total = float(cells.sum())
    if not total:
        return out
    if not hi > lo:
        out[0] = total
        return out
    n = cells.shape[0]
    edges = np.ldexp(np.arange(k0, k0 + n + 1, dtype=np.float64), e)
    cumulative = np.concatenate(([0.0], np.cumsum(cells)))
    at = np.interp(np.linspace(lo, hi, bins + 1), edges, cumulative)
    at[0], at[-1] = 0.0, total  # every value lies within [lo, hi]
    return np.diff(at)


__all__ = ["grid_counts", "grid_edges", "grid_for", "regrid", "resample"]
