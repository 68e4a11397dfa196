#!/usr/bin/env python3
"""Fuzzer of the public native-kernel API: every ``onnxq.kernels`` wrapper and packed-weight class.

Each case is built from one integer seed: a target (quantize, dequantize, gemm, conv, qadd, pools,
qconcat, histogram grid counts, the entropy search's KL divergences, dynamic quantization / matmul,
the block-wise 4-bit matmul, LSTM / GRU, ISA control), an ISA to run under, and arguments drawn
from valid ones mutated at random: shapes with 0 and huge declared sizes (fields, pads, strides,
input shapes, hidden sizes), wrong dtypes, non-contiguous / reversed / misaligned / read-only
views, Python scalars of the wrong kind, huge integers, NaN / Inf / subnormal values, random thread
counts, and packed buffers that are truncated, extended, misaligned, replaced by random bytes or
whose header bytes are flipped or overwritten. Cases run in batches in child processes, so a crash
(a signal) is caught and reported with the seed that reproduces it.

A finding is: a crash (signal) or a hang of the child; an exception other than
``onnxq.errors.OnnxqError`` (``ValueError`` / ``TypeError`` are accepted only when the case passed
a wrong Python type on purpose); or a result that differs from the numpy reference
(``onnxq.kernels.reference``) for arguments that are valid.

Usage::

    python scripts/fuzz_kernels.py --seconds 600 [--seed 7] [--jobs 2] [--batch 300]
    python scripts/fuzz_kernels.py --replay SEED     # run one case here, with its traceback

Prints one line per finding and the number of cases tried; exit status 1 on any finding.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import mmap
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

SEED_SPAN = 10_000_000  # case seeds of --seed S are S * SEED_SPAN + 0, 1, 2, ...
CASE_TIMEOUT = 60.0  # seconds without output from a child: a hang
MEMORY_LIMIT = 6 << 30  # address space of a child: huge allocations fail fast (MemoryError)
MAX_WORK = 1 << 24  # output elements above which a valid case is only validated, not run


class Mismatch(Exception):
    """The native result differs from the reference for valid arguments."""


class Ctx:
    """Random choices of one case, plus what the case did to its arguments."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.valid = True  # no argument mutated: the reference must agree
        self.wrong_type = False  # a wrong Python type was passed: TypeError / ValueError allowed

    def p(self, prob: float) -> bool:
        return self.r.random() < prob

    def choice(self, seq: Any) -> Any:
        return seq[self.r.randrange(len(seq))]

    def invalid(self) -> None:
        self.valid = False


# ------------------------------------------------------------------------------------------------
# guard pages: an array whose last byte is followed by an inaccessible page, so that a kernel
# reading (or writing) past its end faults at once instead of silently using other memory

_LIBC = ctypes.CDLL(None, use_errno=True)
_PAGE = mmap.PAGESIZE
_PROT_NONE = 0


def guarded(arr: np.ndarray, align: int = 1) -> np.ndarray:
    """A C-contiguous copy of ``arr`` that ends exactly before a PROT_NONE page (when its size is a
    multiple of ``align``, so the copy keeps that alignment; else a plain copy)."""
    nbytes = arr.nbytes
    if nbytes == 0 or nbytes % max(align, arr.dtype.itemsize):
        return np.array(arr, copy=True, order="C")
    span = (nbytes + _PAGE - 1) // _PAGE * _PAGE + _PAGE
    region = mmap.mmap(-1, span)
    whole = np.frombuffer(region, dtype=np.uint8)
    if _LIBC.mprotect(ctypes.c_void_p(whole.ctypes.data + span - _PAGE), _PAGE, _PROT_NONE) != 0:
        return np.array(arr, copy=True, order="C")
    start = span - _PAGE - nbytes
    out = whole[start : start + nbytes].view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out  # keeps `whole`, hence the mapping, alive


# ------------------------------------------------------------------------------------------------
# value generators


WRONG_TYPES: list[Any] = [None, "1", b"\x00", object(), [1, "a"], {"a": 1}, 1j, (1, 2)]
HUGE = [1 << 16, 1 << 20, 1 << 24, 2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1, 2**63, 2**64, 2**70]


def dim(ctx: Ctx, hi: int = 8, zero: float = 0.03) -> int:
    if ctx.p(zero):
        ctx.invalid()
        return 0
    return ctx.r.randint(1, hi)


def declared(ctx: Ctx, value: int, prob: float = 0.04) -> Any:
    """A declared size: usually value, sometimes 0, negative, huge or of a wrong type."""
    if not ctx.p(prob):
        return value
    ctx.invalid()
    k = ctx.r.random()
    if k < 0.35:
        return ctx.choice(HUGE)
    if k < 0.5:
        return 0
    if k < 0.6:
        return -ctx.r.randint(1, 5)
    if k < 0.7:
        return value + ctx.r.randint(1, 3)
    if k < 0.8:
        return float(value) + ctx.choice([0.0, 0.5])
    if k < 0.9:
        return True
    ctx.wrong_type = True
    return ctx.choice(WRONG_TYPES)


def int_arg(ctx: Ctx, lo: int, hi: int, prob: float = 0.04) -> Any:
    """An integer argument (zero point, clamp, axis): in [lo, hi] or, rarely, anything."""
    if not ctx.p(prob):
        return ctx.r.randint(lo, hi)
    ctx.invalid()
    k = ctx.r.random()
    if k < 0.3:
        return ctx.choice([lo - 1, hi + 1, -(2**31) - 1, 2**31])
    if k < 0.5:
        return ctx.choice(HUGE) * ctx.choice([1, -1])
    if k < 0.6:
        return ctx.choice([np.int64(hi + 5), np.uint64(2**64 - 1), np.int8(-1), np.uint8(hi & 0xFF)])
    if k < 0.75:
        return ctx.choice([1.5, float("nan"), float("inf"), 3.0, -0.0, np.float32(2.0)])
    if k < 0.85:
        return ctx.choice([True, False, np.bool_(True)])
    ctx.wrong_type = True
    return ctx.choice(WRONG_TYPES)


def scale_arg(ctx: Ctx, count: int | None = None, prob: float = 0.04) -> Any:
    """A positive float32 scale (or ``count`` of them), rarely a bad one."""
    if not ctx.p(prob):
        if count is None:
            return float(np.float32(np.exp(ctx.r.uniform(-6, 1))))
        return np.exp(ctx.np.uniform(-6, 1, count)).astype(np.float32)
    ctx.invalid()
    k = ctx.r.random()
    if k < 0.45:
        v = ctx.choice([0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-45, 1e38, 3e38, 1e300])
        return v if count is None else np.full(count, v, np.float64 if v == 1e300 else np.float32)
    if k < 0.6 and count is not None:
        return np.exp(ctx.np.uniform(-6, 1, max(0, count + ctx.choice([-1, 1])))).astype(np.float32)
    if k < 0.7:
        return np.ones((2, 2), np.float32) * 0.1
    if k < 0.8:
        return ctx.choice([np.float64(0.1), np.int32(3), np.array(0.5), [0.1], np.ones(1, np.float16)])
    ctx.wrong_type = True
    return ctx.choice([*WRONG_TYPES, np.array(["a"]), np.ones(2, np.complex64)])


def threads_arg(ctx: Ctx) -> Any:
    k = ctx.r.random()
    if k < 0.6:
        return ctx.choice([0, 1, 2, 3, 4])
    if k < 0.8:
        return ctx.choice([5, 8, 63, 64])
    ctx.invalid()
    if k < 0.95:
        return ctx.choice([65, 5000, 2**40, -1, 2**64])
    return ctx.choice([2.5, True])


FLOAT_SPECIALS = np.array(
    [0.0, -0.0, 1e-45, -1e-45, 1e-38, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan, 0.5, 1.5, 2.5], np.float32
)


def f32_values(ctx: Ctx, shape: tuple[int, ...], special: float = 0.05) -> np.ndarray:
    x = np.asarray(ctx.np.standard_normal(shape) * np.exp(ctx.r.uniform(-4, 4))).astype(np.float32)
    if x.size and ctx.p(special):
        ctx.invalid()  # NaN / Inf are errors in some kernels: only checked for agreement there
        idx = ctx.np.integers(0, x.size, max(1, x.size // 8))
        x.reshape(-1)[idx] = ctx.np.choice(FLOAT_SPECIALS, idx.size)
    return x


def q_values(ctx: Ctx, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.asarray(ctx.np.integers(info.min, info.max + 1, shape)).astype(dtype)


WRONG_DTYPES = [
    np.uint8,
    np.int8,
    np.int16,
    np.uint16,
    np.int32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
    np.bool_,
    np.complex64,
]


def mutate_array(ctx: Ctx, arr: np.ndarray, prob: float = 0.08, layout_only: bool = False) -> Any:
    """arr, or a view / copy of it that C must not be fooled by: another dtype, non-contiguous,
    reversed, misaligned, read-only, a list, or not an array at all. Layout changes keep the values
    (the wrappers copy non-contiguous inputs), so ``valid`` is only cleared for value changes."""
    if not ctx.p(prob):
        return guarded(arr) if isinstance(arr, np.ndarray) and arr.size and ctx.p(0.3) else arr
    k = ctx.r.random()
    if k < 0.2 and arr.ndim >= 1 and arr.size:  # the same values, strided
        big = np.repeat(arr, 2, axis=-1)
        return big[..., ::2]
    if k < 0.3 and arr.ndim >= 1 and arr.size:  # the same values, reversed view of a reversed copy
        return np.ascontiguousarray(arr[..., ::-1])[..., ::-1]
    if k < 0.4 and arr.size:  # the same values, misaligned (for itemsize > 1)
        raw = np.zeros(arr.nbytes + 1, np.uint8)
        raw[1:] = np.frombuffer(arr.tobytes(), np.uint8)
        return np.frombuffer(raw.data, dtype=arr.dtype, count=arr.size, offset=1).reshape(arr.shape)
    if k < 0.5:  # read-only
        ro = arr.copy()
        ro.flags.writeable = False
        return ro
    if layout_only:
        return arr
    ctx.invalid()
    if k < 0.75:
        dt = ctx.choice(WRONG_DTYPES)
        with np.errstate(all="ignore"):
            return arr.astype(dt)
    if k < 0.85:
        return arr.reshape(-1) if arr.ndim != 1 else arr.reshape(1, -1)
    if k < 0.92:
        return arr.tolist()
    ctx.wrong_type = True
    return ctx.choice(WRONG_TYPES)


INTERESTING_WORDS = [0, 1, 7, 8, 63, 64, 65, 128, 4096, 2**31, 2**32, 2**40, 2**63, 2**64 - 1, 2**64 - 64]


def aligned_copy(data: np.ndarray, align: int = 64) -> np.ndarray:
    raw = np.zeros(data.size + align, np.uint8)
    off = (-raw.ctypes.data) % align
    out = raw[off : off + data.size]
    out[:] = data
    return out


def corrupt_buffer(ctx: Ctx, buf: np.ndarray, header: int) -> Any:
    """A damaged copy of packed bytes: header bits / words, random bytes, truncation, extension,
    misalignment, garbage, non-contiguity, another dtype."""
    ctx.invalid()
    out = aligned_copy(buf)
    k = ctx.r.random()
    if k < 0.3:
        for _ in range(ctx.r.randint(1, 4)):
            i = ctx.r.randrange(min(header, out.size))
            out[i] ^= 1 << ctx.r.randrange(8)
    elif k < 0.5:
        word = ctx.r.randrange(max(1, min(header, out.size) // 8))
        if out.size >= 8 * word + 8:
            out[8 * word : 8 * word + 8] = np.frombuffer(
                np.uint64(ctx.choice(INTERESTING_WORDS)).tobytes(), np.uint8
            )
    elif k < 0.6:
        n = ctx.r.randint(1, 16)
        idx = ctx.np.integers(0, out.size, n)
        out[idx] = ctx.np.integers(0, 256, n).astype(np.uint8)
    elif k < 0.68:
        out = out[: ctx.r.randrange(out.size)]
    elif k < 0.72:
        out = aligned_copy(np.concatenate([out, np.zeros(ctx.r.randint(1, 300), np.uint8)]))
    elif k < 0.8:
        raw = aligned_copy(np.concatenate([np.zeros(8, np.uint8), out]))
        out = raw[ctx.r.randint(1, 7) :][: buf.size]
    elif k < 0.86:
        out = aligned_copy(ctx.np.integers(0, 256, ctx.r.randint(0, 2 * buf.size + 1)).astype(np.uint8))
    elif k < 0.9:
        out = np.repeat(out, 2)[::2]
    elif k < 0.94:
        out = out[: out.size // 4 * 4].view(ctx.choice([np.int8, np.float32, np.int32]))
    elif k < 0.97:
        out = out.reshape(1, -1) if out.size else out
    else:
        ctx.wrong_type = True
        return ctx.choice([out.tobytes(), None, list(out[:16])])
    if isinstance(out, np.ndarray) and out.ndim == 1 and out.flags.c_contiguous and ctx.p(0.7):
        out = guarded(out, 8)  # a truncated buffer read past its end faults
    return out


def check_equal(name: str, got: np.ndarray, want: np.ndarray) -> None:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        raise Mismatch(f"{name}: got {got.dtype}{got.shape}, reference {want.dtype}{want.shape}")
    same = got.view(np.int32) == want.view(np.int32) if got.dtype == np.float32 else got == want
    if not np.all(same):
        bad = int(np.count_nonzero(~same))
        i = int(np.argmax(~same.reshape(-1)))
        raise Mismatch(
            f"{name}: {bad} of {got.size} values differ (first at {i}: {got.reshape(-1)[i]!r} vs "
            f"{want.reshape(-1)[i]!r})"
        )


# ------------------------------------------------------------------------------------------------
# targets


def t_quant(ctx: Ctx) -> None:
    from onnxq.kernels import dequantize, quantize
    from onnxq.kernels import reference as ref

    shape = tuple(dim(ctx, 6) for _ in range(ctx.r.randint(0, 4)))
    dtype = ctx.choice([np.uint8, np.int8]) if not ctx.p(0.03) else ctx.choice(WRONG_DTYPES)
    if dtype not in (np.uint8, np.int8):
        ctx.invalid()
    axis = None
    channels = 1
    if shape and ctx.p(0.5):
        axis = ctx.r.randrange(-len(shape), len(shape))
        channels = shape[axis]
    if ctx.p(0.03):
        axis = int_arg(ctx, -5, 5, prob=1.0)
    info = np.iinfo(dtype) if dtype in (np.uint8, np.int8) else np.iinfo(np.uint8)
    valid = ctx.valid
    x = f32_values(ctx, shape, special=0.3)
    ctx.valid = valid  # NaN / Inf are fine for quantize (NaN -> qmin): keep checking
    scale = scale_arg(ctx, None if axis is None else channels)
    zp_ok = ctx.np.integers(info.min, info.max + 1, channels if axis is not None else ()).astype(np.int32)
    zp: Any = zp_ok if not ctx.p(0.05) else int_arg(ctx, info.min, info.max, prob=1.0)
    xin = mutate_array(ctx, x)
    y = quantize(xin, scale, zp, axis=axis, dtype=dtype)
    if ctx.valid:
        check_equal("quantize", y, ref.quantize(x, scale, zp, axis=axis, dtype=dtype))
    q = mutate_array(ctx, y if ctx.valid else q_values(ctx, np.uint8, shape))
    d = dequantize(q, scale, zp, axis=axis)
    if ctx.valid:
        check_equal("dequantize", d, ref.dequantize(y, scale, zp, axis=axis))


def make_gemm_packed(ctx: Ctx, k: int, n: int) -> tuple[Any, np.ndarray]:
    from onnxq.kernels import PackedGemmWeights, pack_gemm_weights

    b = q_values(ctx, np.int8, (k, n))
    transposed = ctx.p(0.3)
    packed = pack_gemm_weights(
        mutate_array(ctx, b.T.copy() if transposed else b, 0.05, True), transposed=transposed
    )
    if ctx.p(0.15):
        packed = PackedGemmWeights(packed.k, packed.n, corrupt_buffer(ctx, packed.buffer, 64))
    if ctx.p(0.08):
        packed = dataclasses.replace(
            packed, **{ctx.choice(["k", "n"]): declared(ctx, ctx.choice([packed.k, packed.n]), 1.0)}
        )
    return packed, b


def t_gemm(ctx: Ctx) -> None:
    from onnxq.errors import OnnxqError as OnnxqErrorT
    from onnxq.kernels import gemm_kernel_name, gemm_u8s8
    from onnxq.kernels import reference as ref

    m, k, n = dim(ctx, 70), dim(ctx, 200), dim(ctx, 70)
    if k == 0 or n == 0:
        from onnxq.kernels import pack_gemm_weights

        pack_gemm_weights(np.zeros((k, n), np.int8))
        return
    packed, b = make_gemm_packed(ctx, k, n)
    a = q_values(ctx, np.uint8, (m, k))
    if ctx.p(0.2):  # rows lda > k apart, no copy
        wide = q_values(ctx, np.uint8, (m, k + ctx.r.randint(1, 70)))
        wide[:, :k] = a
        ain: Any = wide[:, :k]
    else:
        ain = mutate_array(ctx, a)
    out = ctx.choice([np.uint8, np.int8, np.float32, np.int32])
    if ctx.p(0.03):
        out = ctx.choice([np.int16, np.float64, "u1", None])
        ctx.invalid()
    lo, hi = (0, 255) if out == np.uint8 else (-128, 127)
    kw: dict[str, Any] = {"a_zero_point": int_arg(ctx, 0, 255), "out_dtype": out}
    if out != np.int32 or ctx.p(0.1):
        kw["scale"] = (
            scale_arg(ctx, ctx.choice([None, n]))
            if out != np.float32
            else float(np.float32(np.exp(ctx.r.uniform(-12, -4))))
        )
        if isinstance(kw["scale"], float) and out not in (np.float32, np.int32):
            kw["scale"] = float(np.float32(kw["scale"] / (k * 40)))
    if out in (np.uint8, np.int8):
        kw["out_zero_point"] = int_arg(ctx, lo, hi)
        if ctx.p(0.3):
            q0 = ctx.r.randint(lo, hi)
            kw["qmin"], kw["qmax"] = q0, ctx.r.randint(q0, hi)
    if ctx.p(0.5):
        kw["bias"] = mutate_array(ctx, ctx.np.integers(-(2**31), 2**31, n).astype(np.int32), 0.05)
    if out == np.float32 and ctx.p(0.5):
        kw["bias_f"] = mutate_array(ctx, f32_values(ctx, (n,)), 0.05)
    if not ctx.valid or ctx.p(0.2):  # the packed object alone (fields vs buffer)
        try:
            packed.column_sums()
            packed.pointer()
        except OnnxqErrorT:
            pass
    c = gemm_u8s8(ain, packed, **kw)
    if ctx.valid:
        want = ref.gemm_u8s8(a, b, **{key: v for key, v in kw.items()})
        check_equal("gemm_u8s8", c, want)
        sums = packed.column_sums()
        check_equal("column_sums", sums, b.astype(np.int64).sum(axis=0).astype(np.int32))
    gemm_kernel_name(declared(ctx, k, 0.1))


def t_conv(ctx: Ctx) -> None:
    from onnxq.kernels import (
        PackedConvWeights,
        PreparedConv,
        conv_u8s8_nhwc,
        nchw_to_nhwc,
        nhwc_to_nchw,
        pack_conv_weights,
    )
    from onnxq.kernels.reference.conv import conv_u8s8_nhwc as reference_conv

    depthwise = ctx.p(0.35)
    groups = ctx.r.randint(1, 24) if depthwise else ctx.choice([1, 1, 1, 2, 3])
    cg = 1 if depthwise else ctx.r.randint(1, 12)
    og = 1 if depthwise and not ctx.p(0.2) else ctx.r.randint(1, 12)
    c, o = cg * groups, og * groups
    kh, kw = ctx.r.randint(1, 5), ctx.r.randint(1, 5)
    w = q_values(ctx, np.int8, (o, cg, kh, kw))
    bias = ctx.np.integers(-50000, 50000, o).astype(np.int32) if ctx.p(0.7) else None
    scale = (ctx.np.uniform(1e-5, 1e-3, o) if ctx.p(0.7) else np.full(1, 4e-4)).astype(np.float32)
    g_arg = groups if not ctx.p(0.03) else declared(ctx, groups, 1.0)
    packed = pack_conv_weights(
        mutate_array(ctx, w, 0.04),
        None if bias is None else mutate_array(ctx, bias, 0.04),
        scale if not ctx.p(0.03) else scale_arg(ctx, o, 1.0),
        groups=g_arg,
    )
    if ctx.p(0.15):
        packed = dataclasses.replace(packed, buffer=corrupt_buffer(ctx, packed.buffer, 128))
    if ctx.p(0.06):
        field = ctx.choice(["out_channels", "in_channels", "groups"])
        packed = dataclasses.replace(packed, **{field: declared(ctx, getattr(packed, field), 1.0)})
    if ctx.p(0.03):
        ctx.invalid()
        packed = dataclasses.replace(
            packed, kernel_shape=ctx.choice([(kh,), (kw, kh), (2**40, kw), (kh, "3")])
        )
    strides = (ctx.r.randint(1, 3), ctx.r.randint(1, 3))
    dil = (ctx.r.randint(1, 2), ctx.r.randint(1, 2))
    pads = tuple(ctx.r.randint(0, 2) for _ in range(4))
    h = max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]) + ctx.r.randint(0, 8)
    wd = max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3]) + ctx.r.randint(0, 8)
    n = ctx.r.randint(1, 2)
    x = q_values(ctx, np.uint8, (n, h, wd, c))
    if ctx.p(0.05):  # the layout helpers on any array
        saved = ctx.valid
        ctx.valid = True
        back = nhwc_to_nchw(nchw_to_nhwc(mutate_array(ctx, x.transpose(0, 3, 1, 2), 0.5)))
        if ctx.valid:
            check_equal("nchw_to_nhwc round trip", back, x.transpose(0, 3, 1, 2))
        ctx.valid = saved
    x_zp, y_zp = int_arg(ctx, 0, 255), int_arg(ctx, 0, 255)
    qmin = ctx.r.randint(0, 255) if ctx.p(0.3) else 0
    qmax = ctx.r.randint(qmin, 255) if ctx.p(0.3) else 255
    if ctx.p(0.03):
        qmin, qmax = qmax + 1, qmin
        ctx.invalid()
    if ctx.p(0.06):
        strides = tuple(declared(ctx, v, 0.5) for v in strides)
    if ctx.p(0.06):
        pads = tuple(declared(ctx, v, 0.4) for v in pads)
    if ctx.p(0.04):
        dil = tuple(declared(ctx, v, 0.5) for v in dil)
    threads = threads_arg(ctx)
    geometry = {"strides": strides, "dilations": dil, "pads": pads}
    geometry_mutated = not ctx.valid
    if ctx.p(0.3) or geometry_mutated:  # prepared first: a huge valid output is not run
        shape: Any = x.shape
        if ctx.p(0.1):
            shape = tuple(declared(ctx, d, 0.4) for d in x.shape)
        conv = PreparedConv(packed, shape, x_zp, y_zp, qmin=qmin, qmax=qmax, threads=threads, **geometry)
        out = None
        if ctx.p(0.3) and int(np.prod(conv.output_shape, dtype=np.float64)) < 1 << 24:
            out = mutate_array(ctx, np.zeros(conv.output_shape, np.uint8), 0.3)
            if isinstance(out, np.ndarray) and not (out.flags.c_contiguous and out.flags.writeable):
                ctx.invalid()
        _ = conv.algorithm, conv.kernel_name
        if np.prod(conv.output_shape, dtype=np.float64) > MAX_WORK:
            return  # valid but absurd (pads of 2**31): sizes were checked, running it takes minutes
        y = conv(mutate_array(ctx, x), out)
        y2 = conv(x)
    else:
        y = conv_u8s8_nhwc(
            mutate_array(ctx, x), x_zp, packed, y_zp, qmin=qmin, qmax=qmax, threads=threads, **geometry
        )
        y2 = y
    if ctx.valid and isinstance(packed, PackedConvWeights):
        want = reference_conv(x, x_zp, w, bias, scale, y_zp, groups=groups, qmin=qmin, qmax=qmax, **geometry)
        check_equal("conv", y, want)
        check_equal("conv (again)", y2, want)


def t_qadd(ctx: Ctx) -> None:
    from onnxq.kernels import qadd
    from onnxq.kernels.reference import eltwise as ref
    from onnxq.kernels.reference.eltwise import AddLayout, Bcast, add_layout

    dtype = ctx.choice([np.uint8, np.int8])
    info = np.iinfo(dtype)
    shape = tuple(dim(ctx, 7) for _ in range(ctx.r.randint(1, 4)))
    bshape = tuple(d if ctx.p(0.6) else 1 for d in shape)[ctx.r.randint(0, len(shape)) :]
    if ctx.p(0.05):
        bshape = (*bshape[:-1], 11) if bshape else (11,)
        ctx.invalid()
    a, b = q_values(ctx, dtype, shape), q_values(ctx, dtype, bshape)
    if ctx.p(0.5):
        a, b = b, a
    args = [
        scale_arg(ctx),
        int_arg(ctx, info.min, info.max),
        scale_arg(ctx),
        int_arg(ctx, info.min, info.max),
        scale_arg(ctx),
        int_arg(ctx, info.min, info.max),
    ]
    relu = ctx.p(0.3)
    y = qadd(
        mutate_array(ctx, a),
        args[0],
        args[1],
        mutate_array(ctx, b),
        args[2],
        args[3],
        args[4],
        args[5],
        relu=relu,
    )
    if ctx.valid:
        out_shape = np.broadcast_shapes(a.shape, b.shape)
        layout = add_layout(a.shape, b.shape)
        ra, rb = a, b
        if layout is None:
            ra = np.ascontiguousarray(np.broadcast_to(a, out_shape))
            rb = np.ascontiguousarray(np.broadcast_to(b, out_shape))
            layout = AddLayout(1, ra.size, Bcast.FULL, Bcast.FULL)
        want = ref.qadd(ra, args[0], args[1], rb, args[2], args[3], args[4], args[5], layout, relu=relu)
        check_equal("qadd", y.reshape(-1), want.reshape(-1))


def t_pool(ctx: Ctx) -> None:
    from onnxq.kernels import avgpool, global_avgpool, maxpool
    from onnxq.kernels.reference import pool as ref

    dtype = ctx.choice([np.uint8, np.int8])
    info = np.iinfo(dtype)
    x = q_values(ctx, dtype, (dim(ctx, 2), dim(ctx, 9), dim(ctx, 9), dim(ctx, 40)))
    kernel = (ctx.r.randint(1, 4), ctx.r.randint(1, 4))
    strides = (ctx.r.randint(1, 3), ctx.r.randint(1, 3))
    pads = tuple(ctx.r.randint(0, 2) for _ in range(4))
    dil = (ctx.r.randint(1, 2), ctx.r.randint(1, 2))
    if ctx.p(0.05):
        pads = tuple(declared(ctx, v, 0.5) for v in pads)
    if ctx.p(0.05):
        kernel = tuple(declared(ctx, v, 0.5) for v in kernel)
    if ctx.p(0.04):
        strides = tuple(declared(ctx, v, 0.5) for v in strides)
    ceil_mode = ctx.p(0.3)
    which = ctx.r.randrange(3)
    try:  # valid but absurd geometry (pads of 2**31): too long to run, skip it
        oh = ref.pool_output_size(x.shape[1], kernel[0], strides[0], dil[0], pads[0], pads[2], ceil_mode)
        ow = ref.pool_output_size(x.shape[2], kernel[1], strides[1], dil[1], pads[1], pads[3], ceil_mode)
        if which != 2 and float(oh) * float(ow) * x.shape[0] * x.shape[3] > MAX_WORK:
            return
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        pass
    xin = mutate_array(ctx, x)
    if which == 0:
        y = maxpool(xin, kernel, strides=strides, pads=pads, dilations=dil, ceil_mode=ceil_mode)
        if ctx.valid:
            check_equal("maxpool", y, ref.maxpool_nhwc(x, kernel, strides, pads, dil, ceil_mode))
        return
    q = [scale_arg(ctx), int_arg(ctx, info.min, info.max), scale_arg(ctx), int_arg(ctx, info.min, info.max)]
    if which == 1:
        cip = ctx.p(0.5)
        y = avgpool(
            xin,
            *q,
            kernel,
            strides=strides,
            pads=pads,
            dilations=dil,
            count_include_pad=cip,
            ceil_mode=ceil_mode,
        )
        if ctx.valid:
            check_equal("avgpool", y, ref.avgpool_nhwc(x, *q, kernel, strides, pads, dil, cip, ceil_mode))
    else:
        y = global_avgpool(xin, *q)
        if ctx.valid:
            check_equal("global_avgpool", y, ref.global_avgpool_nhwc(x, *q))


def t_concat(ctx: Ctx) -> None:
    from onnxq.kernels import qconcat
    from onnxq.kernels.reference import concat as ref

    dtype = ctx.choice([np.uint8, np.int8])
    info = np.iinfo(dtype)
    rank = ctx.r.randint(1, 4)
    base = [dim(ctx, 6) for _ in range(rank)]
    axis = ctx.r.randrange(-rank, rank)
    inputs = []
    for _ in range(ctx.r.randint(1 if not ctx.p(0.03) else 0, 4)):
        shape = list(base)
        shape[axis] = dim(ctx, 6)
        if ctx.p(0.03):
            shape[(axis + 1) % rank] += 1
            ctx.invalid()
        inputs.append(q_values(ctx, dtype, tuple(shape)))
    y_scale, y_zp = scale_arg(ctx), int_arg(ctx, info.min, info.max)
    scales = [y_scale if ctx.p(0.3) else scale_arg(ctx) for _ in inputs]
    zps = [y_zp if ctx.p(0.3) else int_arg(ctx, info.min, info.max) for _ in inputs]
    if ctx.p(0.03):
        scales = scales[:-1]
        ctx.invalid()
    ax = axis if not ctx.p(0.03) else int_arg(ctx, -5, 5, 1.0)
    y = qconcat([mutate_array(ctx, x, 0.04) for x in inputs], scales, zps, y_scale, y_zp, ax)
    if ctx.valid:
        check_equal("qconcat", y, ref.qconcat(inputs, scales, zps, y_scale, y_zp, axis))


def t_hist(ctx: Ctx) -> None:
    from onnxq.kernels.hist import grid_counts_f32
    from onnxq.kernels.reference.hist import grid_counts

    x = f32_values(ctx, (dim(ctx, 40), dim(ctx, 40)), special=0.0)
    cells = int_arg(ctx, 1, 5000)
    k0 = int_arg(ctx, -(2**40), 2**40)
    e = int_arg(ctx, -60, 30)
    got = grid_counts_f32(mutate_array(ctx, x, 0.04), k0, e, cells)
    if ctx.valid:
        check_equal("grid_counts_f32", got, grid_counts(x, k0, e, cells))


def t_kl(ctx: Ctx) -> None:
    from onnxq.kernels.hist import kl_divergences
    from onnxq.kernels.reference import hist as ref

    bins = ctx.r.randint(1, 700)
    counts = np.floor(np.abs(f32_values(ctx, (bins,), special=0.0)).astype(np.float64) * 100)
    if ctx.p(0.3):
        counts *= 0.37  # fractional, as a resampled histogram
    q_bins = int_arg(ctx, 2, max(bins, 2))
    got = kl_divergences(mutate_array(ctx, counts, 0.04), q_bins)
    if ctx.valid:
        check_equal("kl_divergences", got, ref.kl_divergences(counts, q_bins))


def t_dynamic(ctx: Ctx) -> None:
    from onnxq.errors import KernelError
    from onnxq.kernels import PackedDynamicWeights, dynamic_matmul, dynamic_quantize, pack_dynamic_weights
    from onnxq.kernels.reference import dynamic as ref

    m, k, n = dim(ctx, 9), dim(ctx, 150), dim(ctx, 60)
    valid = ctx.valid
    a = f32_values(ctx, (m, k), special=0.25)
    ctx.valid = valid  # NaN / Inf: native and reference must both refuse (checked below)
    per_row = ctx.p(0.5)
    if ctx.p(0.5):
        ain = mutate_array(ctx, a)
        try:
            want = ref.dynamic_quantize(a, per_row=per_row) if a.size else None
        except KernelError:
            want = None
        try:
            got = dynamic_quantize(ain, per_row=per_row)
        except KernelError:
            if ctx.valid and want is not None:
                raise Mismatch("dynamic_quantize refused what the reference accepts") from None
            raise
        if ctx.valid:
            if want is None:
                raise Mismatch("dynamic_quantize accepted what the reference refuses")
            for name, g, wv in zip(("q", "scale", "zero_point"), got, want, strict=True):
                check_equal(f"dynamic_quantize {name}", g, wv)
        return
    w = q_values(ctx, np.int8, (n, k))
    ws = np.exp(ctx.np.uniform(-7, -2, n)).astype(np.float32)
    packed = pack_dynamic_weights(
        mutate_array(ctx, w, 0.04), ws if not ctx.p(0.04) else scale_arg(ctx, n, 1.0)
    )
    if ctx.p(0.12):
        k2 = ctx.r.random()
        if k2 < 0.4:
            packed = PackedDynamicWeights(
                dataclasses.replace(packed.packed, buffer=corrupt_buffer(ctx, packed.packed.buffer, 64)),
                packed.w_scale,
            )
        elif k2 < 0.7:  # fields are read in place: any other layout is refused, not copied
            ctx.invalid()
            packed = dataclasses.replace(packed, w_scale=mutate_array(ctx, packed.w_scale, 1.0))
        else:
            ctx.invalid()
            packed = dataclasses.replace(
                packed, packed=dataclasses.replace(packed.packed, n=declared(ctx, n, 1.0))
            )
    bias = f32_values(ctx, (n,), special=0.0) if ctx.p(0.5) else None
    try:
        want = ref.dynamic_matmul(a, w, ws, bias, per_row=per_row) if a.size else None
    except KernelError:
        want = None
    try:
        got = dynamic_matmul(
            mutate_array(ctx, a),
            packed,
            bias=None if bias is None else mutate_array(ctx, bias),
            per_row=per_row,
        )
    except KernelError:
        if ctx.valid and want is not None:
            raise Mismatch("dynamic_matmul refused what the reference accepts") from None
        raise
    if ctx.valid:
        if want is None:
            raise Mismatch("dynamic_matmul accepted what the reference refuses")
        check_equal("dynamic_matmul", got, want)


def t_blockwise(ctx: Ctx) -> None:
    from onnxq.errors import KernelError
    from onnxq.kernels.blockwise import PackedBlockwiseWeights, blockwise_matmul, pack_blockwise_weights
    from onnxq.kernels.reference import blockwise as ref
    from onnxq.weights.weight_only import pack_nbits

    m, k, n = dim(ctx, 5), dim(ctx, 200), dim(ctx, 40)
    real = ctx.choice([32, 64, 128])
    block = real if not ctx.p(0.04) else int_arg(ctx, 32, 64, 1.0)
    nb = -(-k // real)
    codes = ctx.np.integers(0, 16, (n, k)).astype(np.uint8)
    zp = ctx.np.integers(0, 16, (n, nb)) if ctx.p(0.5) else np.full((n, nb), 8)
    ws = np.exp(ctx.np.uniform(-7, -2, (n, nb))).astype(np.float32)
    b, zpk = pack_nbits(codes, zp, real)
    packed = pack_blockwise_weights(
        mutate_array(ctx, b, 0.04), mutate_array(ctx, ws.reshape(-1), 0.04), zpk,
        k=declared(ctx, k), n=declared(ctx, n), block=block,
    )  # fmt: skip
    if ctx.p(0.12):
        if ctx.p(0.6):
            packed = dataclasses.replace(packed, buffer=corrupt_buffer(ctx, packed.buffer, 128))
        else:
            ctx.invalid()
            packed = PackedBlockwiseWeights(declared(ctx, k, 1.0), n, block, packed.buffer)
    valid = ctx.valid
    a = f32_values(ctx, (m, k), special=0.2)
    ctx.valid = valid  # NaN / Inf: native and reference must both refuse (checked below)
    bias = f32_values(ctx, (n,), special=0.0) if ctx.p(0.5) else None
    try:
        zero_points = None if zpk is None else zp
        want = ref.blockwise_matmul(a, codes, ws, zero_points, real, bias) if a.size else None
    except KernelError:
        want = None
    try:
        bias_in = None if bias is None else mutate_array(ctx, bias)
        got = blockwise_matmul(mutate_array(ctx, a), packed, bias=bias_in, threads=threads_arg(ctx))
    except KernelError:
        if ctx.valid and want is not None:
            raise Mismatch("blockwise_matmul refused what the reference accepts") from None
        raise
    if ctx.valid:
        if want is None:
            raise Mismatch("blockwise_matmul accepted what the reference refuses")
        check_equal("blockwise_matmul", got, want)


def t_rnn(ctx: Ctx) -> None:
    from onnxq.kernels import gru, lstm, pack_gru_weights, pack_lstm_weights
    from onnxq.kernels.reference import rnn as ref

    cell = ctx.choice(["lstm", "gru0", "gru1"])
    gates = 4 if cell == "lstm" else 3
    hidden, inp, batch, seq = dim(ctx, 12), dim(ctx, 12), dim(ctx, 3), dim(ctx, 3)
    rng = ctx.np
    w = rng.integers(-127, 128, (gates * hidden, inp)).astype(np.int8)
    r = rng.integers(-127, 128, (gates * hidden, hidden)).astype(np.int8)
    ws = np.exp(rng.uniform(-6, -3, gates * hidden)).astype(np.float32)
    rs = np.exp(rng.uniform(-6, -3, gates * hidden)).astype(np.float32)
    wb = (rng.standard_normal(gates * hidden) * 0.1).astype(np.float32) if ctx.p(0.7) else None
    rb = (rng.standard_normal(gates * hidden) * 0.1).astype(np.float32) if ctx.p(0.7) else None
    xs = f32_values(ctx, (seq, batch, inp), special=0.02)
    h0 = (rng.standard_normal((batch, hidden)) * 0.5).astype(np.float32) if ctx.p(0.6) else None
    c0 = (rng.standard_normal((batch, hidden)) * 0.5).astype(np.float32) if ctx.p(0.6) else None
    per_row = ctx.p(0.5)
    if cell == "lstm":
        weights: Any = pack_lstm_weights(
            w, ws, r, rs, None if wb is None else mutate_array(ctx, wb, 0.04), rb
        )
    else:
        weights = pack_gru_weights(w, ws, r, rs, wb, rb, linear_before_reset=cell == "gru1")
    if ctx.p(0.15):  # a hand-made object whose fields disagree
        ctx.invalid()
        fields = [f.name for f in dataclasses.fields(weights)]
        field = ctx.choice(fields)
        value = getattr(weights, field)
        if field == "hidden":
            new: Any = declared(ctx, hidden, 1.0)
        elif isinstance(value, np.ndarray) or value is None:
            base = np.ones(gates * hidden, np.float32) if value is None else value
            new = ctx.choice(
                [
                    guarded(base[:-1]),
                    base.astype(np.float64),
                    np.repeat(base, 2)[::2],
                    None,
                    guarded(base[: max(0, len(base) - 3)]),
                    guarded(base[:1]),
                ]
            )
        elif isinstance(value, bool):
            new = ctx.choice([2, -1, "yes"])
            ctx.wrong_type = True
        else:
            other = [
                getattr(weights, f)
                for f in fields
                if f != field and not isinstance(getattr(weights, f), (int, bool, np.ndarray, type(None)))
            ]
            new = ctx.choice([*other, None])
        weights = dataclasses.replace(weights, **{field: new})
    xin = mutate_array(ctx, xs)
    h0in = None if h0 is None else mutate_array(ctx, h0)
    if cell == "lstm":
        c0in = None if c0 is None else mutate_array(ctx, c0)
        y, _h, _c = lstm(xin, weights, h0in, c0in, per_row=per_row, reverse=ctx.p(0.2))
    else:
        y, _h = gru(xin, weights, h0in, per_row=per_row)
    if ctx.valid:
        zeros = np.zeros((batch, hidden), np.float32)
        if cell == "lstm":
            return  # reverse may be on: the LSTM agreement is covered by tests/kernels/test_rnn.py
        want_y, _ = ref.gru_sequence(
            xs, zeros if h0 is None else h0, w, ws, r, rs, wb, rb, cell == "gru1", per_row=per_row
        )
        check_equal("gru", y, want_y)


def t_isa(ctx: Ctx) -> None:
    from onnxq.kernels import ISAS, kernel_table, selected_kernel, set_isa, use_isa

    name = ctx.choice([*ISAS, None, "auto", "", "sse9", "AVX2", 3, b"avx2"])
    if not isinstance(name, (str, type(None))):
        ctx.wrong_type = True
    with use_isa(None):
        try:
            set_isa(name)
            kernel_table()
            selected_kernel(ctx.choice(["gemm_u8s8", "nope", "dwconv_u8s8_rq", "quantize_f32_u8"]))
        finally:
            set_isa(None)


TARGETS: dict[str, Callable[[Ctx], None]] = {
    "quant": t_quant,
    "gemm": t_gemm,
    "conv": t_conv,
    "qadd": t_qadd,
    "pool": t_pool,
    "concat": t_concat,
    "hist": t_hist,
    "kl": t_kl,
    "dynamic": t_dynamic,
    "blockwise": t_blockwise,
    "rnn": t_rnn,
    "isa": t_isa,
}
WEIGHTS = {
    "quant": 2,
    "gemm": 3,
    "conv": 4,
    "qadd": 2,
    "pool": 2,
    "concat": 1,
    "hist": 1,
    "kl": 0.5,
    "dynamic": 3,
    "blockwise": 2,
    "rnn": 2,
    "isa": 0.3,
}


def plan(seed: int) -> tuple[str, str]:
    """(target, ISA) of a case."""
    from onnxq.kernels import available_isas

    r = random.Random(seed ^ 0x5EED)
    names = list(TARGETS)
    target = r.choices(names, weights=[WEIGHTS[n] for n in names])[0]
    return target, r.choice(available_isas())


def run_case(seed: int) -> str | None:
    """Runs one case; None, or a description of the finding."""
    from onnxq.errors import OnnxqError
    from onnxq.kernels import use_isa

    target, isa = plan(seed)
    ctx = Ctx(seed)
    try:
        with use_isa(isa), np.errstate(all="ignore"):
            TARGETS[target](ctx)
    except OnnxqError as exc:
        if "\n" in str(exc):
            return f"KernelError message is not one line: {str(exc)[:200]!r}"
        return None
    except Mismatch as exc:
        return f"mismatch: {exc}"
    except (TypeError, ValueError) as exc:
        if ctx.wrong_type:
            return None
        return f"{type(exc).__name__}: {str(exc)[:300]} @ {_where(exc)}"
    except Exception as exc:  # every other exception is a finding
        return f"{type(exc).__name__}: {str(exc)[:300]} @ {_where(exc)}"
    return None


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    return f"{os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else "?"


# ------------------------------------------------------------------------------------------------
# processes


def child(start: int, count: int) -> None:
    """Runs cases start .. start + count - 1, announcing each before it runs (so a crash can be
    attributed) and its outcome after."""
    import faulthandler
    import warnings

    faulthandler.enable()
    warnings.simplefilter("ignore")
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass
    out = sys.stdout.fileno()
    for seed in range(start, start + count):
        target, isa = plan(seed)
        os.write(out, f"S {seed} {target} {isa}\n".encode())
        finding = run_case(seed)
        line = f"O {seed}\n" if finding is None else f"F {seed} {target} {isa} {finding}\n"
        os.write(out, line.encode("utf-8", "replace"))


class Worker:
    def __init__(self, start: int, count: int) -> None:
        self.start, self.count = start, count
        # a file, not a pipe: a chatty child must never block on it (closed in finish())
        self.err = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", str(start), str(count)],
            stdout=subprocess.PIPE,
            stderr=self.err,
            bufsize=0,
        )
        self.buf = b""
        self.current: tuple[int, str, str] | None = None
        self.done = 0
        self.last_output = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the run (default: random)")
    ap.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)), help="child processes")
    ap.add_argument("--batch", type=int, default=300, help="cases per child process")
    ap.add_argument("--replay", type=int, default=None, help="run one case in this process and show it")
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    if args.replay is not None:
        target, isa = plan(args.replay)
        print(f"case {args.replay}: target {target}, isa {isa}")
        from onnxq.errors import OnnxqError
        from onnxq.kernels import use_isa

        ctx = Ctx(args.replay)
        try:
            with use_isa(isa):
                TARGETS[target](ctx)
            print("ok")
        except OnnxqError as exc:
            print(f"{type(exc).__name__}: {exc}")
        finally:
            verdict = run_case(args.replay) or "no finding"
            print(f"valid={ctx.valid} wrong_type={ctx.wrong_type}; verdict: {verdict}")
        return 0

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    base = seed * SEED_SPAN
    next_seed = base
    deadline = time.monotonic() + args.seconds
    findings: list[str] = []
    tried = 0
    workers: list[Worker] = []
    print(
        f"fuzz_kernels: seed {seed} (case seeds from {base}), {args.seconds:g} s, {args.jobs} jobs",
        flush=True,
    )

    def report(line: str) -> None:
        findings.append(line)
        print(line, flush=True)

    def finish(wk: Worker, reason: str | None) -> None:
        nonlocal tried, next_seed
        if wk.current is not None:  # the case running when the child died or hung
            seed_, target, isa = wk.current
            tried += 1
            wk.err.seek(0)
            err = wk.err.read().decode("utf-8", "replace")
            where = next((ln.strip() for ln in err.splitlines() if 'File "' in ln), "")
            report(
                f"FINDING seed={seed_} target={target} isa={isa}: {reason} {where} "
                f"(replay: python scripts/fuzz_kernels.py --replay {seed_})"
            )
            if wk.start + wk.count > seed_ + 1 and time.monotonic() < deadline:
                # the rest of its batch goes to a new child
                workers.append(Worker(seed_ + 1, wk.start + wk.count - seed_ - 1))
        wk.err.close()
        workers.remove(wk)

    try:
        while True:
            now = time.monotonic()
            while now < deadline and len(workers) < args.jobs:
                workers.append(Worker(next_seed, args.batch))
                next_seed += args.batch
            if not workers:
                break
            ready, _, _ = select.select([w.proc.stdout for w in workers], [], [], 1.0)
            for wk in list(workers):
                if wk.proc.stdout in ready:
                    data = os.read(wk.proc.stdout.fileno(), 1 << 16)
                    if data:
                        wk.last_output = time.monotonic()
                        wk.buf += data
                        *lines, wk.buf = wk.buf.split(b"\n")
                        for raw in lines:
                            line = raw.decode("utf-8", "replace")
                            tag, _, rest = line.partition(" ")
                            if tag == "S":
                                s, target, isa = rest.split(" ")
                                wk.current = (int(s), target, isa)
                            elif tag in ("O", "F"):
                                tried += 1
                                wk.current = None
                                if tag == "F":
                                    s, target, isa, what = rest.split(" ", 3)
                                    report(
                                        f"FINDING seed={s} target={target} isa={isa}: {what} "
                                        f"(replay: python scripts/fuzz_kernels.py --replay {s})"
                                    )
                        if time.monotonic() > deadline and wk.current is None:
                            wk.proc.kill()  # time is up: stop between two cases
                            wk.proc.wait()
                            workers.remove(wk)
                        continue
                    rc = wk.proc.wait()
                    if rc < 0:
                        finish(wk, f"crash: killed by signal {signal.Signals(-rc).name}")
                    elif rc != 0 or wk.current is not None:
                        finish(wk, f"crash: child exited with status {rc}")
                    else:
                        finish(wk, None)
                elif time.monotonic() - wk.last_output > CASE_TIMEOUT:
                    wk.proc.kill()
                    wk.proc.wait()
                    finish(wk, f"hang: no progress for {CASE_TIMEOUT:g} s")
    finally:
        for wk in workers:
            wk.proc.kill()
    print(f"fuzz_kernels: {tried} cases tried, {len(findings)} findings", flush=True)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
