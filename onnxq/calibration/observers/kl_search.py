"""Threshold search minimising the KL divergence of 8-bit quantization (TensorRT's entropy
calibration, as onnxruntime's ``HistogramCollector.get_entropy_threshold`` defines it).

The histogram has ``B`` bins over ``[-T, T]``, ``z = B // 2`` the bin where zero lies. Candidate
``i`` (``Q // 2 <= i <= z``, ``Q`` the quantized bins) keeps bins ``s = z - i`` to
``e = min(z + i + 1, B)`` (exclusive), ``L = e - s`` of them, ``m = L // Q`` per quantized bin:

* the reference ``p``: the kept bins, with everything left of them added to the first and
  everything right of them to the last (clipping);
* the candidate ``q``: the kept bins (without the outliers) summed in groups of ``m``, the
  remainder going to the last group; each group's sum ``S_g`` is spread back as
  ``floor(S_g / n_g)`` over all ``m`` positions of the group, ``n_g`` the group's non-zero
  ``p`` entries (0 when ``n_g = 0``; the ``L - Q m`` remainder positions keep 0);
* both smoothed: zeros become ``eps = 1e-4``, the ``n`` non-zeros lose ``eps * zeros / n``;
* ``KL(p || q) = sum_j P_j log(P_j / Q_j)`` of the normalised ``P``, ``Q``.

The chosen candidate is the first one of least divergence, equal meaning within float32 resolution
(``TIE_RTOL``): candidates that differ only by empty bins at their ends differ only by the
smoothing's ``eps`` terms, about 1e-7 of the divergence, which onnxruntime, computing in float32,
cannot tell apart, and it takes the first of them. Its range is ``[edge_s, edge_e]``.
The spreading over whole groups in whole counts, and the remainder left at 0, are onnxruntime's
definition and are kept so that the thresholds agree with it. Every candidate is evaluated at
once, in blocks, from prefix sums of the histogram: no loop over bins.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-4
#: Divergences this close (relative) to the least count as equal to it: float32 resolution.
TIE_RTOL = 1e-6
_BLOCK = 64  # candidates per block: a block's arrays are _BLOCK x B


def _smooth(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row-wise smoothing of non-negative ``x`` over its ``valid`` entries (0 elsewhere); rows
    with no non-zero entry come back as NaN rows."""
    zero = (x == 0) & valid
    nonzero = (x != 0) & valid
    n_zero = zero.sum(axis=1, keepdims=True)
    n_nonzero = nonzero.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps1 = EPS * n_zero / n_nonzero
    out = np.where(zero, EPS, np.where(nonzero, x - eps1, 0.0))
    out[n_nonzero[:, 0] == 0] = np.nan
    return out


def kl_divergences(hist: np.ndarray, quantized_bins: int) -> np.ndarray:
    """The divergence of every candidate ``i = Q // 2 .. B // 2`` (module docstring), in order."""
    hist = np.asarray(hist, dtype=np.float64)
    bins, q_bins = hist.size, quantized_bins
    z = bins // 2
    cum = np.concatenate(([0.0], np.cumsum(hist)))
    total = cum[-1]
    halves = np.arange(q_bins // 2, z + 1)
    out = np.empty(halves.size)
    for b0 in range(0, halves.size, _BLOCK):
        i = halves[b0 : b0 + _BLOCK]
        start = z - i
        end = np.minimum(z + i + 1, bins)
        length, m = end - start, (end - start) // q_bins
        cols = np.arange(int(length.max()))  # a block's candidates keep at most this many bins
        valid = cols[None, :] < length[:, None]
        idx = np.minimum(start[:, None] + cols[None, :], bins - 1)
        p = np.where(valid, hist[idx], 0.0)
        p[:, 0] += cum[start]
        p[np.arange(i.size), length - 1] += total - cum[end]
        # group sums of the kept bins (the last group takes the remainder) and non-zero counts of p
        g_lo = start[:, None] + np.arange(q_bins)[None, :] * m[:, None]
        g_hi = np.where(np.arange(q_bins)[None, :] == q_bins - 1, end[:, None], g_lo + m[:, None])
        sums = cum[g_hi] - cum[g_lo]
        nz_cum = np.concatenate((np.zeros((i.size, 1)), np.cumsum(p != 0, axis=1)), axis=1)
        g_pos = np.arange(q_bins)[None, :] * m[:, None]
        norms = np.take_along_axis(nz_cum, g_pos + m[:, None], axis=1) - np.take_along_axis(
            nz_cum, g_pos, axis=1
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.where(norms > 0, np.floor(sums / norms), 0.0)
        expanded = cols[None, :] < (q_bins * m)[:, None]
        group = np.minimum(cols[None, :] // m[:, None], q_bins - 1)
        q = np.where(expanded, np.take_along_axis(spread, group, axis=1), 0.0)
        ps, qs = _smooth(p, valid), _smooth(q, valid)
        pn = ps / ps.sum(axis=1, keepdims=True)
        qn = qs / qs.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(valid, pn * np.log(pn / qn), 0.0)
        kl = terms.sum(axis=1)
        out[b0 : b0 + i.size] = np.where(np.isnan(kl), np.inf, kl)
    return out


def entropy_threshold(hist: np.ndarray, quantized_bins: int) -> tuple[int, int]:
    """The ``(start_bin, end_bin)`` (end exclusive) of the least-divergence candidate."""
    bins = hist.size
    z = bins // 2
    kl = kl_divergences(hist, quantized_bins)
    # the first of the least, up to float32 resolution (module docstring)
    i = quantized_bins // 2 + int(np.flatnonzero(kl <= kl.min() * (1 + TIE_RTOL))[0])
    return z - i, min(z + i + 1, bins)
