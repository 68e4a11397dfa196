"""Quantized elementwise add with the native kernels (onnxruntime QLinearAdd arithmetic).

See :mod:`onnxq.kernels.reference.eltwise` for the exact maths. Shapes broadcast like numpy; the
forms the kernel handles directly are equal shapes, a scalar, trailing-axes (per-channel) and
row-constant operands. Any other broadcast is materialised with a copy first (then the general
formula applies, which may differ in the last bit from onnxruntime's per-span scalar path).
"""

from __future__ import annotations

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import (
    byte_ptr,
    check,
    ffi,
    lib,
    new_array,
    require_array,
    require_float,
    require_int,
    show,
)
from onnxq.kernels.reference.eltwise import AddLayout, Bcast, add_layout

__all__ = ["qadd"]

_QTYPES = {np.dtype(np.uint8): ("ONNXQ_U8", 0, 255), np.dtype(np.int8): ("ONNXQ_S8", -128, 127)}


def _operand(value: object, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise KernelError(f"{name}: expected a uint8 or int8 array ({show(str(exc), 120)})") from None
    if arr.dtype not in _QTYPES:
        raise KernelError(f"{name}: expected a uint8 or int8 array, got {arr.dtype}")
    if arr.size == 0:
        raise KernelError(f"{name}: zero-size tensor of shape {arr.shape}")
    return require_array(arr, name, arr.dtype)


def qadd(
    a: np.ndarray,
    a_scale: float,
    a_zero_point: int,
    b: np.ndarray,
    b_scale: float,
    b_zero_point: int,
    y_scale: float,
    y_zero_point: int,
    *,
    relu: bool = False,
) -> np.ndarray:
    """``y = a + b`` on quantized tensors (same dtype, u8 or s8), requantised to
    ``(y_scale, y_zero_point)``; ``relu`` clamps the result at the output zero point."""
    a = _operand(a, "a")
    b = _operand(b, "b")
    if a.dtype != b.dtype:
        raise KernelError(f"b: dtype {b.dtype} differs from a's {a.dtype}")
    try:
        out_shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError as exc:
        raise KernelError(f"b: shape {b.shape} does not broadcast with a's {a.shape}") from exc
    layout = add_layout(a.shape, b.shape)
    if layout is None:
        a = np.ascontiguousarray(np.broadcast_to(a, out_shape))
        b = np.ascontiguousarray(np.broadcast_to(b, out_shape))
        layout = AddLayout(1, a.size, Bcast.FULL, Bcast.FULL)
    kind, tmin, tmax = _QTYPES[a.dtype]
    p = ffi.new("onnxq_qadd_params*")
    p.outer, p.inner = layout.outer, layout.inner
    p.qtype = getattr(lib, kind)
    p.a_bcast, p.b_bcast = int(layout.a), int(layout.b)
    p.a_scale = require_float(a_scale, "a_scale")
    p.b_scale = require_float(b_scale, "b_scale")
    p.y_scale = require_float(y_scale, "y_scale")
    p.a_zp = require_int(a_zero_point, "a_zero_point")
    p.b_zp = require_int(b_zero_point, "b_zero_point")
    p.y_zp = require_int(y_zero_point, "y_zero_point")
    p.qmin = max(tmin, p.y_zp) if relu else tmin
    p.qmax = tmax
    y = new_array(out_shape, a.dtype, "y")
    check(
        lib.onnxq_qadd(
            p, byte_ptr(a), a.size, byte_ptr(b), b.size, ffi.from_buffer(y, require_writable=True), y.size
        )
    )
    return y
