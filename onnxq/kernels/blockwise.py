"""Block-wise 4-bit weights times fp32 activations quantized per row to int8 at run time, with the
native kernels (weight-only quantization's matmul; the ``qb4w`` family of ``native/``).

Pack the weights once from onnxruntime MatMulNBits' layout (:func:`pack_blockwise_weights`: the
arrays :func:`onnxq.weights.weight_only.matmul_nbits_layout` gives), then
:func:`blockwise_matmul` any number of times. :mod:`onnxq.kernels.reference.blockwise` states the
arithmetic (the activations' rounding and the fp32 summation order), which every ISA follows bit
for bit. NaN or infinity in the activations is a :class:`~onnxq.errors.KernelError`.
"""

from __future__ import annotations

import math
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
)
from onnxq.kernels.conv import MAX_THREADS

__all__ = ["PackedBlockwiseWeights", "blockwise_matmul", "pack_blockwise_weights", "quantize_rows"]


@dataclass(frozen=True, eq=False)
class PackedBlockwiseWeights:
    """4-bit weights ``W[n, k]`` in blocks of ``block`` along k, packed for every ISA's kernels.

    ``buffer`` carries its own header (shape, block, sections), checked in C against its length and
    against ``k`` / ``n`` / ``block`` by every use (:meth:`validated`)."""

    k: int
    n: int
    block: int
    buffer: np.ndarray  # uint8, 64-byte aligned

    def validated(self, name: str = "weights") -> tuple[int, int, int, np.ndarray]:
        """``(k, n, block, buffer)`` once the buffer's header matches the fields; KernelError naming
        ``name`` otherwise."""
        buf = require_buffer(self.buffer, f"{name}.buffer", np.uint8, ndim=1, align=8)
        k = require_int(self.k, f"{name}.k", 1, SIZE_MAX)
        n = require_int(self.n, f"{name}.n", 1, SIZE_MAX)
        block = require_int(self.block, f"{name}.block", 1, SIZE_MAX)
        got = [ffi.new("size_t*") for _ in range(3)]
        check(lib.onnxq_qb4w_packed_shape(byte_ptr(buf), buf.size, *got), name)
        if tuple(int(g[0]) for g in got) != (k, n, block):
            raise KernelError(
                f"{name}: the buffer holds k={got[0][0]} x n={got[1][0]} weights in blocks of {got[2][0]}, "
                f"the object says k={k} x n={n} in blocks of {block}"
            )
        return k, n, block, buf


def pack_blockwise_weights(
    b: np.ndarray, scales: np.ndarray, zero_points: np.ndarray | None, *, k: int, n: int, block: int
) -> PackedBlockwiseWeights:
    """Pack weights in MatMulNBits' layout: ``b`` uint8 ``[n, nb, block / 2]`` (two codes a byte,
    the low nibble first), ``scales`` float32 ``[n * nb]``, ``zero_points`` None (every one 8) or
    uint8 ``[n * ceil(nb / 2)]`` packed the same way; ``nb = ceil(k / block)``."""
    k = require_int(k, "k", 1, SIZE_MAX)
    n = require_int(n, "n", 1, SIZE_MAX)
    block = require_int(block, "block", 1, SIZE_MAX)
    b = require_array(b, "b", np.uint8)
    s = require_array(scales, "scales", np.float32)
    z = None if zero_points is None else require_array(zero_points, "zero_points", np.uint8)
    size = ffi.new("size_t*")
    check(lib.onnxq_qb4w_packed_size(k, n, block, int(z is not None), size), "weights")
    blocks = -(-k // block)
    for arr, name, want in ((b, "b", n * blocks * (block // 2)), (s, "scales", n * blocks)):
        if arr.size != want:  # before the packed buffer is allocated (C checks again)
            raise KernelError(f"weights: qb4w_pack: {name} has {arr.size} values, expected {want}")
    buf = aligned_empty(int(size[0]))
    check(
        lib.onnxq_qb4w_pack(
            k, n, block, in_ptr(b), b.size, in_ptr(s), s.size,
            ffi.NULL if z is None else in_ptr(z), 0 if z is None else z.size,
            ffi.from_buffer(buf, require_writable=True), buf.size,
        ),
        "weights",
    )  # fmt: skip
    return PackedBlockwiseWeights(k=k, n=n, block=block, buffer=buf)


def _activations(a: object) -> np.ndarray:
    arr = require_array(a, "a", np.float32, ndim=2)
    if arr.size == 0:
        raise KernelError(f"a: zero-size array of shape {arr.shape}")
    return arr


def _rows(m: int, k: int, block: int) -> tuple[object, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    nb = math.ceil(k / block)
    q = new_array((m, nb * block), np.int8, "q")
    scale = np.empty(m, np.float32)
    bsum = np.empty((m, nb), np.int32)
    r = ffi.new("onnxq_qd8_rows*")
    r.m, r.k, r.block = m, k, block
    r.q, r.q_len = out_ptr(q), q.size
    r.scale, r.scale_len = out_ptr(scale), scale.size
    r.bsum, r.bsum_len = out_ptr(bsum), bsum.size
    return r, (q, scale, bsum)


def quantize_rows(a: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(q [m, nb * block] int8, scale [m] float32, bsum [m, nb] int32)``: the activations as the
    kernel quantizes them, exactly :func:`onnxq.kernels.reference.blockwise.quantize_rows`."""
    a = _activations(a)
    block = require_int(block, "block", 1, SIZE_MAX)
    r, out = _rows(a.shape[0], a.shape[1], block)
    check(lib.onnxq_qd8_quantize_rows(in_ptr(a), a.size, a.shape[1], r))
    return out


def blockwise_matmul(
    a: np.ndarray, weights: PackedBlockwiseWeights, *, bias: np.ndarray | None = None, threads: int = 1
) -> np.ndarray:
    """``y[m, n] = a[m, k] · Wᵀ`` (+ ``bias[n]``) in fp32, the activations quantized per row to int8,
    exactly :func:`onnxq.kernels.reference.blockwise.blockwise_matmul`, on up to ``threads`` threads
    (columns split; the bytes do not depend on the thread count)."""
    if not isinstance(weights, PackedBlockwiseWeights):
        raise KernelError(f"weights: expected PackedBlockwiseWeights, got {type(weights).__name__}")
    k, n, _, buf = weights.validated()
    a = _activations(a)
    if a.shape[1] != k:
        raise KernelError(f"a: has {a.shape[1]} columns, the packed weights have K={k}")
    p = ffi.new("onnxq_qb4w_params*")
    keep = [a]
    p.k, p.n, p.m = k, n, a.shape[0]
    p.a, p.a_len, p.lda = in_ptr(a), a.size, k
    p.threads = require_int(threads, "threads", 0, MAX_THREADS)
    if bias is not None:
        bb = require_array(bias, "bias", np.float32, ndim=1)
        if bb.size != n:
            raise KernelError(f"bias: expected {n} values, got {bb.size}")
        keep.append(bb)
        p.bias, p.bias_len = in_ptr(bb), bb.size
    y = new_array((a.shape[0], n), np.float32, "y")
    p.y, p.y_len, p.ldy = out_ptr(y), y.size, n
    check(lib.onnxq_qb4w_matmul(ffi.cast("void*", byte_ptr(buf)), buf.size, p))
    del keep
    return y
