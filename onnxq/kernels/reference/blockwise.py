"""Numpy reference of the block-wise 4-bit matmul (the twin of the native ``qb4w`` kernels and of
the ``ai.onnxq.DynamicMatMulNBits`` custom op).

Weights ``W[n, k]`` are unsigned 4-bit codes ``u`` in blocks of ``block`` consecutive ``k`` (a
power of two in [32, 65536]) with one fp32 scale ``ws[n, b]`` and zero point ``z[n, b]`` per block
(8 when none are given: signed int4 ``q`` stored as ``u = q + 8``); ``nb = ceil(k / block)``. They
come in onnxruntime MatMulNBits' layout (:func:`unpack_nbits`).

Activations ``a[m, k]`` are quantized per row (:func:`quantize_rows`):

1. ``amax = max(-min(a_r), max(a_r))`` (every value finite, else :class:`KernelError`);
2. ``s_a = amax / 127`` (fp32 division), 1 when that is not > 0 (an all-zero row, or subnormals
   too small to scale);
3. ``q = round_half_even(clamp(a_r / s_a, -128, 127))`` (ONNX QuantizeLinear to int8, zero point 0;
   in fact ``|q| <= 127``), zero-padded to ``nb * block`` values;
4. ``bsum[r, b]``: the sum of ``q`` over block ``b``.

Then per row ``r`` and column ``n``::

    acc[b] = sum_{i in block b} q[r, i] * u[n, i] - z[n, b] * bsum[r, b]      (int32, wrapping)
    y = 0.0f;  for b in 0 .. nb - 1, in order:  y = y + float(acc[b]) * (s_a * ws[n, b])
    y = y + bias[n]                                                              (when given)

each an fp32 operation rounded to nearest even, never fused: the native kernels follow exactly
this order on every ISA, so the two agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels.reference.requant import wrap_int32
from onnxq.qparams import clamp_round, unpack_4bit

__all__ = ["blockwise_matmul", "quantize_rows", "unpack_nbits"]

_F32 = np.float32


def quantize_rows(a: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(q [m, nb * block] int8, s_a [m] float32, bsum [m, nb] int32)`` of fp32 ``a[m, k]``."""
    a = np.asarray(a, dtype=_F32)
    if a.ndim != 2:
        raise ValueError(f"quantize_rows expects a 2-D array, got shape {a.shape}")
    finite = np.isfinite(a).all(axis=1)
    if not finite.all():
        raise KernelError(f"a: row {int(np.argmin(finite))} contains NaN or infinity; expected finite values")
    m, k = a.shape
    nb = math.ceil(k / block)
    amax = np.maximum(-a.min(axis=1), a.max(axis=1)).astype(_F32)
    with np.errstate(under="ignore"):
        scale = (amax / _F32(127)).astype(_F32)
    scale = np.where(scale > 0, scale, _F32(1)).astype(_F32)
    q = np.zeros((m, nb * block), np.int8)
    with np.errstate(over="ignore"):
        q[:, :k] = clamp_round((a / scale[:, None]).astype(_F32), -128, 127)
    bsum = q.reshape(m, nb, block).astype(np.int32).sum(axis=2).astype(np.int32)
    return q, scale, bsum


def unpack_nbits(
    b: np.ndarray, zero_points: np.ndarray | None, n: int, k: int, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``u [n, k]`` (uint8, 0..15) and zero points ``z [n, nb]`` (all 8 when ``zero_points``
    is None) from MatMulNBits' layout: ``b [n, nb, block / 2]`` bytes, value ``i`` of a row in byte
    ``i // 2``, the low nibble first; ``zero_points`` packed the same way, ``ceil(nb / 2)`` bytes a
    row."""
    nb = math.ceil(k / block)
    rows = np.asarray(b, np.uint8).reshape(n, nb * block // 2)
    codes = np.stack([unpack_4bit(r, k, signed=False) for r in rows]).astype(np.uint8).reshape(n, k)
    if zero_points is None:
        return codes, np.full((n, nb), 8, np.uint8)
    zrows = np.asarray(zero_points, np.uint8).reshape(n, -1)
    zp = np.stack([unpack_4bit(r, nb, signed=False) for r in zrows]).astype(np.uint8).reshape(n, nb)
    return codes, zp


def blockwise_matmul(
    a: np.ndarray,
    codes: np.ndarray,
    scales: np.ndarray,
    zero_points: np.ndarray | None,
    block: int,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """``y[m, n]`` of fp32 ``a[m, k]`` and the codes ``u[n, k]`` with ``scales [n, nb]`` and zero
    points ``[n, nb]`` (None: 8), as the module docstring defines it."""
    a = np.asarray(a, dtype=_F32)
    codes = np.asarray(codes, np.int64)
    n, k = codes.shape
    nb = math.ceil(k / block)
    ws = np.asarray(scales, _F32).reshape(n, nb)
    zp = np.full((n, nb), 8, np.int64) if zero_points is None else np.asarray(zero_points, np.int64)
    zp = zp.reshape(n, nb)
    q, s_a, bsum = quantize_rows(a, block)
    q = q[:, :k].astype(np.int64)
    y = np.zeros((a.shape[0], n), _F32)
    for b in range(nb):
        lo, hi = b * block, min((b + 1) * block, k)
        dot = q[:, lo:hi] @ codes[:, lo:hi].T
        acc = wrap_int32(dot - zp[None, :, b] * bsum[:, b, None].astype(np.int64))
        d = (s_a[:, None] * ws[None, :, b]).astype(_F32)
        y = (y + (acc.astype(_F32) * d).astype(_F32)).astype(_F32)
    if bias is not None:
        y = (y + np.asarray(bias, _F32)[None, :]).astype(_F32)
    return y
