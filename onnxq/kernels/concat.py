"""Quantized concat with the native kernels (onnxruntime QLinearConcat arithmetic).

See :mod:`onnxq.kernels.reference.concat`: inputs already at the output scale and zero point are
copied; others are requantised.
"""

from __future__ import annotations

from collections.abc import Sequence

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

__all__ = ["qconcat"]

_QTYPES = {np.dtype(np.uint8): "ONNXQ_U8", np.dtype(np.int8): "ONNXQ_S8"}


def qconcat(
    inputs: Sequence[np.ndarray],
    scales: Sequence[float],
    zero_points: Sequence[int],
    y_scale: float,
    y_zero_point: int,
    axis: int,
) -> np.ndarray:
    """Concatenate quantized tensors (same dtype and rank) along ``axis``."""
    try:
        raw = [np.asarray(x) for x in inputs]
    except (TypeError, ValueError) as exc:
        detail = show(str(exc), 120)
        raise KernelError(f"inputs: expected a sequence of uint8 or int8 arrays ({detail})") from None
    arrays = [require_array(x, f"inputs[{i}]", x.dtype) for i, x in enumerate(raw)]
    if not arrays:
        raise KernelError("inputs: expected at least one tensor")
    try:
        scales, zero_points = list(scales), list(zero_points)
    except TypeError:
        raise KernelError("scales/zero_points: expected sequences") from None
    if len(scales) != len(arrays) or len(zero_points) != len(arrays):
        raise KernelError(
            f"scales/zero_points: expected {len(arrays)} values each, got "
            f"{len(scales)} and {len(zero_points)}"
        )
    first = arrays[0]
    if first.dtype not in _QTYPES:
        raise KernelError(f"inputs[0]: expected uint8 or int8, got {first.dtype}")
    rank = first.ndim
    if rank == 0:
        raise KernelError("inputs[0]: cannot concatenate 0-d tensors")
    axis = require_int(axis, "axis", None, None)
    if not -rank <= axis < rank:
        raise KernelError(f"axis: {axis} is out of range for rank {rank}")
    ax = axis % rank
    for i, x in enumerate(arrays):
        if x.dtype != first.dtype:
            raise KernelError(f"inputs[{i}]: dtype {x.dtype} differs from inputs[0]'s {first.dtype}")
        if x.ndim != rank or x.shape[:ax] != first.shape[:ax] or x.shape[ax + 1 :] != first.shape[ax + 1 :]:
            raise KernelError(
                f"inputs[{i}]: shape {x.shape} does not match inputs[0]'s {first.shape} outside axis {ax}"
            )
        if x.size == 0:
            raise KernelError(f"inputs[{i}]: zero-size tensor of shape {x.shape}")
    outer = int(np.prod(first.shape[:ax], dtype=np.int64))
    inner = int(np.prod(first.shape[ax + 1 :], dtype=np.int64))
    c_inputs = ffi.new("onnxq_qconcat_input[]", len(arrays))
    pointers = [byte_ptr(x) for x in arrays]  # kept alive until the call returns
    for i, (x, s, z) in enumerate(zip(arrays, scales, zero_points, strict=True)):
        c_inputs[i].data = pointers[i]
        c_inputs[i].len = x.size
        c_inputs[i].axis = x.shape[ax]
        c_inputs[i].scale = require_float(s, f"scales[{i}]")
        c_inputs[i].zp = require_int(z, f"zero_points[{i}]")
    p = ffi.new("onnxq_qconcat_params*")
    p.outer, p.inner = outer, inner
    p.qtype = getattr(lib, _QTYPES[first.dtype])
    p.n_inputs, p.inputs = len(arrays), c_inputs
    p.y_scale = require_float(y_scale, "y_scale")
    p.y_zp = require_int(y_zero_point, "y_zero_point")
    shape = list(first.shape)
    shape[ax] = sum(x.shape[ax] for x in arrays)
    y = new_array(shape, first.dtype, "y")
    check(lib.onnxq_qconcat(p, ffi.from_buffer(y, require_writable=True), y.size))
    return y
