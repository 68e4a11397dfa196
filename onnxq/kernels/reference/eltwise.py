"""Numpy reference of the quantized elementwise add (the twin of the native ``qadd`` kernels).

Same arithmetic as onnxruntime's ``QLinearAdd`` (com.microsoft) on x86 (MLAS AVX2 kernel), so the
same model gives the same bytes on both:

    rA = a_scale / y_scale,  rB = b_scale / y_scale                         (fp32)
    fixed = y_zp - fma(rA, a_zp, rB * b_zp)                                  (fp32)
    y = fma(a, rA, fma(b, rB, fixed))        in general (also when b is constant along a row)
    y = fma(b, rB, fma(a, rA, fixed))        when a is constant along a row and b is not
    q = saturate(round_half_even(y))         (clamped to [y_zp, qmax] when ReLU is fused)

``fma`` is the single-rounding fp32 fused multiply-add (emulated exactly here with float64 and
round-to-odd). Broadcasting is expressed by :class:`AddLayout`: the output is ``outer x inner``
and each operand is either full, repeated along ``outer`` (per-channel, last axes), constant per
row, or a scalar — the forms onnxruntime's broadcaster reduces shapes to.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["AddLayout", "Bcast", "a_first", "add_layout", "fma_f32", "qadd"]

_F32 = np.float32


class Bcast(IntEnum):
    """How one operand of the add is laid out relative to the ``outer x inner`` output."""

    FULL = 0  # outer * inner elements
    INNER = 1  # inner elements, repeated for every outer row
    ROW = 2  # outer elements, constant along each row
    SCALAR = 3  # one element


@dataclass(frozen=True)
class AddLayout:
    """Output ``outer x inner`` plus the broadcast form of each operand."""

    outer: int
    inner: int
    a: Bcast
    b: Bcast

    def operand_size(self, form: Bcast) -> int:
        """Number of elements an operand of this form holds."""
        return {
            Bcast.FULL: self.outer * self.inner,
            Bcast.INNER: self.inner,
            Bcast.ROW: self.outer,
            Bcast.SCALAR: 1,
        }[form]


def fma_f32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` rounded once to float32 (exact for fp32 inputs whose product fits float64).

    The product of two fp32 values is exact in float64; the sum is rounded to float64 with
    round-to-odd (TwoSum error term), after which the conversion to fp32 rounds correctly.
    """
    a64 = np.asarray(a, dtype=_F32).astype(np.float64)
    b64 = np.asarray(b, dtype=_F32).astype(np.float64)
    c64 = np.asarray(c, dtype=_F32).astype(np.float64)
    p = a64 * b64
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    s = np.asarray(s)
    even = (s.view(np.int64) & 1) == 0
    s = np.where((err != 0) & even, np.nextafter(s, s + err), s)
    return s.astype(_F32)


def _expand(x: np.ndarray, form: Bcast, layout: AddLayout) -> np.ndarray:
    x = np.asarray(x).reshape(-1)
    if form is Bcast.FULL:
        return x.reshape(layout.outer, layout.inner)
    if form is Bcast.INNER:
        return np.broadcast_to(x.reshape(1, layout.inner), (layout.outer, layout.inner))
    if form is Bcast.ROW:
        return np.broadcast_to(x.reshape(layout.outer, 1), (layout.outer, layout.inner))
    return np.broadcast_to(x.reshape(1, 1), (layout.outer, layout.inner))


def _row_constant(form: Bcast) -> bool:
    return form in (Bcast.ROW, Bcast.SCALAR)


def a_first(layout: AddLayout) -> bool:
    """True when ``a`` is folded into the constant first (a constant per row, b not)."""
    return _row_constant(layout.a) and not _row_constant(layout.b)


def add_layout(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> AddLayout | None:
    """The layout of ``a + b`` under numpy broadcasting, or None when it needs materialising."""
    out = tuple(np.broadcast_shapes(tuple(a_shape), tuple(b_shape)))
    rank = len(out)
    a_full = (1,) * (rank - len(a_shape)) + tuple(a_shape)
    b_full = (1,) * (rank - len(b_shape)) + tuple(b_shape)

    def form_of(shape: tuple[int, ...], split: int) -> Bcast | None:
        outer_part = shape[:split]
        inner_part = shape[split:]
        outer_full = outer_part == out[:split]
        inner_full = inner_part == out[split:]
        outer_one = all(d == 1 for d in outer_part)
        inner_one = all(d == 1 for d in inner_part)
        if outer_one and inner_one:
            return Bcast.SCALAR
        if outer_full and inner_full:
            return Bcast.FULL
        if outer_one and inner_full:
            return Bcast.INNER
        if outer_full and inner_one:
            return Bcast.ROW
        return None

    for split in range(rank + 1):
        fa = form_of(a_full, split)
        fb = form_of(b_full, split)
        if fa is None or fb is None:
            continue
        outer = int(np.prod(out[:split], dtype=np.int64))
        inner = int(np.prod(out[split:], dtype=np.int64))
        return AddLayout(outer, inner, fa, fb)
    return None


def qadd(
    a: np.ndarray,
    a_scale: float,
    a_zp: int,
    b: np.ndarray,
    b_scale: float,
    b_zp: int,
    y_scale: float,
    y_zp: int,
    layout: AddLayout,
    relu: bool = False,
) -> np.ndarray:
    """Quantized ``a + b`` → array of shape ``(outer, inner)`` with the dtype of ``a`` (u8/s8)."""
    dtype = np.asarray(a).dtype
    info = np.iinfo(dtype)
    ra = _F32(a_scale) / _F32(y_scale)
    rb = _F32(b_scale) / _F32(y_scale)
    fixed = _F32(y_zp) - fma_f32(ra, _F32(a_zp), rb * _F32(b_zp))
    av = _expand(a, layout.a, layout).astype(_F32)
    bv = _expand(b, layout.b, layout).astype(_F32)
    if a_first(layout):
        y = fma_f32(bv, rb, fma_f32(av, ra, fixed))
    else:
        y = fma_f32(av, ra, fma_f32(bv, rb, fixed))
    lo = max(info.min, int(y_zp)) if relu else info.min
    q = np.clip(np.rint(y), lo, info.max)
    return q.astype(dtype).reshape(layout.outer, layout.inner)
