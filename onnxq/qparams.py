"""Reference quantization maths: choose scale/zero-point, quantize, dequantize (pure numpy).

Affine quantization maps a real ``x`` to an integer ``q`` in ``[qmin, qmax]``::

    q = saturate(round_half_even(x / scale) + zero_point)
    x' = (q - zero_point) * scale

with one ``(scale, zero_point)`` per tensor, per channel along an axis, or per block of
``block_size`` consecutive elements along an axis (:mod:`onnxq.scheme`): a block's parameters are
those of its first element's block index ``i // block_size``, as ONNX DequantizeLinear (opset 21)
defines them.

Choosing parameters from an observed range ``[lo, hi]`` (always widened to contain 0, so that
zero — padding, ReLU outputs — is exactly representable), for each tensor/channel/block:

* asymmetric: ``scale = (hi - lo) / (qmax - qmin)``,
  ``zero_point = saturate(qmin - round_half_even(lo / scale))``;
* symmetric:  ``scale = max(|lo|, |hi|) / ((qmax - qmin) / 2)``, ``zero_point`` the middle of the
  range (0 for signed types, ``2**(bits-1)`` for unsigned). Symmetric signed types use the narrow
  range ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` so that ``-x`` is representable whenever ``x``
  is (the choice of onnxruntime and TFLite): ``[-127, 127]`` for int8, ``[-7, 7]`` for int4.

``reduce_range`` drops one bit (uint8 ``[0, 127]``, int8 ``[-64, 63]``), as PyTorch's fbgemm/x86
defaults do for 8-bit activations. A range of width zero (a constant all-zero tensor) gets
``scale = 1``; otherwise the scale is at least ``float32`` eps. Scales are float32, as in ONNX.

Bias of a Conv/Gemm is stored as int32 with ``scale = input_scale * weight_scale`` and zero point 0,
so that it adds directly to the int32 accumulator. 4-bit tensors are packed two to a byte in ONNX
files, the first element in the low nibble (:func:`pack_4bit` / :func:`unpack_4bit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onnxq.scheme import PER_TENSOR, Granularity, PerBlock, PerChannel, PerTensor, dtype_of, qdtype

_EPS = float(np.finfo(np.float32).eps)


def qrange(dtype: str, symmetric: bool = False, reduce_range: bool = False) -> tuple[int, int]:
    """The integer range ``(qmin, qmax)`` for ``dtype`` (see the module docstring)."""
    t = qdtype(dtype)
    qmin, qmax = t.qmin, t.qmax
    if reduce_range:
        qmin, qmax = (qmin // 2, qmax // 2) if t.signed else (0, qmax // 2)
    if symmetric and t.signed:
        qmin = -qmax
    return qmin, qmax


@dataclass(frozen=True, eq=False)
class QParams:
    """Scale and zero point of one tensor, with their granularity (its axis always concrete).

    ``scale`` is float32; ``zero_point`` holds the quantized dtype (``ml_dtypes`` int4/uint4 for
    4 bits). Shapes: 0-d per tensor, 1-d per channel, the tensor's rank per block.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    granularity: Granularity = PER_TENSOR

    def __post_init__(self) -> None:
        scale = np.asarray(self.scale, dtype=np.float32)
        zp = np.asarray(self.zero_point)
        dtype_of(zp)  # raises for anything but the quantized dtypes
        g = self.granularity
        if scale.shape != zp.shape:
            raise ValueError(f"scale shape {scale.shape} != zero_point shape {zp.shape}")
        if isinstance(g, PerTensor) and scale.ndim != 0:
            raise ValueError("per-tensor qparams need 0-d arrays")
        if isinstance(g, PerChannel) and (g.axis is None or scale.ndim != 1):
            raise ValueError("per-channel qparams need 1-d arrays and a concrete axis")
        if isinstance(g, PerBlock) and (g.axis is None or scale.ndim == 0):
            raise ValueError("per-block qparams need arrays of the tensor's rank and a concrete axis")
        if not isinstance(g, (PerTensor, PerChannel, PerBlock)):
            raise ValueError(f"granularity must be PerTensor, PerChannel or PerBlock, got {g!r}")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ValueError("scales must be finite and positive")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zp)

    @property
    def dtype(self) -> str:
        """The quantized dtype's name ("uint8", "int4", ...)."""
        return dtype_of(self.zero_point).name

    @property
    def axis(self) -> int | None:
        """The channel or block axis (None per tensor)."""
        return None if isinstance(self.granularity, PerTensor) else self.granularity.axis

    @property
    def block_size(self) -> int | None:
        return self.granularity.block_size if isinstance(self.granularity, PerBlock) else None


def choose_qparams(
    lo: np.ndarray | float,
    hi: np.ndarray | float,
    dtype: str = "uint8",
    symmetric: bool = False,
    reduce_range: bool = False,
    granularity: Granularity = PER_TENSOR,
) -> QParams:
    """Scale/zero-point for the observed range ``[lo, hi]`` (scalars, or arrays shaped like the
    scale of ``granularity``: 1-d per channel, :func:`block_min_max`'s shape per block)."""
    lo_a = np.minimum(np.asarray(lo, dtype=np.float64), 0.0)
    hi_a = np.maximum(np.asarray(hi, dtype=np.float64), 0.0)
    if not (np.all(np.isfinite(lo_a)) and np.all(np.isfinite(hi_a))):
        raise ValueError("observed range must be finite")
    qmin, qmax = qrange(dtype, symmetric, reduce_range)
    if symmetric:
        amax = np.maximum(-lo_a, hi_a)
        scale = amax / ((qmax - qmin) / 2.0)
        zp = np.full(scale.shape, (qmin + qmax + 1) // 2, dtype=np.float64)
        width = amax
    else:
        scale = (hi_a - lo_a) / float(qmax - qmin)
        width = hi_a - lo_a
    scale = np.where(width == 0, 1.0, np.maximum(scale, _EPS)).astype(np.float32)
    if not symmetric:
        zp = np.clip(qmin - np.rint(lo_a / scale.astype(np.float64)), qmin, qmax)
    return QParams(scale, zp.astype(np.int32).astype(qdtype(dtype).numpy), granularity)


def fixed_qparams(fixed_range: tuple[float, float], dtype: str) -> QParams:
    """The parameters of a known output range ``[lo, hi]`` over all ``2**bits`` levels of ``dtype``.

    ``scale = (hi - lo) / 2**bits`` and ``zero_point = qmin - lo / scale``: Sigmoid/Softmax
    ``[0, 1]`` get scale 1/256 and zero point 0 (uint8) or -128 (int8); Tanh ``[-1, 1]`` scale 1/128
    and zero point 128 (uint8) or 0 (int8).
    """
    lo, hi = fixed_range
    qmin, qmax = qrange(dtype)
    scale = np.float32((hi - lo) / float(qmax - qmin + 1))
    zero_point = np.array(qmin - round(lo / float(scale)), dtype=np.int64)
    return QParams(np.asarray(scale), zero_point.astype(qdtype(dtype).numpy))


def block_min_max(x: np.ndarray, axis: int, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block ``(min, max)`` of ``x``: shaped like ``x`` with ``ceil(n / block_size)`` along
    ``axis`` (the last block may be shorter). NaN propagates (filter before, as observers do)."""
    x = np.asarray(x)
    axis = axis % x.ndim
    n = x.shape[axis]
    blocks = math.ceil(n / block_size)
    pad = blocks * block_size - n
    if pad:  # repeating the last element changes neither the min nor the max of its block
        x = np.concatenate([x, np.repeat(np.take(x, [n - 1], axis=axis), pad, axis=axis)], axis=axis)
    view = x.reshape(*x.shape[:axis], blocks, block_size, *x.shape[axis + 1 :])
    return view.min(axis=axis + 1), view.max(axis=axis + 1)


def expand_blocks(params: np.ndarray, axis: int, block_size: int, n: int) -> np.ndarray:
    """Per-block ``params`` repeated to one entry per element along ``axis`` (length ``n``)."""
    return np.repeat(params, block_size, axis=axis).take(np.arange(n), axis=axis)


def clamp_round(v: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray) -> np.ndarray:
    """fp32 ``v`` clamped to integral ``[lo, hi]`` (NaN -> lo), rounded half to even, as int32.

    Clamping before rounding in fp32 is what onnxruntime (MLAS) and onnxq's kernels do; for finite
    values it equals rounding then saturating, and it sends NaN to ``lo`` and +-inf to the bounds.
    """
    v = np.asarray(v, dtype=np.float32)
    v = np.where(v >= np.asarray(lo, np.float32), v, np.asarray(lo, np.float32))  # maxps: NaN selects lo
    v = np.where(v <= np.asarray(hi, np.float32), v, np.asarray(hi, np.float32))
    return np.rint(v).astype(np.int32)


def _broadcast(
    values: np.ndarray | float, ndim: int, axis: int | None, dtype: type, block_size: int | None, n: int
) -> np.ndarray:
    """Per-tensor, per-channel or per-block parameters shaped to broadcast against the tensor."""
    arr: np.ndarray = np.asarray(values).astype(dtype)
    if axis is None:
        return arr.reshape(())
    axis = axis % ndim
    if block_size is not None:
        return expand_blocks(arr, axis, block_size, n)
    shape = [1] * ndim
    shape[axis] = -1
    return arr.reshape(shape)


def quantize_array(
    x: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    axis: int | None = None,
    dtype: np.dtype | type | str = np.uint8,
    block_size: int | None = None,
) -> np.ndarray:
    """ONNX QuantizeLinear on raw arrays: ``clamp_round(float32(x) / scale) + zp`` as ``dtype``.

    ``scale`` / ``zero_point`` are scalars, 1-d along ``axis`` (per channel), or with ``block_size``
    shaped like ``x`` with ``ceil(n / block_size)`` along ``axis`` (per block).
    """
    x32 = np.asarray(x, dtype=np.float32)
    t = qdtype(dtype if isinstance(dtype, str) else str(np.dtype(dtype)))
    n = x32.shape[axis] if axis is not None else 0
    s = _broadcast(scale, x32.ndim, axis, np.float32, block_size, n)
    zp = _broadcast(zero_point, x32.ndim, axis, np.int32, block_size, n)
    q = clamp_round(x32 / s, t.qmin - zp, t.qmax - zp) + zp
    return q.astype(t.numpy)


def dequantize_array(
    q: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    axis: int | None = None,
    block_size: int | None = None,
) -> np.ndarray:
    """ONNX DequantizeLinear on raw arrays: ``float32(q - zp) * scale`` (layouts as quantize)."""
    qi = np.asarray(q).astype(np.int32)
    n = qi.shape[axis] if axis is not None else 0
    s = _broadcast(scale, qi.ndim, axis, np.float32, block_size, n)
    zp = _broadcast(zero_point, qi.ndim, axis, np.int32, block_size, n)
    return ((qi - zp).astype(np.float32) * s).astype(np.float32)


def quantize(x: np.ndarray, qp: QParams) -> np.ndarray:
    """ONNX QuantizeLinear with ``qp``: ``saturate(round_half_even(x / scale) + zp)`` in float32."""
    return quantize_array(x, qp.scale, qp.zero_point, qp.axis, qp.zero_point.dtype, qp.block_size)


def dequantize(q: np.ndarray, qp: QParams) -> np.ndarray:
    """ONNX DequantizeLinear with ``qp``: ``(q - zp) * scale`` in float32."""
    return dequantize_array(q, qp.scale, qp.zero_point, qp.axis, qp.block_size)


def fake_quantize(x: np.ndarray, qp: QParams) -> np.ndarray:
    """Quantize then dequantize: the value the quantized model will see in place of ``x``."""
    return dequantize(quantize(x, qp), qp)


def quantize_bias(
    bias: np.ndarray, input_scale: np.ndarray | float, weight_scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bias as int32 with ``scale = input_scale * weight_scale`` (per output channel), zp 0.

    Returns ``(q_bias int32, bias_scale float32)``; values beyond int32 saturate.
    """
    # the product in float64, kept finite: an infinite scale would dequantize the bias 0 to NaN
    wide = np.float64(np.float32(input_scale)) * np.asarray(weight_scale, dtype=np.float32).astype(np.float64)
    b_scale = np.minimum(wide, np.finfo(np.float32).max).astype(np.float32)
    b_scale = np.where(b_scale > 0, b_scale, np.float32(_EPS)).astype(np.float32)
    q = np.rint(np.asarray(bias, dtype=np.float64) / b_scale.astype(np.float64))
    info = np.iinfo(np.int32)
    return np.clip(q, info.min, info.max).astype(np.int32), b_scale


def pack_4bit(q: np.ndarray) -> np.ndarray:
    """4-bit values (any integer dtype, in range) packed two per byte as ONNX stores them: element
    ``2i`` in the low nibble of byte ``i``, ``2i + 1`` in its high nibble (0 pads an odd count)."""
    nibbles = (np.asarray(q).astype(np.int32).reshape(-1) & 0xF).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def unpack_4bit(packed: np.ndarray, count: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_4bit`: ``count`` values as int8 (sign-extended when ``signed``)."""
    b = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if count < 0 or count > 2 * b.size:
        raise ValueError(f"cannot unpack {count} 4-bit values from {b.size} bytes")
    nibbles = np.stack([b & 0xF, b >> 4], axis=1).reshape(-1)[:count].astype(np.int8)
    return np.where(nibbles > 7, nibbles - 16, nibbles).astype(np.int8) if signed else nibbles


__all__ = [
    "QParams",
    "block_min_max",
    "choose_qparams",
    "clamp_round",
    "dequantize",
    "dequantize_array",
    "expand_blocks",
    "fake_quantize",
    "fixed_qparams",
    "pack_4bit",
    "qrange",
    "quantize",
    "quantize_array",
    "quantize_bias",
    "unpack_4bit",
]
