"""Numpy reference of the requantisation every int8 kernel family shares (onnxruntime's MLAS).

For an int32 accumulator ``acc`` (bias already added), an fp32 multiplier ``scale`` and an output
zero point ``zp`` with clamp ``[qmin, qmax]``:

    v = float32(acc) * scale                     (int32 -> fp32 rounds half to even; fp32 multiply)
    v = min(max(v, qmin - zp), qmax - zp)        (clamp in fp32; NaN -> qmin - zp)
    q = round_half_to_even(v) + zp

This is MlasRequantizeOutput: the same QDQ model gives the same bytes here, in the C kernels and
in onnxruntime. The same clamp-and-round step, applied to ``x / scale``, is ONNX QuantizeLinear.
"""

from __future__ import annotations

import numpy as np

from onnxq.qparams import clamp_round

__all__ = ["DTYPE_RANGE", "clamp_round", "requantize", "wrap_int32"]

_F32 = np.float32

DTYPE_RANGE: dict[np.dtype, tuple[int, int]] = {
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int8): (-128, 127),
}


def requantize(
    acc: np.ndarray,
    scale: np.ndarray | float,
    zero_point: int,
    qmin: int,
    qmax: int,
    dtype: np.dtype | type = np.uint8,
) -> np.ndarray:
    """MLAS requantisation of int32 ``acc``; ``scale`` broadcasts along the last axis."""
    acc = np.asarray(acc, dtype=np.int32)
    scale = np.asarray(scale, dtype=_F32)
    v = acc.astype(_F32) * scale
    q = clamp_round(v, qmin - zero_point, qmax - zero_point) + np.int32(zero_point)
    return q.astype(dtype)


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Integers reduced modulo 2**32 into int32, as the C int32 accumulators wrap."""
    return np.asarray(x, dtype=np.int64).astype(np.uint32).astype(np.int32)
