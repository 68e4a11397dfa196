"""Tests of the weight/bias maths (onnxq.weights.rtn), on arrays only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from onnxq.qconfig import QSpec
from onnxq.qparams import block_min_max, choose_qparams, dequantize
from onnxq.scheme import PER_TENSOR as TENSOR
from onnxq.scheme import PerBlock, PerChannel
from onnxq.weights.bias import bias_qparams
from onnxq.weights.rtn import quantize_weight

PER_CHANNEL = QSpec("int8", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax")
PER_TENSOR = QSpec("int8", symmetric=True, observer="minmax")


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, (4, 3, 2), elements=st.floats(-8, 8, width=32)), st.sampled_from([0, 1, 2]))
def test_quantize_weight_per_channel_error_within_half_step(w: np.ndarray, axis: int) -> None:
    wq, qp = quantize_weight(w, PER_CHANNEL, PerChannel(axis))
    assert wq.dtype == np.int8 and wq.shape == w.shape and qp.axis == axis
    assert qp.scale.shape == (w.shape[axis],) and not qp.zero_point.any()
    assert wq.min() >= -127  # narrow symmetric range
    shape = [1] * w.ndim
    shape[axis] = -1
    step = qp.scale.reshape(shape)
    assert np.all(np.abs(dequantize(wq, qp) - w) <= step / 2 * (1 + 1e-5) + 1e-12)


def test_quantize_weight_maps_channel_max_to_127_and_zero_channel_to_scale_one() -> None:
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]], np.float32)
    wq, qp = quantize_weight(w, PER_CHANNEL, PerChannel(0))
    np.testing.assert_array_equal(qp.scale, np.float32([1.0 / 127, 1.0]))
    np.testing.assert_array_equal(wq, [[64, -127, 32], [0, 0, 0]])
    wq, qp = quantize_weight(w, PER_TENSOR, TENSOR)
    assert qp.axis is None and float(qp.scale) == np.float32(1.0 / 127)


def test_bias_qparams_scale_is_input_times_weight_scale_repeated_per_group() -> None:
    w_scale = np.float32([0.5, 0.25, 0.125])
    bq, b_scale = bias_qparams(np.float32([1, 2, 3, -1, -2, -3]), np.float32(0.1), w_scale, repeats=2)
    np.testing.assert_array_equal(b_scale, np.float32(0.1) * np.tile(w_scale, 2))
    assert bq.dtype == np.int32
    np.testing.assert_allclose(bq * b_scale, [1, 2, 3, -1, -2, -3], atol=float(b_scale.max()) / 2)
    bq, b_scale = bias_qparams(np.float32([[1.0, -1.0]]), np.float32(0.5), np.float32(0.01))
    assert b_scale.shape == () and bq.tolist() == [200, -200]


def test_bias_qparams_rejects_channel_mismatch() -> None:
    with pytest.raises(ValueError, match="bias has 4 channels"):
        bias_qparams(np.zeros(4, np.float32), np.float32(1.0), np.ones(3, np.float32))


@pytest.mark.parametrize("dtype", ["int4", "uint4", "int8"])
@pytest.mark.parametrize(
    ("shape", "axis", "block"), [((6, 40), 1, 16), ((40, 6), 0, 32), ((4, 3, 10, 2), 2, 4)]
)
def test_quantize_weight_per_block_has_one_scale_per_block(dtype, shape, axis, block) -> None:
    rng = np.random.default_rng(0)
    scales = np.linspace(0.1, 5, shape[axis]).reshape([-1 if a == axis else 1 for a in range(len(shape))])
    w = (rng.normal(size=shape) * scales).astype(np.float32)
    spec = QSpec(dtype, symmetric=not dtype.startswith("u"), granularity=PerBlock(block_size=block))
    wq, qp = quantize_weight(w, spec, PerBlock(axis, block))
    assert str(wq.dtype) == dtype and qp.granularity == PerBlock(axis, block)
    blocks = -(-shape[axis] // block)
    assert qp.scale.shape == tuple(blocks if a == axis else n for a, n in enumerate(shape))
    lo, hi = block_min_max(w, axis, block)
    expected = choose_qparams(lo, hi, dtype, spec.symmetric, granularity=PerBlock(axis, block))
    np.testing.assert_array_equal(qp.scale, expected.scale)
    np.testing.assert_array_equal(qp.zero_point, expected.zero_point)
    step = np.repeat(qp.scale, block, axis=axis).take(np.arange(shape[axis]), axis=axis)
    assert np.all(np.abs(dequantize(wq, qp) - w) <= step / 2 * (1 + 1e-5) + 1e-7)


def test_quantize_weight_without_finite_values_gets_scale_one() -> None:
    w = np.full((3, 4), np.nan, np.float32)
    wq, qp = quantize_weight(w, PER_CHANNEL, PerChannel(0))
    np.testing.assert_array_equal(qp.scale, np.ones(3, np.float32))
    assert not qp.zero_point.any() and np.all(wq == -127)  # NaN saturates low, within the narrow range
