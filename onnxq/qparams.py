"""Reference quantization maths: choose scale/zero-point, quantize, dequantize (pure numpy).

Affine quantization maps a real ``x`` to an integer ``q`` in ``[qmin, qmax]``::

    q = saturate(round_half_even(x / scale) + zero_point)
    x' = (q - zero_point) * scale

Choosing parameters from an observed range ``[lo, hi]`` (always widened to contain 0, so that
zero — padding, ReLU outputs — is exactly representable):

* asymmetric: ``scale = (hi - lo) / (qmax - qmin)``,
  ``zero_point = saturate(qmin - round_half_even(lo / scale))``;
* symmetric:  ``scale = max(|lo|, |hi|) / ((qmax - qmin) / 2)``, ``zero_point`` the middle of the
  range (0 for int8, 128 for uint8). Symmetric int8 uses the narrow range ``[-127, 127]`` so that
  ``-x`` is representable whenever ``x`` is (the choice of onnxruntime and TFLite).

``reduce_range`` drops one bit (uint8 ``[0, 127]``, int8 ``[-64, 63]``), as PyTorch's fbgemm/x86
defaults do for activations. A range of width zero (a constant all-zero tensor) gets ``scale = 1``;
otherwise the scale is at least ``float32`` eps. Scales are float32, as in ONNX.

Bias of a Conv/Gemm is stored as int32 with ``scale = input_scale * weight_scale`` and zero point 0,
so that it adds directly to the int32 accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = float(np.finfo(np.float32).eps)
_NP_DTYPES = {"uint8": np.uint8, "int8": np.int8}


def qrange(dtype: str, symmetric: bool = False, reduce_range: bool = False) -> tuple[int, int]:
    """The integer range ``(qmin, qmax)`` for ``dtype`` ("uint8" or "int8")."""
    if dtype == "uint8":
        qmin, qmax = 0, 127 if reduce_range else 255
    elif dtype == "int8":
        qmin, qmax = (-64, 63) if reduce_range else (-128, 127)
        if symmetric:
            qmin = -qmax
    else:
        raise ValueError(f"quantized dtype must be 'uint8' or 'int8', got {dtype!r}")
    return qmin, qmax


@dataclass(frozen=True, eq=False)
class QParams:
    """Scale and zero point of one tensor: per-tensor (``axis is None``, 0-d arrays) or per-channel.

    ``scale`` is float32; ``zero_point`` has the quantized dtype (uint8 or int8).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self) -> None:
        scale = np.asarray(self.scale, dtype=np.float32)
        zp = np.asarray(self.zero_point)
        if zp.dtype not in (np.uint8, np.int8):
            raise ValueError(f"zero_point must be uint8 or int8, got {zp.dtype}")
        if scale.shape != zp.shape:
            raise ValueError(f"scale shape {scale.shape} != zero_point shape {zp.shape}")
        if (self.axis is None) != (scale.ndim == 0):
            raise ValueError("per-tensor qparams need 0-d arrays, per-channel 1-d with an axis")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ValueError("scales must be finite and positive")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zp)

    @property
    def dtype(self) -> str:
        """"uint8" or "int8"."""
        return str(self.zero_point.dtype)


def choose_qparams(
    lo: np.ndarray | float,
    hi: np.ndarray | float,
    dtype: str = "uint8",
    symmetric: bool = False,
    reduce_range: bool = False,
    axis: int | None = None,
) -> QParams:
    """Scale/zero-point for the observed range ``[lo, hi]`` (scalars, or 1-d arrays with ``axis``)."""
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
    return QParams(scale, zp.astype(_NP_DTYPES[dtype]), axis)


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
    return QParams(np.asarray(scale), zero_point.astype(_NP_DTYPES[dtype]))


def clamp_round(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """fp32 ``v`` clamped to integral ``[lo, hi]`` (NaN -> lo), rounded half to even, as int32.

    Clamping before rounding in fp32 is what onnxruntime (MLAS) and onnxq's kernels do; for finite
    values it equals rounding then saturating, and it sends NaN to ``lo`` and +-inf to the bounds.
    """
    v = np.asarray(v, dtype=np.float32)
    v = np.where(v >= np.float32(lo), v, np.float32(lo))  # maxps semantics: NaN selects lo
    v = np.where(v <= np.float32(hi), v, np.float32(hi))
    return np.rint(v).astype(np.int32)


def _per_axis(values: np.ndarray | float, ndim: int, axis: int | None, dtype: type) -> np.ndarray:
    arr: np.ndarray = np.asarray(values, dtype=dtype)
    if axis is None:
        return arr.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return arr.reshape(shape)


def quantize_array(
    x: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    axis: int | None = None,
    dtype: np.dtype | type = np.uint8,
) -> np.ndarray:
    """ONNX QuantizeLinear on raw arrays: ``clamp_round(float32(x) / scale) + zp`` as ``dtype``.

    ``scale`` / ``zero_point`` are scalars, or 1-d along ``axis`` (per channel).
    """
    x32 = np.asarray(x, dtype=np.float32)
    qmin, qmax = qrange(str(np.dtype(dtype)))
    s = _per_axis(scale, x32.ndim, axis, np.float32)
    zp = _per_axis(zero_point, x32.ndim, axis, np.int32)
    q = clamp_round(x32 / s, qmin - zp, qmax - zp) + zp
    return q.astype(dtype)


def dequantize_array(
    q: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int, axis: int | None = None
) -> np.ndarray:
    """ONNX DequantizeLinear on raw arrays: ``float32(q - zp) * scale``."""
    qi = np.asarray(q).astype(np.int32)
    s = _per_axis(scale, qi.ndim, axis, np.float32)
    zp = _per_axis(zero_point, qi.ndim, axis, np.int32)
    return ((qi - zp).astype(np.float32) * s).astype(np.float32)


def quantize(x: np.ndarray, qp: QParams) -> np.ndarray:
    """ONNX QuantizeLinear with ``qp``: ``saturate(round_half_even(x / scale) + zp)`` in float32."""
    return quantize_array(x, qp.scale, qp.zero_point, qp.axis, qp.zero_point.dtype)


def dequantize(q: np.ndarray, qp: QParams) -> np.ndarray:
    """ONNX DequantizeLinear with ``qp``: ``(q - zp) * scale`` in float32."""
    return dequantize_array(q, qp.scale, qp.zero_point, qp.axis)


def fake_quantize(x: np.ndarray, qp: QParams) -> np.ndarray:
    """Quantize then dequantize: the value the int8 model will see in place of ``x``."""
    return dequantize(quantize(x, qp), qp)


def quantize_bias(
    bias: np.ndarray, input_scale: np.ndarray | float, weight_scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bias as int32 with ``scale = input_scale * weight_scale`` (per output channel), zp 0.

    Returns ``(q_bias int32, bias_scale float32)``; values beyond int32 saturate.
    """
    b_scale = (np.float32(input_scale) * np.asarray(weight_scale, dtype=np.float32)).astype(
        np.float32
    )
    b_scale = np.where(b_scale > 0, b_scale, np.float32(_EPS)).astype(np.float32)
    q = np.rint(np.asarray(bias, dtype=np.float64) / b_scale.astype(np.float64))
    info = np.iinfo(np.int32)
    return np.clip(q, info.min, info.max).astype(np.int32), b_scale


__all__ = [
    "QParams",
    "choose_qparams",
    "clamp_round",
    "dequantize",
    "dequantize_array",
    "fake_quantize",
    "fixed_qparams",
    "qrange",
    "quantize",
    "quantize_array",
    "quantize_bias",
]
