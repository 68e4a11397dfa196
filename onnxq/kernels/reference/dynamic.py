"""Numpy reference of the dynamic-quantization matmul (the twin of the native ``dqmm`` kernels).

``y[m, n] = sum_k a[m, k] * w[n, k]`` with fp32 ``a`` quantized at run time and s8 weights
quantized per output channel ``n`` (symmetric, zero point 0):

1. range: ``lo = min(0, min(a_rows))``, ``hi = max(0, max(a_rows))`` over the whole tensor
   (``per_row=False``, as onnxruntime's DynamicQuantizeLinear / DynamicQuantizeMatMul) or over each
   row (``per_row=True``);
2. ``scale = (hi - lo) / 255`` (fp32; 1 when ``hi == lo``),
   ``zp = round_half_even(clamp(0 - lo / scale, 0, 255))``;
3. ``q = round_half_even(clamp(a / scale, -zp, 255 - zp)) + zp`` (u8, ONNX QuantizeLinear);
4. ``acc = sum_k (q - zp) * w`` (int32), ``y = float(acc) * (a_scale * w_scale[n])`` with the
   product of the two scales rounded to fp32 first, then ``+ bias[n]`` (a separate fp32 add), as
   MLAS's scale/bias output processor does.

Non-finite input is refused, by this reference and by the native kernels alike (every ISA): NaN
or +-Inf anywhere in ``a`` raises :class:`onnxq.errors.KernelError`, and so does a range whose
``scale`` is not a finite value > 0 (``hi - lo`` overflowing fp32, e.g. ``[-3e38, 3e38]``, or
``(hi - lo) / 255`` underflowing to 0 for ranges of a few subnormals). Otherwise the result is
defined for every finite input and identical bit for bit to the native one.
"""

from __future__ import annotations

import numpy as np

from onnxq.errors import KernelError

__all__ = ["dynamic_matmul", "dynamic_quantize"]

_F32 = np.float32


def dynamic_quantize(a: np.ndarray, per_row: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantize a 2-D fp32 array to u8; returns ``(q, scale, zp)`` with one scale/zp per row
    (``per_row``) or a single one (arrays of shape ``(1,)``)."""
    a = np.asarray(a, dtype=_F32)
    if a.ndim != 2:
        raise ValueError(f"dynamic_quantize expects a 2-D array, got shape {a.shape}")
    finite = np.isfinite(a)
    if not finite.all():
        row = int(np.argmin(finite.all(axis=1)))
        raise KernelError(f"a: row {row} contains NaN or infinity; expected finite values")
    rows = a if per_row else a.reshape(1, -1)
    mn, mx = rows.min(axis=1), rows.max(axis=1)
    lo = np.where(mn < 0, mn, _F32(0)).astype(_F32)  # as C: lo < 0 ? lo : 0 (no -0.0)
    hi = np.where(mx > 0, mx, _F32(0)).astype(_F32)
    with np.errstate(over="ignore", under="ignore"):
        scale = np.where(hi == lo, _F32(1), (hi - lo) / _F32(255)).astype(_F32)
    bad = ~(np.isfinite(scale) & (scale > 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise KernelError(
            f"a: row {row} has range [{lo[row]}, {hi[row]}], whose scale (hi - lo) / 255 = {scale[row]} "
            "is not a finite value > 0; expected finite values"
        )
    zp_f = (_F32(0) - (lo / scale).astype(_F32)).astype(_F32)
    zp = np.rint(np.clip(zp_f, _F32(0), _F32(255))).astype(np.int32)
    v = (rows / scale[:, None]).astype(_F32)
    v = np.clip(v, (-zp)[:, None].astype(_F32), (255 - zp)[:, None].astype(_F32))
    q = (np.rint(v).astype(np.int32) + zp[:, None]).astype(np.uint8).reshape(a.shape)
    return q, scale, zp


def dynamic_matmul(
    a: np.ndarray,
    w: np.ndarray,
    w_scale: np.ndarray | float,
    bias: np.ndarray | None = None,
    per_row: bool = False,
) -> np.ndarray:
    """``a[M, K]`` fp32 times s8 ``w[N, K]`` (per-channel ``w_scale``) → fp32 ``[M, N]``."""
    a = np.asarray(a, dtype=_F32)
    w = np.asarray(w, dtype=np.int8)
    q, scale, zp = dynamic_quantize(a, per_row=per_row)
    acc = (q.astype(np.int64) - np.repeat(zp, a.shape[0] if not per_row else 1)[:, None]) @ w.astype(
        np.int64
    ).T
    acc = acc.astype(np.int32)
    ws = np.broadcast_to(np.atleast_1d(np.asarray(w_scale, dtype=_F32)), (w.shape[0],))
    row_scale = scale if per_row else np.repeat(scale, a.shape[0])
    mult = (row_scale[:, None] * ws[None, :]).astype(_F32)
    y = (acc.astype(_F32) * mult).astype(_F32)
    if bias is not None:
        y = (y + np.asarray(bias, dtype=_F32)[None, :]).astype(_F32)
    return y
