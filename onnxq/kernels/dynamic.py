"""Dynamic-quantization matmul with the native kernels (onnxruntime DynamicQuantizeMatMul maths).

fp32 activations are quantized to u8 at run time (per tensor, or per row with ``per_row=True``);
s8 weights ``w[N, K]`` are quantized per output channel and packed once. See
:mod:`onnxq.kernels.reference.dynamic` for the exact arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import check, ffi, lib
from onnxq.kernels.gemm import PackedGemmWeights, pack_gemm_weights

__all__ = ["PackedDynamicWeights", "dynamic_matmul", "dynamic_quantize", "pack_dynamic_weights"]


@dataclass(frozen=True, eq=False)
class PackedDynamicWeights:
    """s8 weights ``w[N, K]`` packed for the GEMM, with their per-channel fp32 scales ``[N]``."""

    packed: PackedGemmWeights
    w_scale: np.ndarray

    @property
    def k(self) -> int:
        return self.packed.k

    @property
    def n(self) -> int:
        return self.packed.n


def pack_dynamic_weights(w: np.ndarray, w_scale: np.ndarray | float) -> PackedDynamicWeights:
    """Pack int8 ``w[N, K]`` (one row per output channel) with ``w_scale`` (1 or N values)."""
    arr = np.asarray(w)
    if arr.dtype != np.int8 or arr.ndim != 2:
        raise KernelError(f"w: expected a 2-D int8 array [N, K], got {arr.dtype} of shape {arr.shape}")
    scale = np.ascontiguousarray(np.asarray(w_scale, dtype=np.float32).reshape(-1))
    if scale.size == 1:
        scale = np.full(arr.shape[0], scale[0], dtype=np.float32)
    if scale.size != arr.shape[0]:
        raise KernelError(f"w_scale: expected 1 or {arr.shape[0]} values, got {scale.size}")
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise KernelError("w_scale: expected finite values > 0")
    return PackedDynamicWeights(pack_gemm_weights(arr, transposed=True), scale)


def _activations(a: object, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != np.float32 or arr.ndim != 2:
        raise KernelError(f"{name}: expected a 2-D float32 array, got {arr.dtype} of shape {arr.shape}")
    if arr.size == 0:
        raise KernelError(f"{name}: zero-size array of shape {arr.shape}")
    return np.ascontiguousarray(arr)


def dynamic_quantize(a: np.ndarray, *, per_row: bool = False) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """``(q, scale, zero_point)``: u8 ``q`` like ``a[M, K]`` and 1 (or M with ``per_row``) fp32
    scales and int32 zero points (ONNX DynamicQuantizeLinear per tensor)."""
    a = _activations(a, "a")
    rows, cols = a.shape
    n = rows if per_row else 1
    q = np.empty(a.shape, dtype=np.uint8)
    scale = np.empty(n, dtype=np.float32)
    zp = np.empty(n, dtype=np.int32)
    check(lib.onnxq_dynamic_quantize(
        ffi.from_buffer("float[]", a), rows, cols, cols, int(bool(per_row)),
        ffi.from_buffer(q, require_writable=True), ffi.from_buffer("float[]", scale, require_writable=True),
        ffi.from_buffer("int32_t[]", zp, require_writable=True)))
    return q, scale, zp


def dynamic_matmul(a: np.ndarray, weights: PackedDynamicWeights, *, bias: np.ndarray | None = None,
                   per_row: bool = False) -> np.ndarray:
    """``y[M, N] = a[M, K] · wᵀ`` (+ ``bias[N]``) in fp32 via run-time u8 quantization of ``a``."""
    if not isinstance(weights, PackedDynamicWeights):
        raise KernelError(f"weights: expected PackedDynamicWeights, got {type(weights).__name__}")
    a = _activations(a, "a")
    if a.shape[1] != weights.k:
        raise KernelError(f"a: has {a.shape[1]} columns, the packed weights have K={weights.k}")
    p = ffi.new("onnxq_dqmm_params*")
    keep = [weights.w_scale]
    p.m, p.a, p.lda = a.shape[0], ffi.from_buffer("float[]", a), a.shape[1]
    p.mode = lib.ONNXQ_DQ_PER_ROW if per_row else lib.ONNXQ_DQ_PER_TENSOR
    p.w_scale, p.w_scale_len = ffi.from_buffer("float[]", weights.w_scale), weights.w_scale.size
    if bias is not None:
        b = np.ascontiguousarray(np.asarray(bias, dtype=np.float32).reshape(-1))
        if b.size != weights.n:
            raise KernelError(f"bias: expected {weights.n} values, got {b.size}")
        keep.append(b)
        p.bias = ffi.from_buffer("float[]", b)
    y = np.empty((a.shape[0], weights.n), dtype=np.float32)
    p.y, p.ldy = ffi.from_buffer("float[]", y, require_writable=True), weights.n
    check(lib.onnxq_dqmm(weights.packed.pointer(), weights.packed.buffer.size, p))
    del keep
    return y
