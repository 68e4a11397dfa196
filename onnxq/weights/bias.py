"""Bias quantization (pure numpy): int32 with the scale of the accumulator it adds to.

A bias ``b`` of length ``C_out`` becomes int32 with ``scale_b[o] = scale_x * scale_w[o mod C_w]``
(``C_w = C_out / repeats``, so that ConvTranspose with groups, whose weight axis 1 holds
``C_out / group`` channels, gets one scale per output channel) and zero point 0::

    bq[o] = clip(round_half_even(b[o] / scale_b[o]), int32)

which adds directly to the int32 accumulator ``sum_i (xq_i - zx) * Wq[o, i]``.
"""

from __future__ import annotations

import numpy as np

from onnxq.qparams import quantize_bias


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


__all__ = ["bias_qparams"]
