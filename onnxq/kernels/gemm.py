"""u8 x s8 GEMM with the native kernels: pack the weights once, run many times."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import (
    SIZE_MAX,
    aligned_empty,
    byte_ptr,
    check,
    ffi,
    in_ptr,
    lib,
    new_array,
    out_ptr,
    require_array,
    require_buffer,
    require_int,
    require_scales,
    show,
)

__all__ = ["PackedGemmWeights", "gemm_kernel_name", "gemm_u8s8", "pack_gemm_weights"]

_OUT_TYPES = {
    np.dtype(np.uint8): ("ONNXQ_U8", 0, 255),
    np.dtype(np.int8): ("ONNXQ_S8", -128, 127),
    np.dtype(np.float32): ("ONNXQ_F32", 0, 0),
    np.dtype(np.int32): ("ONNXQ_I32", 0, 0),
}


@dataclass(frozen=True, eq=False)
class PackedGemmWeights:
    """s8 weights ``B[k, n]`` packed for every ISA's micro-kernels (plus column sums).

    ``buffer`` carries its own header (magic, version, k, n and the offsets of the column sums and
    the weights); every use checks it in C against the buffer's length and against ``k`` / ``n``
    (:meth:`validated`), so an object whose fields disagree with its buffer is a KernelError,
    never an out-of-bounds read."""

    k: int
    n: int
    buffer: np.ndarray  # uint8, 64-byte aligned view of the packed bytes

    def validated(self, name: str = "packed") -> tuple[int, int, np.ndarray]:
        """``(k, n, buffer)`` after checking that ``buffer`` is a C-contiguous, 8-byte aligned uint8
        array whose header (checked in C against its length) holds exactly ``k`` x ``n`` weights;
        KernelError naming ``name`` otherwise."""
        buf = require_buffer(self.buffer, f"{name}.buffer", np.uint8, ndim=1, align=8)
        k = require_int(self.k, f"{name}.k", 1, SIZE_MAX)
        n = require_int(self.n, f"{name}.n", 1, SIZE_MAX)
        got_k, got_n = ffi.new("size_t*"), ffi.new("size_t*")
        check(lib.onnxq_gemm_u8s8_packed_shape(byte_ptr(buf), buf.size, got_k, got_n), name)
        if (int(got_k[0]), int(got_n[0])) != (k, n):
            raise KernelError(
                f"{name}: the buffer holds k={got_k[0]} x n={got_n[0]} packed weights, "
                f"the object says k={k} x n={n}"
            )
        return k, n, buf

    def column_sums(self) -> np.ndarray:
        """int32 ``sum_k B[k, j]`` per column (wrapping), read from the packed buffer."""
        k, n, buf = self.validated()
        out = np.empty(n, dtype=np.int32)
        check(lib.onnxq_gemm_u8s8_packed_colsum(byte_ptr(buf), buf.size, k, n, out_ptr(out), n), "packed")
        return out

    @property
    def small_weights(self) -> bool:
        """Whether packing found every weight in [-64, 64] (7-bit weights, ``reduce_range``): then
        a pair of u8 x s8 products fits int16, and the AVX2 kernel runs every row on
        ``vpmaddubsw``, exactly, instead of widening to int16."""
        _, _, buf = self.validated()
        small = ffi.new("int*")
        check(lib.onnxq_gemm_u8s8_packed_small_weights(byte_ptr(buf), buf.size, small), "packed")
        return bool(small[0])

    def pointer(self) -> object:
        """cffi ``void*`` to the packed bytes (for other wrappers calling the C API), after
        :meth:`validated`."""
        return ffi.cast("void*", byte_ptr(self.validated()[2]))



def pack_gemm_weights(b: np.ndarray, *, transposed: bool = False) -> PackedGemmWeights:
    """Pack int8 weights ``b[k, n]`` (or ``b[n, k]`` with ``transposed=True``, e.g. conv weights
    reshaped to [out_channels, -1]); weight zero point 0 (symmetric). A non-contiguous ``b`` is
    copied first."""
    arr = np.asarray(b)
    if arr.dtype != np.int8 or arr.ndim != 2:
        raise KernelError(f"b: expected a 2-D int8 array, got {arr.dtype} of shape {arr.shape}")
    arr = require_array(arr, "b", np.int8, ndim=2)
    k, n = (arr.shape[1], arr.shape[0]) if transposed else arr.shape
    if k == 0 or n == 0:
        raise KernelError(f"b: zero-size weights of shape {arr.shape}")
    size = lib.onnxq_gemm_u8s8_packed_size(k, n)
    if size == 0:
        raise KernelError(f"b: weights of shape {arr.shape} are too large to pack")
    stride_k, stride_n = (1, k) if transposed else (n, 1)
    buf = aligned_empty(size)
    check(
        lib.onnxq_gemm_u8s8_pack(
            in_ptr(arr),
            arr.size,
            k,
            n,
            stride_k,
            stride_n,
            0,
            ffi.from_buffer(buf, require_writable=True),
            size,
        ),
        "b",
    )
    return PackedGemmWeights(k=k, n=n, buffer=buf)


def gemm_kernel_name(k: int) -> str:
    """Name of the micro-kernel :func:`gemm_u8s8` runs under the active ISA for weights with ``k``
    rows: the ISA's best, except that under amx a ``k <= 32`` runs the avx512vnni kernel (AMX
    tiles pad K to 64)."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= SIZE_MAX:
        raise KernelError(f"k: expected a positive integer, got {show(k)}")
    name = lib.onnxq_gemm_u8s8_kernel_name(int(k))
    if name == ffi.NULL:
        raise KernelError("gemm: no kernel is usable under the active ISA (see ONNXQ_ISA)")
    return str(ffi.string(name).decode())


def gemm_u8s8(
    a: np.ndarray,
    packed: PackedGemmWeights,
    *,
    a_zero_point: int = 0,
    bias: np.ndarray | None = None,
    out_dtype: np.dtype | type = np.uint8,
    scale: np.ndarray | float | None = None,
    out_zero_point: int = 0,
    qmin: int | None = None,
    qmax: int | None = None,
    bias_f: np.ndarray | None = None,
) -> np.ndarray:
    """``C[m, n]`` from u8 ``a[m, k]`` and packed weights; see :mod:`onnxq.kernels.reference.gemm`
    for the exact arithmetic of each ``out_dtype`` (uint8, int8, float32, int32)."""
    if not isinstance(packed, PackedGemmWeights):
        raise KernelError(f"packed: expected PackedGemmWeights, got {type(packed).__name__}")
    k, n, buf = packed.validated()
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim != 2:
        raise KernelError(f"a: expected a 2-D uint8 array, got {a.dtype} of shape {a.shape}")
    if a.shape[1] != k:
        raise KernelError(f"a: has {a.shape[1]} columns, the packed weights have k={k}")
    if a.shape[0] == 0:
        raise KernelError("a: zero rows")
    if a.strides[1] != 1 or a.strides[0] < k:
        a = np.ascontiguousarray(a)  # rows of k contiguous bytes, lda >= k apart: no copy
    try:
        out = np.dtype(out_dtype)
    except TypeError:
        shown = show(out_dtype)
        raise KernelError(f"out_dtype: expected uint8, int8, float32 or int32, got {shown}") from None
    if out not in _OUT_TYPES:
        raise KernelError(f"out_dtype: expected uint8, int8, float32 or int32, got {out}")
    kind, tmin, tmax = _OUT_TYPES[out]
    m = a.shape[0]
    p = ffi.new("onnxq_gemm_u8s8_params*")
    p.k, p.n, p.m, p.lda = k, n, m, a.strides[0]
    p.a = ffi.cast("uint8_t*", a.ctypes.data)
    p.a_len = (m - 1) * a.strides[0] + k  # the bytes the view spans
    p.a_zp = require_int(a_zero_point, "a_zero_point")
    keep: list[object] = [a]
    if bias is not None:
        bias_arr = require_array(bias, "bias", np.int32, ndim=1)
        if bias_arr.size != n:
            raise KernelError(f"bias: expected {n} values, got {bias_arr.size}")
        keep.append(bias_arr)
        p.bias, p.bias_len = in_ptr(bias_arr), bias_arr.size
    p.out_type = getattr(lib, kind)
    if out != np.int32:
        if scale is None:
            raise KernelError(f"scale: required for out_dtype {out}")
        scale_arr = require_scales(scale, "scale")
        keep.append(scale_arr)
        p.scale, p.scale_len = in_ptr(scale_arr), scale_arr.size
    p.out_zp = require_int(out_zero_point, "out_zero_point")
    p.qmin = tmin if qmin is None else require_int(qmin, "qmin")
    p.qmax = tmax if qmax is None else require_int(qmax, "qmax")
    if bias_f is not None:
        if out != np.float32:
            raise KernelError(f"bias_f: only for out_dtype float32, not {out}")
        bf = require_array(bias_f, "bias_f", np.float32, ndim=1)
        if bf.size != n:
            raise KernelError(f"bias_f: expected {n} values, got {bf.size}")
        keep.append(bf)
        p.bias_f, p.bias_f_len = in_ptr(bf), bf.size
    c = new_array((m, n), out, "c")
    p.c, p.c_len, p.ldc = ffi.cast("void*", c.ctypes.data), c.size, n
    check(lib.onnxq_gemm_u8s8_run(ffi.cast("void*", byte_ptr(buf)), buf.size, p))
    del keep
    return c
