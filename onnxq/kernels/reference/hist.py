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





KL_EPS = 1e-4
_KL_BLOCK = 64  # candidates per block: a block's arrays are _KL_BLOCK x bins
_log = np.frompyfunc(math.log, 1, 1)  # the C library's logarithm, as the native kernel calls it


def _row_sums(x: np.ndarray) -> np.ndarray:
    """Row sums added left to right (the native kernel's order; padding zeros add nothing)."""
    return np.cumsum(x, axis=1)[:, -1]


def kl_divergences(hist: np.ndarray, quantized_bins: int) -> np.ndarray:
    """The divergence of every candidate ``i = Q // 2 .. B // 2`` of the entropy calibration (the
    maths: :mod:`onnxq.calibration.observers.kl_search`), ``inf`` where there is none.

    With ``ps``/``qs`` the smoothed windows and ``Sp``/``Sq`` their sums,
    ``KL = A / Sp + log(Sq / Sp)``, ``A = sum_j ps_j log(ps_j / qs_j)``; ``Sp`` and ``Sq`` come
    from the totals and the numbers of zeros, ``ps_j / qs_j`` is ``ps_j`` times the group's
    ``1 / qs``. Every candidate of a block is evaluated at once from prefix sums of the histogram;
    ``A`` runs left to right and the logarithm is the C library's, so the native kernel's doubles
    are the same ones.
    """
    hist = np.asarray(hist, dtype=np.float64)
    bins, q_bins = hist.size, quantized_bins
    z = bins // 2
    cum = np.concatenate(([0.0], np.cumsum(hist)))
    total = cum[-1]
    halves = np.arange(q_bins // 2, z + 1)
    out = np.empty(halves.size)
    groups = np.arange(q_bins)[None, :]
    for b0 in range(0, halves.size, _KL_BLOCK):
        i = halves[b0 : b0 + _KL_BLOCK]
        rows = np.arange(i.size)
        start = z - i
        end = np.minimum(z + i + 1, bins)
        length, m = end - start, (end - start) // q_bins
        cols = np.arange(int(length.max()))  # a block's candidates keep at most this many bins
        valid = cols[None, :] < length[:, None]
        idx = np.minimum(start[:, None] + cols[None, :], bins - 1)
        p = np.where(valid, hist[idx], 0.0)
        p[:, 0] += cum[start]
        p[rows, length - 1] += total - cum[end]
        # group sums of the kept bins (the last group takes the remainder) and non-zero counts of p
        g_lo = start[:, None] + groups * m[:, None]
        g_hi = np.where(groups == q_bins - 1, end[:, None], g_lo + m[:, None])
        sums = cum[g_hi] - cum[g_lo]
        nz_cum = np.concatenate((np.zeros((i.size, 1)), np.cumsum(p != 0, axis=1)), axis=1)
        g_pos = groups * m[:, None]
        norms = np.take_along_axis(nz_cum, g_pos + m[:, None], axis=1) - np.take_along_axis(
            nz_cum, g_pos, axis=1
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.where(norms > 0, np.floor(sums / norms), 0.0)
        nz_p = ((p != 0) & valid).sum(axis=1).astype(np.float64)
        nz_q = ((spread != 0) * m[:, None]).sum(axis=1).astype(np.float64)
        q_total = _row_sums(np.where(spread != 0, spread * m[:, None].astype(np.float64), 0.0))
        lf = length.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            eps1_p = KL_EPS * (lf - nz_p) / nz_p
            eps1_q = KL_EPS * (lf - nz_q) / nz_q
            sp = total - nz_p * eps1_p + (lf - nz_p) * KL_EPS
            sq = q_total - nz_q * eps1_q + (lf - nz_q) * KL_EPS
            inv_qs = 1.0 / np.where(spread == 0, KL_EPS, spread - eps1_q[:, None])
        expanded = cols[None, :] < (q_bins * m)[:, None]
        group = np.minimum(cols[None, :] // m[:, None], q_bins - 1)
        inv = np.where(expanded, np.take_along_axis(inv_qs, group, axis=1), 1.0 / KL_EPS)
        ps = np.where(p == 0, KL_EPS, p - eps1_p[:, None])
        usable = valid & (nz_p > 0)[:, None] & (nz_q > 0)[:, None]
        ratio = np.where(usable, ps * inv, 1.0)
        terms = np.where(usable, ps * _log(ratio).astype(np.float64), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = _row_sums(terms) / sp + _log(np.where(usable[:, 0], sq / sp, 1.0)).astype(np.float64)
        kl[(nz_p == 0) | (nz_q == 0) | np.isnan(kl)] = np.inf
        out[b0 : b0 + i.size] = kl
    return out


__all__ = ["grid_counts", "kl_divergences"]
