"""Numpy reference of the quantized pooling kernels on NHWC u8/s8 tensors.

Arithmetic follows onnxruntime (com.microsoft QLinearAveragePool / QLinearGlobalAveragePool, CPU)
so the same model gives the same bytes:

* max pool: the largest input value in the window (taps in the padding are ignored), output at the
  input's scale and zero point; a window with no input tap yields the dtype minimum.
* global average pool (and an average pool whose kernel covers the whole unpadded image, which
  onnxruntime routes to the same code):

      acc = sum(x) - x_zp * HW                       (int32)
      m = x_scale / (y_scale * float(HW))            (fp32)
      y = round_half_even(clamp(float(acc) * m, qmin - y_zp, qmax - y_zp)) + y_zp

* average pool otherwise: every tap is dequantized ``x_scale * float(x - x_zp)`` (fp32), the taps
  are summed in fp32 in row-major window order (h, then w), the sum is divided by ``float(count)``
  (``count`` = the kernel size when ``count_include_pad``, else the taps inside the image, at
  least 1), and
  ``y = saturate(round_half_even(sum / y_scale + float(y_zp)))``.

Pads are ``(top, left, bottom, right)`` as in ONNX; the output extent of an axis is
``(size + pad_begin + pad_end - (dilation * (kernel - 1) + 1)) // stride + 1``, rounded up with
``ceil_mode`` (then one less when the last window would start at or after ``size + pad_begin``, as
onnxruntime); taps past the padded input are skipped like padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["avgpool_nhwc", "global_avgpool_nhwc", "maxpool_nhwc", "pool_output_size"]

_F32 = np.float32


def pool_output_size(
    size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int, ceil_mode: bool = False
) -> int:
    """Output extent of one axis (may be <= 0 when the kernel exceeds the padded input)."""
    span = size + pad_begin + pad_end - (dilation * (kernel - 1) + 1)
    if span < 0 or not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    return out - 1 if (out - 1) * stride >= size + pad_begin else out


def _taps(
    x_shape: tuple[int, ...],
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    ceil_mode: bool = False,
):
    """Yield (index_h, index_w, valid_h, valid_w) for every kernel tap, in window order."""
    _, h, w, _ = x_shape
    oh = pool_output_size(h, kernel[0], strides[0], dilations[0], pads[0], pads[2], ceil_mode)
    ow = pool_output_size(w, kernel[1], strides[1], dilations[1], pads[1], pads[3], ceil_mode)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"pool kernel {tuple(kernel)} is larger than the padded input {h}x{w}")
    for kh in range(kernel[0]):
        ih = np.arange(oh) * strides[0] - pads[0] + kh * dilations[0]
        for kw in range(kernel[1]):
            iw = np.arange(ow) * strides[1] - pads[1] + kw * dilations[1]
            yield ih, iw, (ih >= 0) & (ih < h), (iw >= 0) & (iw < w)


def _gather(x: np.ndarray, ih: np.ndarray, iw: np.ndarray) -> np.ndarray:
    h, w = x.shape[1], x.shape[2]
    return x[:, np.clip(ih, 0, h - 1)][:, :, np.clip(iw, 0, w - 1)]


def maxpool_nhwc(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilations: Sequence[int] = (1, 1),
    ceil_mode: bool = False,
) -> np.ndarray:
    """Max pool of an NHWC u8/s8 tensor."""
    x = np.asarray(x)
    info = np.iinfo(x.dtype)
    out = None
    for ih, iw, vh, vw in _taps(x.shape, kernel, strides, pads, dilations, ceil_mode):
        vals = _gather(x, ih, iw).astype(np.int32)
        valid = (vh[:, None] & vw[None, :])[None, :, :, None]
        vals = np.where(valid, vals, info.min)
        out = vals if out is None else np.maximum(out, vals)
    assert out is not None
    return out.astype(x.dtype)


def _requantize_sum(acc: np.ndarray, multiplier: np.float32, y_zp: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    v = acc.astype(_F32) * multiplier
    v = np.clip(v, _F32(info.min - y_zp), _F32(info.max - y_zp))
    return (np.rint(v).astype(np.int32) + y_zp).astype(dtype)


def global_avgpool_nhwc(x: np.ndarray, x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    """Global average pool: NHWC → N11C, integer sum then one fp32 requantisation."""
    x = np.asarray(x)
    n, h, w, c = x.shape
    size = h * w
    acc = x.astype(np.int64).sum(axis=(1, 2)) - int(x_zp) * size
    acc = acc.astype(np.int32)
    multiplier = _F32(x_scale) / (_F32(y_scale) * _F32(size))
    return _requantize_sum(acc, multiplier, int(y_zp), x.dtype).reshape(n, 1, 1, c)


def avgpool_nhwc(
    x: np.ndarray,
    x_scale: float,
    x_zp: int,
    y_scale: float,
    y_zp: int,
    kernel: Sequence[int],
    strides: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilations: Sequence[int] = (1, 1),
    count_include_pad: bool = False,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Average pool of an NHWC u8/s8 tensor with requantisation to ``(y_scale, y_zp)``."""
    x = np.asarray(x)
    _, h, w, _ = x.shape
    if tuple(kernel) == (h, w) and not any(pads) and tuple(dilations) == (1, 1):
        return global_avgpool_nhwc(x, x_scale, x_zp, y_scale, y_zp)
    info = np.iinfo(x.dtype)
    xf = _F32(x_scale) * (x.astype(np.int32) - int(x_zp)).astype(_F32)
    total = None
    count = None
    for ih, iw, vh, vw in _taps(x.shape, kernel, strides, pads, dilations, ceil_mode):
        valid = vh[:, None] & vw[None, :]
        vals = np.where(valid[None, :, :, None], _gather(xf, ih, iw), _F32(0))
        total = vals if total is None else (total + vals).astype(_F32)
        inside = valid.astype(np.int64)
        count = inside if count is None else count + inside
    assert total is not None and count is not None
    if count_include_pad:
        count = np.full_like(count, int(kernel[0]) * int(kernel[1]))
    count = np.maximum(count, 1)  # a window with no tap inside the image averages to 0
    avg = (total / count.astype(_F32)[None, :, :, None]).astype(_F32)
    y = np.rint((avg / _F32(y_scale)).astype(_F32) + _F32(y_zp))
    return np.clip(y, info.min, info.max).astype(x.dtype)
