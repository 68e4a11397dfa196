"""Histogram counts on a power-of-two grid with the native kernel (the running histograms).

See :mod:`onnxq.kernels.reference.hist` for the arithmetic; the counts are the reference's.
"""

from __future__ import annotations

import math

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import check, ffi, in_ptr, lib, out_ptr, require_array, require_int

__all__ = ["grid_counts_f32", "kl_divergences"]

MAX_CELLS = 1 << 30


def grid_counts_f32(x: np.ndarray, k0: int, e: int, cells: int) -> np.ndarray:
    """Counts (float64, ``cells`` of them) of float32 ``x`` in cells ``floor(v 2^-e) - k0``,
    clipped to ``[0, cells - 1]``."""
    arr = require_array(x, "x", np.float32).reshape(-1)
    cells = require_int(cells, "cells", 1, MAX_CELLS)
    k0 = require_int(k0, "k0", -(1 << 62) + 1, (1 << 62) - 1)
    e = require_int(e, "e", -1022, 1074)
    inv = math.ldexp(1.0, -e)
    if not math.isfinite(inv) or inv == 0.0:
        raise KernelError(f"e: 2^-{e} is not a finite double")
    lanes = int(lib.ONNXQ_HIST_LANES)
    counts = np.zeros(lanes * cells, dtype=np.int64)
    x_ptr = in_ptr(arr) if arr.size else ffi.NULL
    status = lib.onnxq_grid_counts_f32(x_ptr, arr.size, inv, k0, out_ptr(counts), counts.size, cells)
    check(status, "grid_counts_f32")
    return counts.reshape(lanes, cells).sum(axis=0).astype(np.float64)


def kl_divergences(hist: np.ndarray, quantized_bins: int) -> np.ndarray:
    """The KL divergence of every candidate window ``i = quantized_bins // 2 .. bins // 2`` of the
    entropy calibration on ``hist`` (counts over ``[-T, T]``; the maths:
    :mod:`onnxq.calibration.observers.kl_search`), ``inf`` where a candidate has none. ``hist``
    is float64; its counts may be fractional (a resampled histogram's)."""
    counts = require_array(hist, "hist", np.float64).reshape(-1)
    bins = require_int(counts.size, "bins", 2, int(lib.ONNXQ_KL_MAX_BINS))
    q_bins = require_int(quantized_bins, "quantized_bins", 2, bins)
    out = np.empty(bins // 2 - q_bins // 2 + 1, dtype=np.float64)
    status = lib.onnxq_kl_divergences_f64(in_ptr(counts), bins, q_bins, out_ptr(out), out.size)
    check(status, "kl_divergences")
    return out
