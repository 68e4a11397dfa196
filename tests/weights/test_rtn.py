"""Tests of the weight/bias maths (onnxq.weights.rtn), on arrays only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from onnxq.qconfig import QSpec
from onnxq.qparams import dequantize
from onnxq.scheme import PER_TENSOR as TENSOR
from onnxq.scheme import PerChannel
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
