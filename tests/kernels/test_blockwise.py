"""Native block-wise 4-bit matmul (qb4w) vs its numpy reference, bit for bit on every ISA present."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import F32, assert_same_bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxq.errors import KernelError
from onnxq.kernels.blockwise import (
    PackedBlockwiseWeights,
    blockwise_matmul,
    pack_blockwise_weights,
    quantize_rows,
)
from onnxq.kernels.reference import blockwise as ref
from onnxq.weights.weight_only import pack_nbits


def _weights(rng: np.random.Generator, n: int, k: int, block: int, zero_points: bool):
    """Random codes, scales and zero points (all 8 when not ``zero_points``), and their packing."""
    nb = math.ceil(k / block)
    codes = rng.integers(0, 16, (n, k)).astype(np.uint8)
    scales = rng.uniform(1e-3, 0.1, (n, nb)).astype(F32)
    zp = rng.integers(0, 16, (n, nb)).astype(np.uint8) if zero_points else np.full((n, nb), 8, np.uint8)
    zp[0, 0] = 0 if zero_points else 8  # never all 8 when asked for zero points
    b, zpk = pack_nbits(codes, zp, block)
    packed = pack_blockwise_weights(b, scales.reshape(-1), zpk, k=k, n=n, block=block)
    return codes, scales, (zp if zero_points else None), packed


@pytest.mark.parametrize("zero_points", [False, True])
@pytest.mark.parametrize(("m", "k", "n", "block"), [(1, 32, 16, 32), (3, 100, 37, 32), (2, 256, 40, 64),
                                                    (5, 1000, 70, 128), (1, 33, 1, 32), (4, 64, 17, 256)])
def test_blockwise_matmul_matches_reference_bitexact(isa, rng, zero_points, m, k, n, block) -> None:
    codes, scales, zp, packed = _weights(rng, n, k, block, zero_points)
    a = (rng.standard_normal((m, k)) * rng.uniform(0.1, 10)).astype(F32)
    bias = rng.standard_normal(n).astype(F32)
    for b in (None, bias):
        want = ref.blockwise_matmul(a, codes, scales, zp, block, b)
        for threads in (1, 2):
            assert_same_bits(blockwise_matmul(a, packed, bias=b, threads=threads), want)
    for got, expected in zip(quantize_rows(a, block), ref.quantize_rows(a, block), strict=True):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 6), k=st.integers(1, 300), n=st.integers(1, 50), block=st.sampled_from([32, 64, 128]),
       zero_points=st.booleans(), seed=st.integers(0, 2**31))
def test_blockwise_matmul_matches_reference_on_random_shapes(isa, m, k, n, block, zero_points, seed) -> None:
    rng = np.random.default_rng(seed)
    codes, scales, zp, packed = _weights(rng, n, k, block, zero_points)
    a = (rng.standard_normal((m, k)) * 4).astype(F32)
    assert_same_bits(blockwise_matmul(a, packed), ref.blockwise_matmul(a, codes, scales, zp, block))


def test_blockwise_matmul_is_close_to_the_float_product(rng) -> None:
    n, k, block = 24, 200, 32
    codes, scales, zp, packed = _weights(rng, n, k, block, True)
    w = (codes.astype(F32) - np.repeat(zp, block, axis=1)[:, :k]) * np.repeat(scales, block, axis=1)[:, :k]
    a = rng.standard_normal((3, k)).astype(F32)
    exact = a @ w.T
    # int8 activations per row: a relative error of about 1 / 254 per value, averaged over k
    assert np.abs(blockwise_matmul(a, packed) - exact).max() < 0.01 * np.abs(exact).max()


def test_rows_of_zeros_and_subnormals_get_scale_one(isa) -> None:
    a = np.zeros((3, 40), F32)
    a[1, 5] = 1e-45  # amax / 127 underflows to 0
    a[2, :] = np.linspace(-2, 2, 40, dtype=F32)
    q, scale, bsum = quantize_rows(a, 32)
    assert scale[0] == scale[1] == 1 and np.all(q[:2] == 0)
    assert scale[2] == F32(2) / F32(127) and q[2, 0] == -127 and q[2, 39] == 127
    assert q.shape == (3, 64) and np.all(q[:, 40:] == 0)
    np.testing.assert_array_equal(bsum, q.reshape(3, 2, 32).sum(axis=2))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_activations_are_refused(isa, rng, bad) -> None:
    *_, packed = _weights(rng, 8, 64, 32, False)
    a = np.ones((2, 64), F32)
    a[1, 3] = bad
    with pytest.raises(KernelError, match="row 1 contains NaN or infinity"):
        blockwise_matmul(a, packed)
    with pytest.raises(KernelError, match="row 1"):
        ref.quantize_rows(a, 32)


def test_bad_arguments_are_refused(rng) -> None:
    codes, scales, _, packed = _weights(rng, 8, 64, 32, False)
    b, _ = pack_nbits(codes, np.full((8, 2), 8), 32)
    with pytest.raises(KernelError, match="block = 48"):
        pack_blockwise_weights(b, scales.reshape(-1), None, k=64, n=8, block=48)
    with pytest.raises(KernelError, match="b has 255 values, expected 256"):
        pack_blockwise_weights(b.reshape(-1)[:-1], scales.reshape(-1), None, k=64, n=8, block=32)
    with pytest.raises(KernelError, match="scales has 15 values"):
        pack_blockwise_weights(b, scales.reshape(-1)[:-1], None, k=64, n=8, block=32)
    with pytest.raises(KernelError, match="a: has 63 columns"):
        blockwise_matmul(np.ones((1, 63), F32), packed)
    with pytest.raises(KernelError, match="bias: expected 8 values"):
        blockwise_matmul(np.ones((1, 64), F32), packed, bias=np.ones(7, F32))
    with pytest.raises(KernelError, match="threads"):
        blockwise_matmul(np.ones((1, 64), F32), packed, threads=1000)
    with pytest.raises(KernelError, match="dtype float32"):
        blockwise_matmul(np.ones((1, 64)), packed)
    lying = PackedBlockwiseWeights(k=64, n=9, block=32, buffer=packed.buffer)
    with pytest.raises(KernelError, match="the object says k=64 x n=9"):
        blockwise_matmul(np.ones((1, 64), F32), lying)
    broken = packed.buffer.copy()
    broken[0] ^= 1
    with pytest.raises(KernelError, match="bad header"):
        blockwise_matmul(np.ones((1, 64), F32), PackedBlockwiseWeights(64, 8, 32, broken))
    with pytest.raises(KernelError, match="truncated"):
        blockwise_matmul(np.ones((1, 64), F32), PackedBlockwiseWeights(64, 8, 32, packed.buffer[:-8]))
