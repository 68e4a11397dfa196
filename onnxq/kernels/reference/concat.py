"""Numpy reference of the quantized concat (the twin of the native ``qconcat`` kernels).

Like onnxruntime's QLinearConcat (com.microsoft): an input whose scale and zero point equal the
output's is copied as is; any other input goes through a 256-entry table built with

    v = x_scale * float(q - x_zp)                                  (fp32)
    table[q] = round_half_even(clamp(v / y_scale, qmin - y_zp, qmax - y_zp)) + y_zp

i.e. ONNX DequantizeLinear followed by QuantizeLinear, evaluated in fp32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["qconcat", "requant_table"]

_F32 = np.float32


def requant_table(dtype: np.dtype | type, x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    """The 256-entry requantisation table, indexed by the input's raw byte."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    q = np.arange(256, dtype=np.uint8).view(dtype).astype(np.int32)
    v = _F32(x_scale) * (q - int(x_zp)).astype(_F32)
    v = (v / _F32(y_scale)).astype(_F32)
    v = np.clip(v, _F32(info.min - int(y_zp)), _F32(info.max - int(y_zp)))
    return (np.rint(v).astype(np.int32) + int(y_zp)).astype(dtype)


def qconcat(
    inputs: Sequence[np.ndarray],
    scales: Sequence[float],
    zero_points: Sequence[int],
    y_scale: float,
    y_zp: int,
    axis: int,
) -> np.ndarray:
    """Concatenate quantized tensors along ``axis``, requantising each to ``(y_scale, y_zp)``."""
    parts = []
    for x, s, z in zip(inputs, scales, zero_points, strict=True):
        x = np.asarray(x)
        if _F32(s) == _F32(y_scale) and int(z) == int(y_zp):
            parts.append(x)
        else:
            table = requant_table(x.dtype, s, z, y_scale, y_zp)
            parts.append(table[x.view(np.uint8)])
    return np.concatenate(parts, axis=axis)
