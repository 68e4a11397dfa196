"""The weights of a weight-only quantization (pure numpy, no graph edits).

A weight ``W`` is rounded by a registered weight method (``rtn``:
:func:`onnxq.weights.rtn.round_to_nearest`; ``gptq``: :mod:`onnxq.weights.gptq`, from the
Hessian of the layer's inputs) for its granularity:

* int8, per output channel ``c`` (every element whose channel index is ``c``)::

      symmetric:   s_c = max|W_c| / 127,  z_c = 0,   q = clip(round_half_even(W / s_c), -127, 127)
      asymmetric:  s_c = (max(W_c, 0) - min(W_c, 0)) / 255,
                   z_c = clip(-128 - round_half_even(min(W_c, 0) / s_c), -128, 127),
                   q = clip(round_half_even(W / s_c) + z_c, -128, 127)

* int4 / uint4, per block ``b`` of ``block_size`` consecutive elements along the reduction axis
  (``[K, N]``: ``W[b*B : (b+1)*B, n]``), the same formulas with the 4-bit ranges: int4 symmetric
  ``[-7, 7]`` (``s = max|W_b| / 7``, narrow so that ``-w`` is representable), int4 with zero points
  ``[-8, 7]``, uint4 ``[0, 15]`` (symmetric: ``z = 8``, ``s = max|W_b| / 7.5``).

A reduction length that ``block_size`` does not divide ends in a shorter last block, whose scale
and zero point come from its own elements only; DequantizeLinear (opset 21) defines the blocks the
same way (the parameters have ``ceil(K / block_size)`` entries along the axis). A range of zero
width (an all-zero block) gets scale 1. Dequantized, ``W' = (q - z) * s``.

:func:`matmul_nbits_layout` lays a 4-bit ``[N, K]`` weight out as ``com.microsoft.MatMulNBits``
reads it (see there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onnxq.qconfig import QSpec
from onnxq.qparams import dequantize, pack_4bit
from onnxq.scheme import Granularity, PerBlock
from onnxq.weights.registry import QuantizedTensor, WeightRequest, get_weight_method


def quantize_weight_only(
    w: np.ndarray,
    spec: QSpec,
    granularity: Granularity,
    method: str = "rtn",
    *,
    flatten: bool = False,
    node: str = "",
    op_type: str = "",
    hessian: np.ndarray | None = None,
    mse_scales: bool = False,
) -> QuantizedTensor:
    """``w`` (float32) quantized by the weight method ``method`` for ``granularity`` (axis
    resolved); with ``flatten`` the weight is first viewed as ``[w.shape[0], rest]`` (a Conv's
    input-channel x kernel axis as one reduction axis), and the result keeps that 2-D shape.
    ``hessian``: the layer's input Hessian over the reduction axis, for methods that use it;
    ``mse_scales``: scales by least squared error (:class:`WeightRequest`)."""
    w = np.asarray(w, dtype=np.float32)
    if flatten:
        w = w.reshape(w.shape[0], -1)
    request = WeightRequest(node, op_type, w, spec, granularity, hessian=hessian, mse_scales=mse_scales)
    return get_weight_method(method)(request)


def dequantize_weight(q: QuantizedTensor) -> np.ndarray:
    """The float weight ``(q - z) * s`` the integers stand for (what DequantizeLinear computes)."""
    return dequantize(q.values, q.qparams)


@dataclass(frozen=True, eq=False)
class NBitsWeight:
    """A 4-bit weight in MatMulNBits' layout: ``packed [N, blocks, block_size / 2]`` uint8,
    ``scales [N * blocks]`` float32, ``zero_points`` (None: all 8, the op's default) packed uint8
    ``[N * ceil(blocks / 2)]``; ``k`` and ``block_size`` for its attributes."""

    packed: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray | None
    k: int
    block_size: int


def matmul_nbits_layout(q: QuantizedTensor) -> NBitsWeight:
    """The 4-bit weight ``q`` of shape ``[N, K]``, blocked along axis 1, in MatMulNBits' layout.

    MatMulNBits computes ``Y = A @ W'^T`` with ``W'[n, k] = (u[n, k] - zp[n, k // B]) * s[n, k // B]``
    for unsigned 4-bit codes ``u``: a signed value is stored shifted by 8 (``u = q + 8``, its zero
    point too), which leaves ``u - zp`` and so ``W'`` unchanged. Codes are packed two per byte
    along K, the first in the low nibble; a row's K is padded to whole blocks with its zero point
    (dequantized to 0). Zero points are packed the same way, each row to whole bytes; when every
    one is 8 (int4 symmetric) they are left out.
    """
    granularity = q.qparams.granularity
    assert isinstance(granularity, PerBlock) and granularity.axis == 1 and q.values.ndim == 2
    n, k = q.values.shape
    shift = 8 if q.qparams.dtype == "int4" else 0
    codes = q.values.astype(np.int32) + shift
    zp = np.asarray(q.qparams.zero_point).astype(np.int32).reshape(n, -1) + shift
    packed, zero_points = pack_nbits(codes, zp, granularity.block_size)
    scales = np.asarray(q.qparams.scale, np.float32).reshape(-1)
    return NBitsWeight(packed, scales, zero_points, k, granularity.block_size)


def pack_nbits(
    codes: np.ndarray, zero_points: np.ndarray, block: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Unsigned 4-bit ``codes [N, K]`` and their zero points ``[N, ceil(K / block)]`` (0..15) in
    MatMulNBits' layout (see :func:`matmul_nbits_layout`): ``(packed [N, blocks, block / 2],
    packed zero points or None when every one is 8)``."""
    codes = np.asarray(codes, np.int32)
    zp = np.asarray(zero_points, np.int32)
    n, k = codes.shape
    blocks = math.ceil(k / block)
    if blocks * block != k:
        codes = np.concatenate([codes, np.repeat(zp[:, -1:], blocks * block - k, axis=1)], axis=1)
    packed = pack_4bit(codes).reshape(n, blocks, block // 2)
    if np.all(zp == 8):
        return packed, None
    if blocks % 2:
        zp = np.concatenate([zp, np.zeros((n, 1), np.int32)], axis=1)
    return packed, pack_4bit(zp)


__all__ = ["NBitsWeight", "dequantize_weight", "matmul_nbits_layout", "pack_nbits", "quantize_weight_only"]
