"""Max, average and global-average pooling of NHWC u8/s8 tensors with the native kernels.

See :mod:`onnxq.kernels.reference.pool` for the exact maths (onnxruntime's QLinearAveragePool and
QLinearGlobalAveragePool). Pads are ``(top, left, bottom, right)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    require_ints,
    show,
)

__all__ = ["avgpool", "global_avgpool", "maxpool"]

_QTYPES = {np.dtype(np.uint8): "ONNXQ_U8", np.dtype(np.int8): "ONNXQ_S8"}


def _input(x: object) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise KernelError(f"x: expected a uint8 or int8 NHWC array ({show(str(exc), 120)})") from None
    if arr.dtype not in _QTYPES:
        raise KernelError(f"x: expected a uint8 or int8 NHWC array, got {arr.dtype}")
    if arr.ndim != 4:
        raise KernelError(f"x: expected a 4-D NHWC array, got shape {arr.shape}")
    return require_array(arr, "x", arr.dtype, ndim=4)


def _pair(value: Sequence[int], name: str, n: int = 2) -> tuple[int, ...]:
    return require_ints(value, name, n)


def _quant(p: Any, x_scale: object, x_zero_point: object, y_scale: object, y_zero_point: object) -> None:
    p.x_scale = require_float(x_scale, "x_scale")
    p.y_scale = require_float(y_scale, "y_scale")
    p.x_zp = require_int(x_zero_point, "x_zero_point")
    p.y_zp = require_int(y_zero_point, "y_zero_point")


def _params(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    ceil_mode: bool = False,
) -> object:
    p = ffi.new("onnxq_pool_params*")
    p.batch, p.in_h, p.in_w, p.channels = x.shape
    p.kernel_h, p.kernel_w = _pair(kernel, "kernel")
    p.stride_h, p.stride_w = _pair(strides, "strides")
    p.dilation_h, p.dilation_w = _pair(dilations, "dilations")
    p.pad_top, p.pad_left, p.pad_bottom, p.pad_right = _pair(pads, "pads", 4)
    p.qtype = getattr(lib, _QTYPES[x.dtype])
    p.ceil_mode = int(bool(ceil_mode))
    return p


def _run(fn: object, p: object, x: np.ndarray, what: str) -> np.ndarray:
    if x.size == 0:
        raise KernelError(f"x: zero-size tensor of shape {x.shape}")
    oh = ffi.new("size_t*")
    ow = ffi.new("size_t*")
    check(lib.onnxq_pool_output_size(p, oh, ow))
    y = new_array((x.shape[0], oh[0], ow[0], x.shape[3]), x.dtype, "y")
    check(fn(p, byte_ptr(x), x.size, ffi.from_buffer(y, require_writable=True), y.size))
    return y


def maxpool(
    x: np.ndarray,
    kernel: Sequence[int],
    *,
    strides: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilations: Sequence[int] = (1, 1),
    ceil_mode: bool = False,
) -> np.ndarray:
    """Max pool; the output keeps the input's scale and zero point."""
    x = _input(x)
    return _run(lib.onnxq_maxpool, _params(x, kernel, strides, pads, dilations, ceil_mode), x, "maxpool")


def avgpool(
    x: np.ndarray,
    x_scale: float,
    x_zero_point: int,
    y_scale: float,
    y_zero_point: int,
    kernel: Sequence[int],
    *,
    strides: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilations: Sequence[int] = (1, 1),
    count_include_pad: bool = False,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Average pool requantised to ``(y_scale, y_zero_point)`` (QLinearAveragePool)."""
    x = _input(x)
    p = _params(x, kernel, strides, pads, dilations, ceil_mode)
    p.count_include_pad = int(bool(count_include_pad))
    _quant(p, x_scale, x_zero_point, y_scale, y_zero_point)
    return _run(lib.onnxq_avgpool, p, x, "avgpool")


def global_avgpool(
    x: np.ndarray, x_scale: float, x_zero_point: int, y_scale: float, y_zero_point: int
) -> np.ndarray:
    """Global average pool NHWC → ``[N, 1, 1, C]`` (QLinearGlobalAveragePool)."""
    x = _input(x)
    if x.size == 0:
        raise KernelError(f"x: zero-size tensor of shape {x.shape}")
    p = _params(x, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1))
    _quant(p, x_scale, x_zero_point, y_scale, y_zero_point)
    y = new_array((x.shape[0], 1, 1, x.shape[3]), x.dtype, "y")
    check(lib.onnxq_global_avgpool(p, byte_ptr(x), x.size, ffi.from_buffer(y, require_writable=True), y.size))
    return y
