"""Numpy reference of the u8 x s8 GEMM (the twin of the native ``gemm_u8s8`` kernels).

    acc[m, n] = bias[n] + sum_k (a[m, k] - a_zp) * b[k, n]        (int32, wrapping modulo 2**32)
    u8 / s8:  c = requantize(acc, scale, out_zp, qmin, qmax)      (see :mod:`.requant`)
    f32:      c = float32(acc) * scale[n]  (+ bias_f[n])          (fp32 multiply, then fp32 add)
    i32:      c = acc

``scale`` is one value or one per column. For requantised outputs it is the MLAS multiplier
``a_scale * w_scale[n] / c_scale``; for f32 output ``a_scale * w_scale[n]`` (rounded to fp32).
"""

from __future__ import annotations

import numpy as np

from onnxq.kernels.reference.requant import DTYPE_RANGE, requantize, wrap_int32

__all__ = ["gemm_accumulate", "gemm_u8s8"]

_F32 = np.float32


def gemm_accumulate(
    a: np.ndarray, b: np.ndarray, a_zero_point: int = 0, bias: np.ndarray | None = None
) -> np.ndarray:
    """int32 ``bias + (a - a_zp) @ b`` for u8 ``a[M, K]`` and s8 ``b[K, N]`` (wrapping)."""
    acc = (np.asarray(a, dtype=np.int64) - int(a_zero_point)) @ np.asarray(b, dtype=np.int64)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return wrap_int32(acc)


def gemm_u8s8(
    a: np.ndarray,
    b: np.ndarray,
    *,
    a_zero_point: int = 0,
    bias: np.ndarray | None = None,
    out_dtype: np.dtype | type = np.uint8,
    scale: np.ndarray | float = 1.0,
    out_zero_point: int = 0,
    qmin: int | None = None,
    qmax: int | None = None,
    bias_f: np.ndarray | None = None,
) -> np.ndarray:
    """C = gemm(a, b) with the output stage of ``out_dtype`` (uint8, int8, float32 or int32)."""
    acc = gemm_accumulate(a, b, a_zero_point, bias)
    out = np.dtype(out_dtype)
    if out == np.int32:
        return acc
    s = np.asarray(scale, dtype=_F32)
    if out == np.float32:
        c = acc.astype(_F32) * s
        if bias_f is not None:
            c = c + np.asarray(bias_f, dtype=_F32)
        return c.astype(_F32)
    tmin, tmax = DTYPE_RANGE[out]
    return requantize(
        acc, s, out_zero_point, tmin if qmin is None else qmin, tmax if qmax is None else qmax, out
    )
