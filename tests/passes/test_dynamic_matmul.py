"""DynamicMatMul: MatMul/Gemm on activations quantized at run time, in every format."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxq
from onnxq.kernels.reference.dynamic import dynamic_matmul
from onnxq.qconfig import get_default_qconfig
from onnxq.runtime import make_session
from onnxq.weights.dynamic import quantize_channels

RNG = np.random.default_rng(0)
W = RNG.standard_normal((16, 24)).astype(np.float32)  # MatMul weight [K, N], read by two MatMuls
G = RNG.standard_normal((12, 24)).astype(np.float32)  # Gemm weight, transB: [N, K]
C = RNG.standard_normal(12).astype(np.float32)


def _model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["a"], name="mm_a"),
        helper.make_node("MatMul", ["x", "w"], ["b"], name="mm_b"),
        helper.make_node("Add", ["a", "b"], ["s"], name="add"),
        helper.make_node("Reshape", ["s", "shape"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "g", "c"], ["y"], name="gemm", transB=1, alpha=0.5, beta=2.0),
    ]
    arrays = {"w": W, "g": G, "c": C, "shape": np.array([-1, 24], np.int64)}
    inits = [numpy_helper.from_array(a, name) for name, a in arrays.items()]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 12])], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _ops(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


#: quantize_dynamic's default weights: per channel, 7 bits (reduce_range)
SPEC = replace(get_default_qconfig("per_channel_dynamic").weight, reduce_range=True)


def _run_as_is(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The int8 model on stock onnxruntime as it is (no uint8 twin), with onnxq's custom ops."""
    return make_session(model, threads=1).run(None, feeds)


@pytest.mark.parametrize("reduce_range", [True, False], ids=["7-bit", "8-bit"])
@pytest.mark.parametrize("fmt", ["qdq", "onnxruntime", "onnxq"])
def test_matmuls_compute_the_reference_dynamic_matmul(fmt: str, reduce_range: bool, run_ort) -> None:
    """Bit for bit the numpy reference; with 7-bit weights also on stock onnxruntime as the model
    is, on every CPU: its u8 x s8 kernels, which saturate on x86 without VNNI, cannot there."""
    qmodel = onnxq.quantize_dynamic(_model(), format=fmt, reduce_range=reduce_range)
    ops = _ops(qmodel)
    if fmt == "qdq":  # one DynamicQuantizeLinear per activation tensor, shared by both MatMuls
        assert ops["DynamicQuantizeLinear"] == 2 and ops["MatMulInteger"] == 3 and ops["Cast"] == 3
        assert not any(n.domain for n in qmodel.graph.node)
    else:
        fused = "DynamicQuantizeMatMul" if fmt == "onnxruntime" else "DynamicMatMul"
        assert ops[fused] == 3 and "MatMulInteger" not in ops
    assert "MatMul" not in ops and "Gemm" not in ops
    int8 = [t for t in qmodel.graph.initializer if t.data_type == TensorProto.INT8 and len(t.dims) == 2]
    assert len(int8) == 2  # the shared weight once, the Gemm's
    assert not [
        t.name for t in qmodel.graph.initializer if t.data_type == TensorProto.FLOAT and len(t.dims) == 2
    ]

    x = RNG.standard_normal((2, 3, 16)).astype(np.float32) * 4  # wide: many u8 codes at the ends
    x[0, 0, :4] = x.max(), x.max(), x.min(), x.min()
    run = _run_as_is if reduce_range else run_ort  # else the model's exact integers: its twin here
    (got,) = run(qmodel, {"x": x})
    spec = replace(SPEC, reduce_range=reduce_range)
    w = quantize_channels(W, spec, (1,))
    assert np.abs(w.values).max() == (63 if reduce_range else 127)
    a = dynamic_matmul(x.reshape(6, 16), w.values.T, w.scale)
    s = (a + a).reshape(6, 24)
    g = quantize_channels((G.T * np.float32(0.5)).astype(np.float32), spec, (1,))
    expected = dynamic_matmul(s, g.values.T, g.scale, bias=(C * np.float32(2.0)).astype(np.float32))
    np.testing.assert_array_equal(got, expected)  # bit for bit: onnxruntime computes the same maths
    fp32 = (0.5 * (2 * x.reshape(6, 16) @ W) @ G.T + 2 * C).astype(np.float32)
    assert np.abs(got - fp32).max() < (0.04 if reduce_range else 0.02) * np.abs(fp32).max()


@pytest.mark.parametrize("fmt", ["qdq", "onnxruntime", "onnxq"])
def test_matmul_absorbs_the_bias_add_that_alone_reads_it(fmt: str, run_ort) -> None:
    bias = RNG.standard_normal(24).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["a"], name="mm"),
         helper.make_node("Add", ["b", "a"], ["y"], name="bias_add")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 24])],
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(bias, "b")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    conversion = onnxq.convert_dynamic(model, format=fmt)
    entries = {n.name: (n.quantized, n.kind, n.fused_into) for n in conversion.report.nodes}
    assert entries == {"mm": (True, "dynamic_matmul", None), "bias_add": (True, None, "mm")}
    nodes = conversion.model.graph.node
    if fmt != "qdq":
        fused = "DynamicQuantizeMatMul" if fmt == "onnxruntime" else "DynamicMatMul"
        assert [n.op_type for n in nodes] == [fused] and len(nodes[0].input) == 5
    else:
        assert [n.op_type for n in nodes][-1] == "Add"  # after the scale Mul, as onnxruntime fuses it
    x = RNG.standard_normal((2, 3, 16)).astype(np.float32)
    (got,) = run_ort(conversion.model, {"x": x})
    w = quantize_channels(W, SPEC, (1,))
    expected = dynamic_matmul(x.reshape(6, 16), w.values.T, w.scale, bias=bias).reshape(2, 3, 24)
    np.testing.assert_array_equal(got, expected)


def test_onnxq_format_keeps_the_qdq_form_for_weights_with_zero_points_and_says_why(run_ort) -> None:
    from onnxq.qconfig import DYNAMIC_ACTIVATION, QConfig, QConfigMapping, QSpec

    asymmetric = QConfig(DYNAMIC_ACTIVATION, QSpec("uint8", observer="minmax"))
    mapping = QConfigMapping(get_default_qconfig("per_channel_dynamic")).set_node_name("gemm", asymmetric)
    conversion = onnxq.convert_dynamic(_model(), format="onnxq", qconfig_mapping=mapping)
    ops = _ops(conversion.model)
    assert ops["DynamicMatMul"] == 2 and ops["MatMulInteger"] == 1
    assert any(n.startswith("gemm: its weights are asymmetric uint8") for n in conversion.report.pass_notes)
    x = RNG.standard_normal((2, 3, 16)).astype(np.float32)
    (fp32,) = run_ort(_model(), {"x": x})
    (got,) = run_ort(conversion.model, {"x": x})
    assert np.abs(got - fp32).max() < 0.02 * np.abs(fp32).max()


def test_onnxq_format_keeps_a_matmul_with_a_weight_that_is_not_constant_in_float(run_ort) -> None:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [16, 24])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 24])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    conversion = onnxq.convert_dynamic(model, format="onnxq")
    (entry,) = conversion.report.nodes
    assert not entry.quantized and entry.reason == "weight 'w' is not a constant"
    assert [n.op_type for n in conversion.model.graph.node] == ["MatMul"]
