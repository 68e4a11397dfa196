"""The conv lowering pass: its clamp maths, what it refuses (named), and the layout at the edges."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxq.io import load_model, to_proto
from onnxq.kernels.custom_ops import DOMAIN
from onnxq.passes.lower_onnxq import LowerToOnnxq, clamp_bounds, quantize_value
from onnxq.runtime import InferenceSession

F32 = np.float32


@pytest.mark.parametrize(
    ("activation", "lo", "hi"),
    [
        (None, None, None),
        ("Relu", None, None),
        ("Clip", 0.0, 6.0),
        ("Clip", -1.0, None),
        ("Clip", None, 0.5),
        ("Clip", -50.0, 50.0),
    ],
)
def test_clamp_bounds_equal_the_activation_then_quantization_on_every_float(activation, lo, hi) -> None:  # type: ignore[no-untyped-def]
    scale, zp = F32(0.0371), 77
    v = np.linspace(-12, 12, 20001, dtype=F32)
    if activation == "Relu":
        f = np.maximum(v, 0)
    elif activation == "Clip":
        f = np.clip(v, -np.inf if lo is None else lo, np.inf if hi is None else hi).astype(F32)
    else:
        f = v
    want = np.clip(np.rint(f / scale) + zp, 0, 255)
    qmin, qmax = clamp_bounds(activation, scale, zp, lo, hi)
    got = np.clip(np.clip(np.rint(v / scale) + zp, 0, 255), qmin, qmax)
    np.testing.assert_array_equal(got, want)
    assert quantize_value(0.0, scale, zp) == zp


def _qdq_conv(
    *,
    act_zp_dtype=np.uint8,
    axis: int = 0,
    auto_pad: str | None = None,
    reader: str = "DequantizeLinear",
    graph_output: bool = False,
) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (4, 3, 3, 3), dtype=np.int8)
    inits = [
        numpy_helper.from_array(np.array(0.05, F32), "xs"),
        numpy_helper.from_array(np.array(128 if act_zp_dtype is np.uint8 else 0, act_zp_dtype), "xz"),
        numpy_helper.from_array(w, "wq"),
        numpy_helper.from_array(np.full(4, 0.01, F32), "ws"),
        numpy_helper.from_array(np.array(0.2, F32), "ys"),
        numpy_helper.from_array(np.array(3, act_zp_dtype), "yz"),
    ]
    act_type = TensorProto.UINT8 if act_zp_dtype is np.uint8 else TensorProto.INT8
    conv_attrs = {"pads": [1, 1, 1, 1]} if auto_pad is None else {"auto_pad": auto_pad}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"], axis=axis),
        helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv", **conv_attrs),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["yq"]),
    ]
    outputs = []
    if reader == "DequantizeLinear":
        nodes.append(helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"]))
        outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6]))
    else:  # an integer reader that is not lowered
        nodes.append(helper.make_node("MaxPool", ["yq"], ["y"], kernel_shape=[2, 2]))
        outputs.append(helper.make_tensor_value_info("y", act_type, [1, 4, 3, 3]))
    if graph_output:
        outputs.append(helper.make_tensor_value_info("yq", act_type, [1, 4, 6, 6]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])], outputs, inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _lowered(model: onnx.ModelProto) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    result = LowerToOnnxq()(load_model(model))
    return to_proto(result.model), result.notes


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"auto_pad": "SAME_UPPER"}, "auto_pad is not lowered"),
        ({"axis": 1}, "quantized along axis 1, not the output channels"),
    ],
)
def test_a_pattern_that_does_not_match_stays_qdq_with_its_reason(kwargs, reason: str) -> None:  # type: ignore[no-untyped-def]
    lowered, notes = _lowered(_qdq_conv(**kwargs))
    assert not [n for n in lowered.graph.node if n.domain == DOMAIN]
    assert len(notes) == 1 and notes[0].startswith("Conv 'conv' stays QDQ: ") and reason in notes[0]


@pytest.mark.parametrize("act_zp_dtype", [np.uint8, np.int8])
@pytest.mark.parametrize(
    ("reader", "graph_output"), [("DequantizeLinear", False), ("DequantizeLinear", True), ("MaxPool", False)]
)
def test_readers_that_are_not_lowered_get_nchw_back_and_outputs_keep_their_names(
    reader: str, graph_output: bool, act_zp_dtype: type
) -> None:
    model = _qdq_conv(reader=reader, graph_output=graph_output, act_zp_dtype=act_zp_dtype)
    lowered, notes = _lowered(model)
    assert notes == ()
    onnx.checker.check_model(lowered)
    ops = [(n.domain, n.op_type) for n in lowered.graph.node]
    if act_zp_dtype is np.uint8:
        assert (DOMAIN, "QLinearConv") in ops and ("", "Conv") not in ops
        assert ((DOMAIN, "Dequantize") in ops) == (reader == "DequantizeLinear")
        assert ops.count(("", "Transpose")) == int(reader != "DequantizeLinear" or graph_output)
    elif reader == "DequantizeLinear":  # int8 runs as its uint8 twin, dequantized by ours
        assert (
            (DOMAIN, "QLinearConv") in ops and (DOMAIN, "Dequantize") in ops and ("", "Transpose") not in ops
        )
        assert (("", "Conv") in ops) == graph_output  # the int8 graph output keeps the original path
    else:  # an int8 reader of ours has no int8 source: the QDQ path stays whole
        assert not [op for op in ops if op[0] == DOMAIN]
    assert [o.name for o in lowered.graph.output] == [o.name for o in model.graph.output]
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(F32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    got = InferenceSession(lowered.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(b, a)
