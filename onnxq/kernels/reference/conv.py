"""Numpy reference of the quantized 2-D convolution (the twin of the native conv kernels).

Layouts: activations are NHWC u8, weights OIHW s8 (ONNX order, ``I = C / groups``), bias int32 per
output channel, requantisation multiplier fp32 per output channel (or one for all).

Maths (bit-exact by design, the same steps as onnxruntime's QLinearConv / MLAS):

    acc[n, oh, ow, o] = bias[o] + sum_{kh, kw, i} (x[n, ih, iw, g*I + i] - x_zp) * w[o, i, kh, kw]
        with ih = oh*stride_h - pad_top + kh*dilation_h (likewise iw), g = o // (O / groups),
        taps outside the input contribute 0 (the input is padded with x_zp);
    y = clamp(float32(acc) * scale[o], qmin - y_zp, qmax - y_zp)    (fp32 multiply, clamp in fp32)
    y = round_half_to_even(y) + y_zp                                 (stored as u8)

``scale[o] = float32(x_scale * w_scale[o]) / y_scale`` in fp32, in that order (see
:func:`requant_scales`), as onnxruntime computes it; the int32 sums wrap like the C int32 ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onnxq.kernels.reference.requant import requantize, wrap_int32

__all__ = ["conv_output_size", "conv_u8s8_nhwc", "requant_scales"]


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int) -> int:
    """Output extent of one spatial axis (ONNX Conv, explicit pads); may be <= 0 when invalid."""
    effective = dilation * (kernel - 1) + 1
    return (size + pad_begin + pad_end - effective) // stride + 1


def requant_scales(x_scale: float, w_scale: np.ndarray | float, y_scale: float) -> np.ndarray:
    """Per-channel fp32 multipliers ``x_scale * w_scale / y_scale`` evaluated in fp32."""
    xs = np.float32(x_scale)
    ys = np.float32(y_scale)
    ws = np.atleast_1d(np.asarray(w_scale, dtype=np.float32))
    return ((xs * ws) / ys).astype(np.float32)


def conv_u8s8_nhwc(
    x: np.ndarray,
    x_zp: int,
    w: np.ndarray,
    bias: np.ndarray | None,
    scale: np.ndarray | float,
    y_zp: int,
    *,
    strides: Sequence[int] = (1, 1),
    dilations: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    groups: int = 1,
    qmin: int = 0,
    qmax: int = 255,
) -> np.ndarray:
    """Quantized convolution of NHWC u8 ``x`` with OIHW s8 ``w``; returns NHWC u8.

    ``pads`` is in ONNX order ``(top, left, bottom, right)``; ``scale`` is the requantisation
    multiplier per output channel (length O) or a scalar; ``[qmin, qmax]`` is the fused clamp
    (``[0, 255]`` when nothing is fused). Shapes are trusted: this is the oracle, not the validator.
    """
    n, h, wd, c = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    pt, pl, pb, pr = pads
    og = o // groups
    oh = conv_output_size(h, kh, sh, dh, pt, pb)
    ow = conv_output_size(wd, kw, sw, dw, pl, pr)
    xp = np.full((n, h + pt + pb, wd + pl + pr, c), x_zp, dtype=np.uint8)
    xp[:, pt : pt + h, pl : pl + wd, :] = x
    centred = xp.astype(np.float64) - float(x_zp)
    # Columns (N*OH*OW, KH*KW, C): one strided view per tap.
    taps = []
    for i in range(kh):
        for j in range(kw):
            view = centred[
                :,
                i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw,
                :,
            ]
            taps.append(view.reshape(n * oh * ow, c))
    cols = np.stack(taps, axis=1)
    acc = np.empty((n * oh * ow, o), dtype=np.int64)
    wf = w.astype(np.float64)
    for g in range(groups):
        a = cols[:, :, g * cg : (g + 1) * cg].reshape(n * oh * ow, kh * kw * cg)
        b = wf[g * og : (g + 1) * og].transpose(2, 3, 1, 0).reshape(kh * kw * cg, og)
        # float64 sums of integers below 2**53 are exact.
        acc[:, g * og : (g + 1) * og] = np.rint(a @ b).astype(np.int64)
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64)
    sc = np.broadcast_to(np.asarray(scale, dtype=np.float32), (o,))
    y = requantize(wrap_int32(acc), sc, y_zp, qmin, qmax, np.uint8)
    return y.reshape(n, oh, ow, o)
