"""The scale of each weight block chosen by least squared error (a clipping-ratio search).

Min-max parameters make a block's largest value exact and spend the few 4-bit levels on the whole
range; shrinking the range rounds the bulk of the values more finely and clips the few beyond it.
For a block's values ``w_1..w_B`` (or a channel's) and each candidate ratio
``r in {1, 1 - d, 1 - 2d, ..., r_min}`` (``d = (1 - r_min) / grid``), the range
``[r min(w, 0), r max(w, 0)]`` becomes ``(s_r, z_r)`` exactly as min-max's range would
(:func:`onnxq.qparams.choose_qparams`: symmetric or with a zero point, the dtype's range), and::

    err(r) = sum_i c_i (w_i - (clip(round_half_even(w_i / s_r) + z_r, qmin, qmax) - z_r) s_r)^2

is the squared error of rounding the block with them (``c_i = 1`` unless column weights are
given, e.g. GPTQ's ``diag(H)``: the layer-output error of each column on its own). The block keeps
the ratio of least error, the largest of equal ones, so ``r = 1`` (min-max) wins ties and the
result is never worse than min-max on this error. The values are rounded in float32 as
:func:`onnxq.qparams.quantize` rounds them; NaN entries (the padding of a short last block) count
nothing. Cost: ``grid + 1`` roundings of the weight, on every core for a large weight;
memory: three copies of the rows.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from onnxq.qconfig import QSpec
from onnxq.qparams import QParams, choose_qparams, qrange
from onnxq.scheme import PerChannel

#: Candidate ratios ``1 .. MIN_RATIO`` in ``GRID`` steps (0.025 apart).
GRID = 20
MIN_RATIO = 0.5


#: Rows searched per task; a weight with more rows is searched on the machine's cores, in chunks
#: (each row's search is independent of the others, so the result does not depend on the split).
CHUNK_ROWS = 1 << 15


def mse_row_qparams(
    rows: np.ndarray,
    spec: QSpec,
    *,
    grid: int = GRID,
    min_ratio: float = MIN_RATIO,
    column_weights: np.ndarray | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> QParams:
    """Per-row parameters (``PerChannel(0)``) of ``rows [R, B]`` of least squared rounding error
    over the clipping ratios of the module docstring; rows without a finite value get scale 1.
    More than ``chunk_rows`` rows are searched in chunks on a thread per core (numpy releases
    the GIL), with the same result."""
    rows = np.asarray(rows, dtype=np.float32)
    c = np.ones(rows.shape[1]) if column_weights is None else np.asarray(column_weights, np.float64)
    if len(rows) <= chunk_rows:
        return _search(rows, spec, grid, min_ratio, c)
    starts = range(0, len(rows), chunk_rows)
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        parts = list(pool.map(lambda i: _search(rows[i : i + chunk_rows], spec, grid, min_ratio, c), starts))
    return QParams(
        np.concatenate([p.scale for p in parts]),
        np.concatenate([p.zero_point for p in parts]),
        PerChannel(0),
    )


def _search(rows: np.ndarray, spec: QSpec, grid: int, min_ratio: float, c: np.ndarray) -> QParams:
    finite = np.isfinite(rows)
    all_finite = bool(finite.all())
    safe = rows if all_finite else np.where(finite, rows, 0.0).astype(np.float32)
    lo = np.minimum(safe.min(axis=1), 0.0).astype(np.float64)
    hi = np.maximum(safe.max(axis=1), 0.0).astype(np.float64)
    qmin, qmax = qrange(spec.dtype, spec.symmetric, spec.reduce_range)
    best_scale: np.ndarray | None = None
    best_zero: np.ndarray | None = None
    best_err = np.full(len(rows), np.inf)
    d = np.empty_like(safe)
    for j in range(grid + 1):
        ratio = 1.0 - j * (1.0 - min_ratio) / grid
        qp = choose_qparams(
            ratio * lo, ratio * hi, spec.dtype, spec.symmetric, spec.reduce_range, PerChannel(0)
        )
        s = qp.scale[:, None]
        z = qp.zero_point.astype(np.float32)[:, None]
        # d = safe - (clip(rint(safe / s) + z, qmin, qmax) - z) * s, in place, in float32
        np.divide(safe, s, out=d)
        np.rint(d, out=d)
        d += z
        np.clip(d, qmin, qmax, out=d)
        d -= z
        d *= s
        np.subtract(safe, d, out=d)
        if not all_finite:
            d[~finite] = 0.0
        sq = d.astype(np.float64)
        sq *= sq
        err = sq @ c
        better = err < best_err
        if best_scale is None or best_zero is None:
            best_scale, best_zero = qp.scale.copy(), qp.zero_point.copy()
        else:
            best_scale[better] = qp.scale[better]
            best_zero[better] = qp.zero_point[better]
        best_err[better] = err[better]
    assert best_scale is not None and best_zero is not None
    return QParams(best_scale, best_zero, PerChannel(0))


__all__ = ["CHUNK_ROWS", "GRID", "MIN_RATIO", "mse_row_qparams"]
