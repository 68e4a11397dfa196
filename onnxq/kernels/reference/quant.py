"""Numpy reference of quantize / dequantize (ONNX QuantizeLinear / DequantizeLinear).

    quantize:   q = clamp_round(float32(x) / scale, qmin - zp, qmax - zp) + zp   (fp32 division)
    dequantize: y = float32(q - zp) * scale                                     (fp32 multiply)

with ``[qmin, qmax]`` the range of the integer type, scale and zero point per tensor or per channel
along ``axis``. NaN quantizes to qmin (see :mod:`.requant`).
"""

from __future__ import annotations

import numpy as np

from onnxq.kernels.reference.requant import DTYPE_RANGE

__all__ = ["dequantize", "quantize"]

_F32 = np.float32


def _per_axis(values: np.ndarray | float, ndim: int, axis: int | None, dtype: type) -> np.ndarray:
    arr: np.ndarray = np.asarray(values, dtype=dtype)
    if axis is None:
        return arr.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return arr.reshape(shape)


def quantize(
    x: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    axis: int | None = None,
    dtype: np.dtype | type = np.uint8,
) -> np.ndarray:
    """Quantize fp32 ``x`` to ``dtype`` (uint8 or int8), per tensor or per channel of ``axis``."""
    x = np.asarray(x, dtype=_F32)
    qmin, qmax = DTYPE_RANGE[np.dtype(dtype)]
    s = _per_axis(scale, x.ndim, axis, _F32)
    zp = _per_axis(zero_point, x.ndim, axis, np.int32)
    q = _quantize(x / s, zp, qmin, qmax)
    return q.astype(dtype)


def _quantize(v: np.ndarray, zp: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    lo = (qmin - zp).astype(_F32)
    hi = (qmax - zp).astype(_F32)
    v = np.where(v >= lo, v, lo)
    v = np.where(v <= hi, v, hi)
    return np.rint(v).astype(np.int32) + zp


def dequantize(
    q: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    axis: int | None = None,
) -> np.ndarray:
    """Dequantize uint8/int8 ``q`` to fp32, per tensor or per channel of ``axis``."""
    q = np.asarray(q)
    s = _per_axis(scale, q.ndim, axis, _F32)
    zp = _per_axis(zero_point, q.ndim, axis, np.int32)
    return ((q.astype(np.int32) - zp).astype(_F32) * s).astype(_F32)
