"""Quantize / dequantize with the native kernels (ONNX QuantizeLinear / DequantizeLinear)."""

from __future__ import annotations

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import (
    byte_ptr,
    check,
    ffi,
    in_ptr,
    lib,
    new_array,
    out_ptr,
    require_array,
    require_int,
    require_scales,
    require_zero_points,
    show,
)

__all__ = ["dequantize", "quantize"]

_QTYPES = {np.dtype(np.uint8): "ONNXQ_U8", np.dtype(np.int8): "ONNXQ_S8"}


def _qtype(dtype: object) -> np.dtype:
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        raise KernelError(f"dtype: expected uint8 or int8, got {show(dtype)}") from None
    if dt not in _QTYPES:
        raise KernelError(f"dtype: expected uint8 or int8, got {dt}")
    return dt


def _params(
    shape: tuple[int, ...], scale: object, zero_point: object, axis: object, dtype: np.dtype
) -> tuple[object, np.ndarray, np.ndarray]:
    """Fill onnxq_quant_params; returns (params, scale array, zp array) kept alive by the caller."""
    ndim = len(shape)
    if axis is None:
        channels, outer, inner = 1, 1, int(np.prod(shape, dtype=np.int64))
    else:
        ax = require_int(axis, "axis", None, None)
        if not -ndim <= ax < ndim:
            raise KernelError(f"axis: {axis} is out of range for a {ndim}-D tensor")
        ax %= ndim
        channels = shape[ax]
        outer = int(np.prod(shape[:ax], dtype=np.int64))
        inner = int(np.prod(shape[ax + 1 :], dtype=np.int64))
    s = require_scales(scale, "scale", flatten=True)
    z = require_zero_points(zero_point, "zero_point")
    for name, arr in (("scale", s), ("zero_point", z)):
        if arr.size != channels:
            what = "1 value (per tensor)" if axis is None else f"{channels} values (axis {ax})"
            raise KernelError(f"{name}: expected {what}, got {arr.size}")
    p = ffi.new("onnxq_quant_params*")
    p.outer, p.channels, p.inner = outer, channels, inner
    p.scale, p.scale_len = in_ptr(s), s.size
    p.zp, p.zp_len = in_ptr(z), z.size
    p.qtype = getattr(lib, _QTYPES[dtype])
    return p, s, z


def quantize(
    x: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    *,
    axis: int | None = None,
    dtype: np.dtype | type = np.uint8,
) -> np.ndarray:
    """``saturate(round_half_even(x / scale) + zero_point)`` as uint8/int8, per tensor or along
    ``axis``; exactly :func:`onnxq.kernels.reference.quantize`. ``x`` must be float32 (a
    non-contiguous view is copied), ``scale`` real numbers (rounded to float32), ``zero_point``
    integers."""
    x = require_array(x, "x", np.float32)
    dt = _qtype(dtype)
    p, s, z = _params(x.shape, scale, zero_point, axis, dt)
    if x.size == 0:
        raise KernelError(f"x: zero-size tensor of shape {x.shape}")
    y = new_array(x.shape, dt, "y")
    check(lib.onnxq_quantize(p, in_ptr(x), x.size, out_ptr(y), y.size))
    del s, z
    return y


def dequantize(
    q: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    *,
    axis: int | None = None,
) -> np.ndarray:
    """``float32(q - zero_point) * scale`` for uint8/int8 ``q``, per tensor or along ``axis``."""
    arr = np.asarray(q)
    if arr.dtype not in _QTYPES:
        raise KernelError(f"q: wrong dtype: expected uint8 or int8, got {arr.dtype}")
    arr = require_array(arr, "q", arr.dtype)
    p, s, z = _params(arr.shape, scale, zero_point, axis, arr.dtype)
    if arr.size == 0:
        raise KernelError(f"q: zero-size tensor of shape {arr.shape}")
    y = new_array(arr.shape, np.float32, "y")
    check(lib.onnxq_dequantize(p, byte_ptr(arr), arr.size, out_ptr(y), y.size))
    del s, z
    return y
