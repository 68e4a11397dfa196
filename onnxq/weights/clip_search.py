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
nothing. Cost: ``grid + 1`` roundings of the weight; memory: two copies of the rows.
"""

from __future__ import annotations

import numpy as np

from onnxq.qconfig import QSpec
from onnxq.qparams import QParams, choose_qparams, qrange
from onnxq.scheme import PerChannel

#: Candidate ratios ``1 .. MIN_RATIO`` in ``GRID`` steps (0.025 apart).
GRID = 20
MIN_RATIO = 0.5


def mse_row_qparams(
    rows: np.ndarray,
    spec: QSpec,
    *,
    grid: int = GRID,
    min_ratio: float = MIN_RATIO,
    column_weights: np.ndarray | None = None,
) -> QParams:
    """Per-row parameters (``PerChannel(0)``) of ``rows [R, B]`` of least squared rounding error
    over the clipping ratios of the module docstring; rows without a finite value get scale 1."""
    rows = np.asarray(rows, dtype=np.float32)
    finite = np.isfinite(rows)
    safe = np.where(finite, rows, 0.0).astype(np.float32)
    lo = np.minimum(safe.min(axis=1), 0.0).astype(np.float64)
    hi = np.maximum(safe.max(axis=1), 0.0).astype(np.float64)
    c = np.ones(rows.shape[1]) if column_weights is None else np.asarray(column_weights, np.float64)
    qmin, qmax = qrange(spec.dtype, spec.symmetric, spec.reduce_range)
    best: QParams | None = None
    best_err = np.full(len(rows), np.inf)
    for j in range(grid + 1):
        ratio = 1.0 - j * (1.0 - min_ratio) / grid
        qp = choose_qparams(
            ratio * lo, ratio * hi, spec.dtype, spec.symmetric, spec.reduce_range, PerChannel(0)
        )
        s = qp.scale[:, None]
        z = qp.zero_point.astype(np.float32)[:, None]
        q = np.clip(np.rint(safe / s) + z, qmin, qmax)
        err = np.where(finite, (safe - (q - z) * s).astype(np.float64) ** 2, 0.0) @ c
        better = err < best_err
        if best is None:
            best = qp
        else:
            best = QParams(
                np.where(better, qp.scale, best.scale),
                np.where(better, qp.zero_point.astype(np.int32), best.zero_point.astype(np.int32)).astype(
                    qp.zero_point.dtype
                ),
                PerChannel(0),
            )
        best_err = np.where(better, err, best_err)
    assert best is not None
    return best


__all__ = ["GRID", "MIN_RATIO", "mse_row_qparams"]
