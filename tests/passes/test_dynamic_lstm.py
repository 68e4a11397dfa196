"""Recurrent ops in dynamic quantization: weights behind DequantizeLinear (DequantizeWeights) and
LSTM as onnxruntime's DynamicQuantizeLSTM (DynamicLSTM)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxq
from onnxq.passes.dequantize_weights import dequantize_layout
from onnxq.passes.dynamic_lstm import contrib_lstm_weight
from onnxq.qconfig import QConfigMapping, get_default_qconfig
from onnxq.weights.dynamic import quantize_channels

HIDDEN, INPUTS, STEPS, BATCH = 16, 6, 5, 3
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
PER_CHANNEL = onnxq.get_default_qconfig("per_channel_dynamic").weight


def _recurrent(op: str, directions: int, layout: int = 0, seed: int = 0) -> tuple[onnx.ModelProto, dict]:
    rng = np.random.default_rng(seed)
    rows = GATES[op] * HIDDEN
    arrays = {
        "W": rng.standard_normal((directions, rows, INPUTS)).astype(np.float32) * 0.4,
        "R": rng.standard_normal((directions, rows, HIDDEN)).astype(np.float32) * 0.3,
        "B": rng.standard_normal((directions, 2 * rows)).astype(np.float32) * 0.1,
    }
    direction = "bidirectional" if directions == 2 else "forward"
    node = helper.make_node(op, ["x", "W", "R", "B"], ["y", "y_h"], name="rnn", hidden_size=HIDDEN,
                            direction=direction, layout=layout)  # fmt: skip
    x_shape = [BATCH, STEPS, INPUTS] if layout else [STEPS, BATCH, INPUTS]
    y_shape = [BATCH, STEPS, directions, HIDDEN] if layout else [STEPS, directions, BATCH, HIDDEN]
    h_shape = [BATCH, directions, HIDDEN] if layout else [directions, BATCH, HIDDEN]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape),
         helper.make_tensor_value_info("y_h", TensorProto.FLOAT, h_shape)],
        [numpy_helper.from_array(a, k) for k, a in arrays.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), arrays


def _with_weights(model: onnx.ModelProto, arrays: dict) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        if t.name in arrays:
            t.CopyFrom(numpy_helper.from_array(arrays[t.name], t.name))
    return out


def test_dequantize_layout_merges_two_channel_axes_only_when_both_count() -> None:
    w = np.random.default_rng(1).standard_normal((2, 8, 3)).astype(np.float32)
    values, scale, _, axis = dequantize_layout(quantize_channels(w, PER_CHANNEL, (0, 1)))
    assert values.shape == (16, 3) and scale.shape == (16,) and axis == 0
    values, scale, _, axis = dequantize_layout(quantize_channels(w[:1], PER_CHANNEL, (0, 1)))
    assert values.shape == (1, 8, 3) and scale.shape == (8,) and axis == 1


@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_weight_only_recurrent_op_runs_on_the_rounded_weights(op: str, directions: int, run_ort) -> None:
    model, arrays = _recurrent(op, directions)
    qmodel = onnxq.quantize_dynamic(model)
    ops = [n.op_type for n in qmodel.graph.node]
    assert ops.count("DequantizeLinear") == 2 and ops.count(op) == 1
    assert ops.count("Reshape") == (2 if directions == 2 else 0)  # per direction and gate row
    assert sorted(t.name for t in qmodel.graph.initializer if t.data_type == TensorProto.FLOAT and t.dims
                  and len(t.dims) > 1) == ["B"]  # fmt: skip
    rounded = {k: quantize_channels(arrays[k], PER_CHANNEL, (0, 1)).dequantize() for k in ("W", "R")}
    x = np.random.default_rng(2).standard_normal((STEPS, BATCH, INPUTS)).astype(np.float32)
    got = run_ort(qmodel, {"x": x})
    expected = run_ort(_with_weights(model, rounded), {"x": x})
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_contrib_lstm_weight_transposes_and_repeats_a_per_tensor_scale() -> None:
    w = np.random.default_rng(3).standard_normal((2, 8, 3)).astype(np.float32)
    values, scale, zp = contrib_lstm_weight(quantize_channels(w, PER_CHANNEL, (0, 1)))
    assert values.shape == (2, 3, 8) and scale.shape == (2, 8) and zp.shape == (2, 8)
    per_tensor = onnxq.get_default_qconfig("dynamic").weight
    values, scale, zp = contrib_lstm_weight(quantize_channels(w, per_tensor, ()))
    assert scale.shape == (2,) and scale[0] == scale[1] and zp.dtype == np.int8


@pytest.mark.parametrize("directions", [1, 2])
def test_lstm_becomes_dynamic_quantize_lstm_close_to_the_weight_only_one(directions: int, run_ort) -> None:
    model, _ = _recurrent("LSTM", directions)
    contrib = onnxq.quantize_dynamic(model, format="onnxruntime")
    assert [n.op_type for n in contrib.graph.node] == ["DynamicQuantizeLSTM"]
    assert {o.domain: o.version for o in contrib.opset_import}["com.microsoft"] == 1
    x = np.random.default_rng(4).standard_normal((STEPS, BATCH, INPUTS)).astype(np.float32)
    got = run_ort(contrib, {"x": x})
    # the same 7-bit weights (reduce_range: the contrib op's default), float activations
    seven_bits = QConfigMapping(replace(get_default_qconfig("per_channel_dynamic"),
                                        weight=replace(PER_CHANNEL, reduce_range=True)))  # fmt: skip
    weight_only = run_ort(onnxq.quantize_dynamic(model, qconfig_mapping=seven_bits), {"x": x})
    for g, e in zip(got, weight_only, strict=True):
        assert g.shape == e.shape
        # uint8 activations (steps of about 1/100 here) are all that differs: measured 0.007-0.009
        # on outputs up to 0.66; a transposed or misscaled weight is off by tenths
        assert np.abs(g - e).max() < 0.02


def test_lstm_with_layout_1_stays_weight_only_in_the_onnxruntime_format() -> None:
    model, _ = _recurrent("LSTM", 1, layout=1)
    conversion = onnxq.convert_dynamic(model, format="onnxruntime")
    assert [n.op_type for n in conversion.model.graph.node].count("LSTM") == 1
    assert conversion.report.nodes[0].kind == "weight_only"
    assert "rnn: layout=1, which DynamicQuantizeLSTM lacks: weight-only" in conversion.report.pass_notes
