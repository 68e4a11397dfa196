"""Weight and bias quantization (pure numpy; the graph part is in :mod:`onnxq.passes.insert_qdq`).

Weights are int8 symmetric, per-channel along the op's output-channel axis ``a`` or per-tensor::

    scale_c = max_i |W[c, i]| / 127        (narrow range [-127, 127], zero point 0)
    Wq[c, i] = clip(round_half_even(W[c, i] / scale_c), -127, 127)

with the statistic taken by the observer the weight QSpec names. A bias ``b`` of length ``C_out``
becomes int32 with ``scale_b[o] = scale_x * scale_w[o mod C_w]`` (``C_w = C_out / repeats``, so
that ConvTranspose with groups, whose weight axis 1 holds ``C_out / group`` channels, gets one
scale per output channel) and zero point 0::

    bq[o] = clip(round_half_even(b[o] / scale_b[o]), int32)

which adds directly to the int32 accumulator ``sum_i (xq_i - zx) * Wq[o, i]``.
"""

from __future__ import annotations

import numpy as np

from onnxq.calibration.observers import make_observer
from onnxq.qconfig import QSpec
from onnxq.qparams import QParams, quantize, quantize_bias


def quantize_weight(w: np.ndarray, spec: QSpec, axis: int | None) -> tuple[np.ndarray, QParams]:
    """``(int8 weight, its QParams)`` for the float weight ``w`` (per-channel when ``axis`` is set)."""
    observer = make_observer(spec.observer, axis, **spec.observer_args)
    observer.update(np.asarray(w, dtype=np.float32))
    if not observer.reached:  # every value NaN/Inf: nothing to scale by, all zeros
        qp = QParams(np.float32(1.0), np.int8(0)) if axis is None else QParams(
            np.ones(w.shape[axis], np.float32), np.zeros(w.shape[axis], np.int8), axis
        )
    else:
        qp = observer.qparams(spec.dtype, spec.symmetric, spec.reduce_range)
    return quantize(w, qp), qp


def bias_qparams(
    bias: np.ndarray, input_scale: np.ndarray, weight_scale: np.ndarray, repeats: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(int32 bias, float32 bias scale)``; the scale has one entry per bias element when per-channel."""
    b = np.asarray(bias, dtype=np.float32).reshape(-1)
    w_scale = np.asarray(weight_scale, dtype=np.float32)
    if w_scale.ndim == 1:
        w_scale = np.tile(w_scale, repeats)
        if w_scale.shape[0] != b.shape[0]:
            raise ValueError(f"bias has {b.shape[0]} channels, weight scales give {w_scale.shape[0]}")
    return quantize_bias(b, np.asarray(input_scale, dtype=np.float32), w_scale)


__all__ = ["bias_qparams", "quantize_weight"]
