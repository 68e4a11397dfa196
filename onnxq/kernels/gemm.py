"""u8 x s8 GEMM with the native kernels: pack the weights once, run many times."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import check, ffi, in_ptr, lib, require_array

__all__ = ["PackedGemmWeights", "gemm_kernel_name", "gemm_u8s8", "pack_gemm_weights"]

_OUT_TYPES = {
    np.dtype(np.uint8): ("ONNXQ_U8", 0, 255),
    np.dtype(np.int8): ("ONNXQ_S8", -128, 127),
    np.dtype(np.float32): ("ONNXQ_F32", 0, 0),
    np.dtype(np.int32): ("ONNXQ_I32", 0, 0),
}
_ALIGN = 64


@dataclass(frozen=True, eq=False)
class PackedGemmWeights:
    """s8 weights ``B[k, n]`` packed for every ISA's micro-kernels (plus column sums)."""

    k: int
    n: int
    buffer: np.ndarray  # uint8, 64-byte aligned view of the packed bytes

    def column_sums(self) -> np.ndarray:
        """int32 ``sum_k B[k, j]`` per column (wrapping), read from the packed buffer."""
        out = ffi.new("int32_t**")
        check(lib.onnxq_gemm_u8s8_packed_colsum(self.pointer(), self.buffer.size, out))
        return np.frombuffer(ffi.buffer(out[0], 4 * self.n), dtype=np.int32).copy()

    def pointer(self) -> object:
        """cffi ``void*`` to the packed bytes (for other wrappers calling the C API)."""
        return ffi.cast("void*", ffi.from_buffer(self.buffer))


def _aligned_empty(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    offset = (-raw.ctypes.data) % _ALIGN
    return raw[offset : offset + nbytes]


def pack_gemm_weights(b: np.ndarray, *, transposed: bool = False) -> PackedGemmWeights:
    """Pack int8 weights ``b[k, n]`` (or ``b[n, k]`` with ``transposed=True``, e.g. conv weights
    reshaped to [out_channels, -1]); weight zero point 0 (symmetric)."""
    arr = np.asarray(b)
    if arr.dtype != np.int8 or arr.ndim != 2:
        raise KernelError(f"b: expected a 2-D int8 array, got {arr.dtype} of shape {arr.shape}")
    k, n = (arr.shape[1], arr.shape[0]) if transposed else arr.shape
    if k == 0 or n == 0:
        raise KernelError(f"b: zero-size weights of shape {arr.shape}")
    size = lib.onnxq_gemm_u8s8_packed_size(k, n)
    if size == 0:
        raise KernelError(f"b: weights of shape {arr.shape} are too large to pack")
    item = arr.itemsize
    stride_k, stride_n = (arr.strides[1], arr.strides[0]) if transposed else arr.strides
    buf = _aligned_empty(size)
    check(
        lib.onnxq_gemm_u8s8_pack(
            ffi.cast("int8_t*", arr.ctypes.data), k, n, stride_k // item, stride_n // item, 0,
            ffi.from_buffer(buf, require_writable=True), size,
        )
    )
    return PackedGemmWeights(k=k, n=n, buffer=buf)


def gemm_kernel_name(k: int) -> str:
    """Name of the micro-kernel :func:`gemm_u8s8` runs under the active ISA for weights with ``k``
    rows: the ISA's best, except that under amx a ``k <= 32`` runs the avx512vnni kernel (AMX
    tiles pad K to 64)."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise KernelError(f"k: expected a positive integer, got {k!r}")
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
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim != 2:
        raise KernelError(f"a: expected a 2-D uint8 array, got {a.dtype} of shape {a.shape}")
    if a.shape[1] != packed.k:
        raise KernelError(f"a: has {a.shape[1]} columns, the packed weights have k={packed.k}")
    if a.shape[0] == 0:
        raise KernelError("a: zero rows")
    if a.strides[1] != 1 or a.strides[0] < packed.k:
        a = np.ascontiguousarray(a)
    out = np.dtype(out_dtype)
    if out not in _OUT_TYPES:
        raise KernelError(f"out_dtype: expected uint8, int8, float32 or int32, got {out}")
    kind, tmin, tmax = _OUT_TYPES[out]
    p = ffi.new("onnxq_gemm_u8s8_params*")
    p.m, p.lda = a.shape[0], a.strides[0]
    p.a = ffi.cast("uint8_t*", a.ctypes.data)
    p.a_zp = int(a_zero_point)
    keep = []
    if bias is not None:
        bias_arr = require_array(bias, "bias", np.int32, ndim=1)
        if bias_arr.size != packed.n:
            raise KernelError(f"bias: expected {packed.n} values, got {bias_arr.size}")
        keep.append(bias_arr)
        p.bias = in_ptr(bias_arr)
    p.out_type = getattr(lib, kind)
    if out != np.int32:
        if scale is None:
            raise KernelError(f"scale: required for out_dtype {out}")
        scale_arr = np.ascontiguousarray(np.asarray(scale, dtype=np.float32).reshape(-1))
        keep.append(scale_arr)
        p.scale, p.scale_len = in_ptr(scale_arr), scale_arr.size
    p.out_zp = int(out_zero_point)
    p.qmin = tmin if qmin is None else int(qmin)
    p.qmax = tmax if qmax is None else int(qmax)
    if bias_f is not None:
        if out != np.float32:
            raise KernelError(f"bias_f: only for out_dtype float32, not {out}")
        bf = require_array(bias_f, "bias_f", np.float32, ndim=1)
        if bf.size != packed.n:
            raise KernelError(f"bias_f: expected {packed.n} values, got {bf.size}")
        keep.append(bf)
        p.bias_f = in_ptr(bf)
    c = np.empty((a.shape[0], packed.n), dtype=out)
    p.c, p.ldc = ffi.cast("void*", c.ctypes.data), packed.n
    check(lib.onnxq_gemm_u8s8_run(packed.pointer(), packed.buffer.size, p))
    del keep
    return c
