"""Quantize / dequantize with the native kernels (ONNX QuantizeLinear / DequantizeLinear)."""

from __future__ import annotations

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import check, ffi, in_ptr, lib, out_ptr, require_array

__all__ = ["dequantize", "quantize"]

_QTYPES = {np.dtype(np.uint8): "ONNXQ_U8", np.dtype(np.int8): "ONNXQ_S8"}


def _params(shape: tuple[int, ...], scale: object, zero_point: object, axis: int | None,
            dtype: np.dtype) -> tuple[object, np.ndarray, np.ndarray]:
    """Fill onnxq_quant_params; returns (params, scale array, zp array) kept alive by the caller."""
    if dtype not in _QTYPES:
        raise KernelError(f"dtype: expected uint8 or int8, got {dtype}")
    ndim = len(shape)
    if axis is None:
        channels, outer, inner = 1, 1, int(np.prod(shape, dtype=np.int64))
    else:
        if not -ndim <= axis < ndim:
            raise KernelError(f"axis: {axis} is out of range for a {ndim}-D tensor")
        axis %= ndim
        channels = shape[axis]
        outer = int(np.prod(shape[:axis], dtype=np.int64))
        inner = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    s = np.ascontiguousarray(np.asarray(scale, dtype=np.float32).reshape(-1))
    z = np.asarray(zero_point)
    if not np.issubdtype(z.dtype, np.integer):
        raise KernelError(f"zero_point: expected integers, got dtype {z.dtype}")
    z = np.ascontiguousarray(z.astype(np.int64).clip(-(2**31), 2**31 - 1).astype(np.int32).reshape(-1))
    for name, arr in (("scale", s), ("zero_point", z)):
        if arr.size != channels:
            what = "1 value (per tensor)" if axis is None else f"{channels} values (axis {axis})"
            raise KernelError(f"{name}: expected {what}, got {arr.size}")
    p = ffi.new("onnxq_quant_params*")
    p.outer, p.channels, p.inner = outer, channels, inner
    p.scale, p.zp = in_ptr(s), in_ptr(z)
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
    ``axis``; exactly :func:`onnxq.kernels.reference.quantize`."""
    x = require_array(x, "x", np.float32)
    dt = np.dtype(dtype)
    p, s, z = _params(x.shape, scale, zero_point, axis, dt)
    if x.size == 0:
        raise KernelError(f"x: zero-size tensor of shape {x.shape}")
    y = np.empty(x.shape, dtype=dt)
    check(lib.onnxq_quantize(p, in_ptr(x), ffi.from_buffer(y, require_writable=True)))
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
    q = np.asarray(q)
    if not q.flags.c_contiguous:
        q = np.ascontiguousarray(q)
    p, s, z = _params(q.shape, scale, zero_point, axis, q.dtype)
    if q.size == 0:
        raise KernelError(f"q: zero-size tensor of shape {q.shape}")
    y = np.empty(q.shape, dtype=np.float32)
    check(lib.onnxq_dequantize(p, ffi.from_buffer(q), out_ptr(y)))
    del s, z
    return y
