"""The x86-avx2 saturation audit: the pair-sum bound on arrays, and the layers it gives 7 bits."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper as h
from onnx import numpy_helper

import onnxq
from onnxq.accuracy.saturation import INT16_MAX, pair_sum_bound, saturates
from onnxq.calibration.observers import make_observer


def test_opposite_sign_pairs_never_saturate_and_same_sign_pairs_add() -> None:
    a = np.array([255, 255])
    assert pair_sum_bound(a, np.array([[127, -127]], np.int8), 1) == 255 * 127
    assert pair_sum_bound(a, np.array([[127, 127]], np.int8), 1) == 2 * 255 * 127
    assert saturates(a, np.array([[-100, -100]], np.int8), 1)
    assert not saturates(np.array([255, 2]), np.array([[127, 127]], np.int8), 1)  # 32385 + 254 <= 32767
    assert saturates(np.array([255, 4]), np.array([[127, 127]], np.int8), 1)  # 32385 + 508 > 32767


def test_conv_pairs_are_adjacent_input_channels_at_each_kernel_position() -> None:
    w = np.zeros((2, 3, 2, 2), np.int8)  # [out, in, kh, kw]; 3 input channels: padded to 4
    w[1, 0, 1, 1], w[1, 1, 1, 1] = 120, 110  # one same-sign pair at one position
    a = np.array([255, 200, 255])
    assert pair_sum_bound(a, w, 1) == 120 * 255 + 110 * 200
    with pytest.raises(ValueError, match="3 input channels, the activation maxima 2"):
        pair_sum_bound(a[:2], w, 1)


def test_channel_minmax_gives_minmax_parameters_and_merges_across_channel_counts() -> None:
    obs = make_observer("channel_minmax", None, channel_axis=1)
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    obs.update(x)
    ref = make_observer("minmax")
    ref.update(x)
    assert float(obs.qparams("uint8", False, False).scale) == float(ref.qparams("uint8", False, False).scale)
    np.testing.assert_array_equal(obs.max_val, x.max(axis=(0, 2)))
    other = make_observer("channel_minmax", None, channel_axis=1)
    other.update(np.full((1, 5), -7.0, np.float32))
    merged = obs.merge(other)
    assert (float(merged.min_val[0]), float(merged.max_val[0])) == (-7.0, 11.0)


def _two_convs() -> onnx.ModelProto:
    """x -> conv 'hot' (large same-sign weights: pairs can pass 2^15) -> relu -> conv 'cool'
    (weights alternate in sign: pairs never do)."""
    rng = np.random.default_rng(0)
    hot = np.abs(rng.normal(size=(8, 8, 1, 1))).astype(np.float32) + 1.0
    cool = np.abs(rng.normal(size=(8, 8, 1, 1))).astype(np.float32) + 1.0
    cool[:, 1::2] *= -1
    nodes = [
        h.make_node("Conv", ["x", "hot_w"], ["a"], name="hot"),
        h.make_node("Relu", ["a"], ["r"], name="relu"),
        h.make_node("Conv", ["r", "cool_w"], ["y"], name="cool"),
    ]
    graph = h.make_graph(
        nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 8, 4, 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 8, 4, 4])],
        [numpy_helper.from_array(hot, "hot_w"), numpy_helper.from_array(cool, "cool_w")],
    )  # fmt: skip
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)


def test_only_the_layers_that_can_saturate_get_seven_bit_inputs() -> None:
    model = _two_convs()
    data = [{"x": np.abs(np.random.default_rng(1).normal(size=(8, 8, 4, 4))).astype(np.float32)}]
    portable = onnxq.prepare(model)
    portable.calibrate(data, progress=False)
    portable.convert()
    avx2 = onnxq.prepare(model, target="x86-avx2")
    avx2.calibrate(data, progress=False)
    avx2.convert()
    full, audited = portable.conversion, avx2.conversion
    assert full is not None and audited is not None
    x_full, x_audit = full.qdq_map["x"].qparams, audited.qdq_map["x"].qparams
    r_full, r_audit = full.qdq_map["r"].qparams, audited.qdq_map["r"].qparams
    assert x_full is not None and x_audit is not None and r_full is not None and r_audit is not None
    assert float(x_audit.scale) == pytest.approx(2 * float(x_full.scale), rel=1e-2)  # 'hot' reads x: 7 bits
    assert float(r_audit.scale) == float(r_full.scale)  # 'cool' reads r: its pairs cannot saturate
    notes = avx2.report.pass_notes
    assert any(n.startswith("x86-avx2: 1 of 2 layer(s) get 7-bit inputs") for n in notes)
    assert any(
        n.startswith("Conv 'hot': adjacent u8 x s8 products reach") and f"> {INT16_MAX}" in n for n in notes
    )
