"""Range search on a histogram minimising the L2 quantization error (PyTorch's HistogramObserver).

The histogram has ``B`` source bins of width ``w`` over ``[lo, hi]``. Quantizing the sub-range of
source bins ``[s, e]`` onto ``D`` destination bins (``D = 256`` for 8 bits) gives destination bins
of width ``d = w (e - s + 1) / D``. Treating each source bin's count ``h_i`` as spread uniformly
(density ``h_i / w``), the L2 error of a source bin is the integral of ``x^2`` of its distance to the
centre of the destination bin(s) it falls into::

    err_i = h_i / w * [ int_{b0}^{d/2} x^2 + (j_end - j_begin - 1) int_{-d/2}^{d/2} x^2
                        + int_{-d/2}^{b1} x^2 ]      with int_a^b x^2 = (b^3 - a^3) / 3

where ``j_begin/j_end`` are the destination bins (clamped to ``[0, D-1]``) holding the bin's two
edges and ``b0, b1`` the edges' offsets from those bins' centres. Values outside ``[s, e]`` fall
into the clamped end bins, so clipping is penalised too.

The search (the caffe2 ``NormMinimization`` walk PyTorch uses) shrinks the range from the side that
moves more: quantiles ``alpha`` (from 0) and ``beta`` (from 1) advance by ``1e-5``; the candidate
start bin is the first bin whose cumulative count reaches ``alpha``, the end bin the last one whose
cumulative count stays within ``beta`` (compared in float32); whichever bound moves more bins is
moved. The walk stops at the first candidate whose error is larger than the previous one.

The walk is evaluated here without the 1e5-step Python loop: steps that change nothing are jumped
over in one go, the candidate sequence (independent of the errors) is generated with bisection on
the cumulative counts, and errors are computed for blocks of candidates at once in numpy.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from itertools import islice

import numpy as np

STEP = 1e-5


def candidate_ranges(hist: np.ndarray, step: float = STEP) -> Iterator[tuple[int, int]]:
    """The ``(start_bin, end_bin)`` pairs the walk visits, assuming each one is accepted."""
    bins = hist.shape[0]
    total = float(hist.sum())
    # Cumulative counts and quantile thresholds compared in float32, as PyTorch does: it matters
    # when a threshold lands on a plateau of the cumulative counts (empty bins).
    csum = np.cumsum(hist, dtype=np.float64).astype(np.float32).tolist()
    f32 = np.float32
    alpha, beta = 0.0, 1.0
    start, end = 0, bins - 1
    while alpha < beta:
        next_alpha, next_beta = alpha + step, beta - step
        left = min(end, max(start, bisect_left(csum, float(f32(next_alpha * total)))))
        right = max(start, min(end, bisect_right(csum, float(f32(next_beta * total))) - 1))
        if left - start > end - right:
            alpha = next_alpha
            start = left
        elif right < end:
            beta = next_beta
            end = right
        else:
            # Nothing moves: only beta advances, until the end bin's cumulative count exceeds it.
            if start >= end:
                break
            k = math.floor((beta - csum[end] / total) / step) if total > 0 else 0
            beta -= max(k, 1) * step
            continue
        yield start, end


def quantization_errors(
    hist: np.ndarray, bin_width: float, starts: np.ndarray, ends: np.ndarray, dst_bins: int
) -> np.ndarray:
    """L2 error (module docstring) of quantizing onto each ``[starts[k], ends[k]]`` range."""
    nz = np.flatnonzero(hist)
    density = hist[nz].astype(np.float64) / bin_width
    dst_w = (bin_width * (ends - starts + 1) / dst_bins).astype(np.float64)[:, None]
    begin = (nz[None, :] - starts[:, None]) * bin_width
    end = begin + bin_width
    j_begin = np.clip(np.floor(begin / dst_w), 0, dst_bins - 1)
    j_end = np.clip(np.floor(end / dst_w), 0, dst_bins - 1)
    half = dst_w / 2
    b0 = begin - (j_begin + 0.5) * dst_w
    b1 = end - (j_end + 0.5) * dst_w
    cube_half = half * half * half  # products, not ** 3: numpy's pow is ~30x slower
    err = (cube_half - b0 * b0 * b0) + (j_end - j_begin - 1) * (2 * cube_half) + (b1 * b1 * b1 + cube_half)
    return (err / 3.0) @ density


def search_range(
    hist: np.ndarray, lo: float, hi: float, dst_bins: int = 256, step: float = STEP
) -> tuple[float, float]:
    """The sub-range of ``[lo, hi]`` (bin edges) that the L2 walk settles on."""
    bins = hist.shape[0]
    if not hi > lo or float(hist.sum()) <= 0:
        return lo, hi
    bin_width = (hi - lo) / bins
    cands = candidate_ranges(hist, step)
    start, end = 0, bins - 1
    best = math.inf
    block = 8
    while True:
        chunk = np.asarray(list(islice(cands, block)), dtype=np.int64)
        if chunk.shape[0] == 0:
            break
        errs = quantization_errors(hist, bin_width, chunk[:, 0], chunk[:, 1], dst_bins)
        prev = np.concatenate(([best], errs[:-1]))
        worse = np.flatnonzero(errs > prev)
        if worse.size:
            stop = int(worse[0])
            if stop > 0:
                start, end = (int(v) for v in chunk[stop - 1])
            break
        best = float(errs[-1])
        start, end = (int(v) for v in chunk[-1])
        block = min(block * 2, 256)
    return lo + bin_width * start, lo + bin_width * (end + 1)
