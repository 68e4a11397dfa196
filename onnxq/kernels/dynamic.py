"""Dynamic-quantization matmul with the native kernels (onnxruntime DynamicQuantizeMatMul maths).

fp32 activations are quantized to u8 at run time (per tensor, or per row with ``per_row=True``);
s8 weights ``w[N, K]`` are quantized per output channel and packed once. See
:mod:`onnxq.kernels.reference.dynamic` for the exact arithmetic.

Non-finite activations are an error: NaN or +-Inf anywhere in ``a`` (or a range whose scale
``(hi - lo) / 255`` is not a finite value > 0, e.g. ``hi - lo`` overflowing fp32) raises
:class:`onnxq.errors.KernelError`, here and in the numpy reference alike, on every ISA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import (
    byte_ptr,
    check,
    ffi,
    in_ptr,
    lib,
    new_array,
    out_ptr,
    require_array,
    require_buffer,
    require_scales,
)
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

    def validated(self, name: str = "weights") -> tuple[int, int, np.ndarray, np.ndarray]:
        """``(k, n, packed buffer, w_scale)`` after checking the packed GEMM weights (header in C,
        see :meth:`PackedGemmWeights.validated`) and that ``w_scale`` is a C-contiguous float32
        array of 1 or ``n`` values; KernelError naming ``name`` otherwise."""
        if not isinstance(self.packed, PackedGemmWeights):
            raise KernelError(f"{name}.packed: expected PackedGemmWeights, got {type(self.packed).__name__}")
        k, n, buf = self.packed.validated(f"{name}.packed")
        ws = require_buffer(self.w_scale, f"{name}.w_scale", np.float32, ndim=1)
        if ws.size not in (1, n):
            raise KernelError(f"{name}.w_scale: expected 1 or {n} values, got {ws.size}")
        return k, n, buf, ws


def pack_dynamic_weights(w: np.ndarray, w_scale: np.ndarray | float) -> PackedDynamicWeights:
    """Pack int8 ``w[N, K]`` (one row per output channel) with ``w_scale`` (1 or N values)."""
    arr = np.asarray(w)
    if arr.dtype != np.int8 or arr.ndim != 2:
        raise KernelError(f"w: expected a 2-D int8 array [N, K], got {arr.dtype} of shape {arr.shape}")
    scale = require_scales(w_scale, "w_scale", flatten=True)
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
    return require_array(arr, name, np.float32, ndim=2)


def dynamic_quantize(a: np.ndarray, *, per_row: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(q, scale, zero_point)``: u8 ``q`` like ``a[M, K]`` and 1 (or M with ``per_row``) fp32
    scales and int32 zero points (ONNX DynamicQuantizeLinear per tensor), exactly
    :func:`onnxq.kernels.reference.dynamic.dynamic_quantize`. ``a`` must be finite (NaN / Inf:
    KernelError)."""
    a = _activations(a, "a")
    rows, cols = a.shape
    n = rows if per_row else 1
    q = new_array(a.shape, np.uint8, "q")
    scale = np.empty(n, dtype=np.float32)
    zp = np.empty(n, dtype=np.int32)
    mode = lib.ONNXQ_DQ_PER_ROW if per_row else lib.ONNXQ_DQ_PER_TENSOR
    check(
        lib.onnxq_dynamic_quantize(
            in_ptr(a), a.size, rows, cols, cols, mode, out_ptr(q), q.size, out_ptr(scale), out_ptr(zp), n
        )
    )
    return q, scale, zp


def dynamic_matmul(
    a: np.ndarray, weights: PackedDynamicWeights, *, bias: np.ndarray | None = None, per_row: bool = False
) -> np.ndarray:
    """``y[M, N] = a[M, K] · wᵀ`` (+ ``bias[N]``, float32) in fp32 via run-time u8 quantization of
    ``a``, exactly :func:`onnxq.kernels.reference.dynamic.dynamic_matmul`; ``a`` must be finite."""
    if not isinstance(weights, PackedDynamicWeights):
        raise KernelError(f"weights: expected PackedDynamicWeights, got {type(weights).__name__}")
    k, n, buf, w_scale = weights.validated()
    a = _activations(a, "a")
    if a.shape[1] != k:
        raise KernelError(f"a: has {a.shape[1]} columns, the packed weights have K={k}")
    p = ffi.new("onnxq_dqmm_params*")
    keep = [a, w_scale]
    p.k, p.n, p.m = k, n, a.shape[0]
    p.a, p.a_len, p.lda = in_ptr(a), a.size, k
    p.mode = lib.ONNXQ_DQ_PER_ROW if per_row else lib.ONNXQ_DQ_PER_TENSOR
    p.w_scale, p.w_scale_len = in_ptr(w_scale), w_scale.size
    if bias is not None:
        b = require_array(bias, "bias", np.float32, ndim=1)
        if b.size != n:
            raise KernelError(f"bias: expected {n} values, got {b.size}")
        keep.append(b)
        p.bias, p.bias_len = in_ptr(b), b.size
    y = new_array((a.shape[0], n), np.float32, "y")
    p.y, p.y_len, p.ldy = out_ptr(y), y.size, n
    check(lib.onnxq_dqmm(ffi.cast("void*", byte_ptr(buf)), buf.size, p))
    del keep
    return y
