"""The two array operations of the running histograms: counting values into equal bins, and
moving a histogram onto a wider range (PyTorch's re-binning). Pure numpy, no state."""

from __future__ import annotations

import numpy as np

_CHUNK = 1 << 16  # elements binned per step: keeps the temporaries in cache
_LANES = 4  # interleaved sub-histograms: runs of equal values (ReLU zeros) do not serialise
_LANE_OF = np.arange(_CHUNK) % _LANES


def bin_counts(x: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Counts of the finite values ``x`` (all within ``[lo, hi]``) in ``bins`` equal bins.

    Bin ``i`` holds ``lo + i w <= v < lo + (i+1) w`` (``w = (hi - lo) / bins``, up to float32
    rounding at the edges, as PyTorch's ``histc``); ``hi`` goes in the last bin. With
    ``hi == lo`` everything goes in bin 0.

    Element ``k`` of each chunk counts into sub-histogram ``k % 4`` of ``bins + 2`` slots, so that
    runs of equal values do not serialise one counter: its slot ``lane * (bins + 2) + 1 +
    (v - lo) / w`` is computed with the lane offset folded into one multiply-add, truncated and
    counted by a single ``np.bincount``. The two guard slots of each lane catch positions that
    rounding pushes just outside ``[0, bins)`` (and ``hi`` itself) and are folded into the end bins.
    When ``lo`` is far from zero relative to the range it is subtracted first (no cancellation).
    """
    flat = x.reshape(-1)
    counts = np.zeros(bins, dtype=np.float64)
    if flat.size == 0:
        return counts
    if not hi > lo:
        counts[0] = flat.size
        return counts
    dt = np.dtype(np.float64) if flat.dtype == np.float64 or bins > 8192 else np.dtype(np.float32)
    slots = bins + 2
    width = _LANES * slots
    scale = bins / (hi - lo)
    subtract_first = abs(lo) > 8.0 * (hi - lo)
    n0 = min(_CHUNK, flat.size)
    offset = _LANE_OF[:n0] * float(slots) + 1.0 - (0.0 if subtract_first else lo * scale)
    offset = offset.astype(dt)
    scale_t, lo_t = dt.type(scale), dt.type(lo)
    tmp = np.empty(n0, dtype=dt)
    idx = np.empty(n0, dtype=np.intp)
    lanes = np.zeros(width, dtype=np.float64)
    for begin in range(0, flat.size, _CHUNK):
        part = flat[begin : begin + _CHUNK]
        n = part.size
        t, ix = tmp[:n], idx[:n]
        if subtract_first:
            np.subtract(part, lo_t, out=t)
            np.multiply(t, scale_t, out=t)
        else:
            np.multiply(part, scale_t, out=t)
        np.add(t, offset[:n], out=t)
        np.copyto(ix, t, casting="unsafe")  # truncation; t >= 1 - rounding > 0
        got = np.bincount(ix, minlength=width)
        lanes += got[:width]
        if got.size > width:  # rounding beyond the last guard slot: count it in the last bin
            lanes[width - 1] += got[width:].sum()
    per_lane = lanes.reshape(_LANES, slots).sum(axis=0)
    counts += per_lane[1 : bins + 1]
    counts[0] += per_lane[0]
    counts[-1] += per_lane[bins + 1]
    return counts


def rebin(
    hist: np.ndarray, lo: float, hi: float, new_lo: float, new_hi: float, upsample_rate: int
) -> np.ndarray:
    """Move a histogram over ``[lo, hi]`` onto the same number of bins over ``[new_lo, new_hi]``.

    ``[new_lo, new_hi]`` must contain ``[lo, hi]``. Each bin is split into ``upsample_rate``
    parts of equal mass; each part lands in the new bin containing its mid-point.
    """
    bins = hist.shape[0]
    if lo == new_lo and hi == new_hi:
        return hist.copy()
    if not hi > lo:  # all mass at one point
        return bin_counts(np.asarray([lo]), new_lo, new_hi, bins) * float(hist.sum())
    fine = bins * upsample_rate
    mids = lo + (np.arange(fine, dtype=np.float64) + 0.5) * ((hi - lo) / fine)
    target = np.floor((mids - new_lo) * (bins / (new_hi - new_lo))).astype(np.intp)
    np.clip(target, 0, bins - 1, out=target)
    weights = np.repeat(hist / upsample_rate, upsample_rate)
    return np.bincount(target, weights=weights, minlength=bins)
