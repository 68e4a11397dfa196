"""The weight-only maths (:mod:`onnxq.weights.weight_only`, rounded by ``rtn``) against a brute-force
loop over channels and blocks, and MatMulNBits' layout against its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxq.planning.weight_only import weight_only_spec
from onnxq.qparams import unpack_4bit
from onnxq.scheme import PerBlock, PerChannel
from onnxq.weights.weight_only import dequantize_weight, matmul_nbits_layout, quantize_weight_only

RANGES = {("int8", True): (-127, 127), ("int8", False): (-128, 127), ("int4", True): (-7, 7),
          ("int4", False): (-8, 7), ("uint4", True): (0, 15), ("uint4", False): (0, 15)}  # fmt: skip


def _brute(values: np.ndarray, dtype: str, symmetric: bool) -> tuple[float, int, np.ndarray]:
    """One group's ``(scale, zero point, integers)`` by the formulas of the module docstring."""
    qmin, qmax = RANGES[dtype, symmetric]
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    if symmetric:
        scale = max(-lo, hi) / ((qmax - qmin) / 2)
        zp = 0 if dtype != "uint4" else 8
    else:
        scale = (hi - lo) / (qmax - qmin)
    scale = np.float32(scale if scale > 0 else 1.0)
    if not symmetric:
        zp = int(np.clip(qmin - np.round(lo / scale), qmin, qmax))
    q = np.clip(np.round(values / scale) + zp, qmin, qmax)  # np.round: half to even
    return float(scale), zp, q


@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "zero_points"])
def test_int8_per_channel_matches_the_brute_force_loop(symmetric) -> None:
    w = np.random.default_rng(0).standard_normal((40, 24)).astype(np.float32)
    q = quantize_weight_only(w, weight_only_spec("int8", 32, symmetric), PerChannel(1))
    for n in range(w.shape[1]):
        scale, zp, expected = _brute(w[:, n], "int8", symmetric)
        assert q.qparams.scale[n] == pytest.approx(scale, rel=1e-6)
        assert int(q.qparams.zero_point[n]) == zp
        np.testing.assert_array_equal(q.values[:, n].astype(np.int32), expected)


@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "zero_points"])
@pytest.mark.parametrize("dtype", ["int4", "uint4"])
@pytest.mark.parametrize("k", [64, 80], ids=["whole_blocks", "short_last_block"])
def test_4bit_blocks_match_the_brute_force_loop(dtype, symmetric, k) -> None:
    block = 32
    w = np.random.default_rng(1).standard_normal((k, 6)).astype(np.float32)
    w[:block, 0] = 0.0  # an all-zero block: scale 1
    q = quantize_weight_only(w, weight_only_spec(dtype, block, symmetric), PerBlock(0, block))
    assert q.qparams.scale.shape == (math.ceil(k / block), 6)
    for n in range(6):
        for b in range(math.ceil(k / block)):
            rows = slice(b * block, min((b + 1) * block, k))  # the last block: its own elements only
            scale, zp, expected = _brute(w[rows, n], dtype, symmetric)
            assert q.qparams.scale[b, n] == pytest.approx(scale, rel=1e-6)
            assert int(q.qparams.zero_point[b, n]) == zp
            np.testing.assert_array_equal(q.values[rows, n].astype(np.int32), expected)
    err = np.abs(dequantize_weight(q) - w)
    assert err.max() <= np.repeat(q.qparams.scale, block, axis=0)[:k].max() * 0.5 + 1e-6 or not symmetric


def test_round_half_to_even_and_clamping() -> None:
    # max |w| = 7 -> scale 1: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2
    w = np.array([7.0, 2.5, 3.5, -2.5, 0.5, 1.5] + [0.0] * 10, np.float32)[:, None]
    q = quantize_weight_only(w, weight_only_spec("int4", 16, True), PerBlock(0, 16))
    assert q.values[:6, 0].astype(int).tolist() == [7, 2, 4, -2, 0, 2]
    w[0, 0] = -7.0  # symmetric: -7, never -8
    q = quantize_weight_only(w, weight_only_spec("int4", 16, True), PerBlock(0, 16))
    assert int(q.values.astype(int).min()) == -7


def test_conv_weights_are_blocked_along_input_channels_times_kernel() -> None:
    w = np.random.default_rng(2).standard_normal((4, 8, 3, 3)).astype(np.float32)
    q = quantize_weight_only(w, weight_only_spec("int4", 32, True), PerBlock(1, 32), flatten=True)
    assert q.values.shape == (4, 72) and q.qparams.scale.shape == (4, 3)


@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "zero_points"])
@pytest.mark.parametrize("dtype", ["int4", "uint4"])
def test_matmul_nbits_layout_dequantizes_to_the_same_weight(dtype, symmetric) -> None:
    n, k, block = 5, 80, 32
    w = np.random.default_rng(3).standard_normal((n, k)).astype(np.float32)
    q = quantize_weight_only(w, weight_only_spec(dtype, block, symmetric), PerBlock(1, block))
    nb = matmul_nbits_layout(q)
    blocks = math.ceil(k / block)
    assert nb.packed.shape == (n, blocks, block // 2) and nb.packed.dtype == np.uint8
    assert nb.scales.shape == (n * blocks,)
    codes = unpack_4bit(nb.packed, n * blocks * block, signed=False).astype(np.int32).reshape(n, -1)
    if nb.zero_points is None:
        zp = np.full((n, blocks), 8)
    else:
        per_row = math.ceil(blocks / 2)
        assert nb.zero_points.shape == (n * per_row,)
        zp = unpack_4bit(nb.zero_points, n * per_row * 2, signed=False).reshape(n, -1)[:, :blocks]
    assert (nb.zero_points is None) == symmetric  # symmetric: every zero point 8 (unsigned)
    scale = nb.scales.reshape(n, blocks)
    ours = ((codes - np.repeat(zp, block, axis=1)) * np.repeat(scale, block, axis=1))[:, :k]
    np.testing.assert_array_equal(ours.astype(np.float32), dequantize_weight(q))
    assert np.all(((codes - np.repeat(zp, block, axis=1)) * np.repeat(scale, block, axis=1))[:, k:] == 0)
