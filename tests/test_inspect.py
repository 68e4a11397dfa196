"""``onnxq.inspect``: op counts, which nodes run quantized, constant bytes, Q/DQ pairs, qparams —
on a hand-built QDQ graph, on the bundled fp32 model, on onnxruntime's quantizer output and on ours."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxq.demo import asset_path
from onnxq.errors import ModelLoadError
from onnxq.inspect import NodeRef, format_summary, inspect_model


def _qdq_model(relu_is_output: bool = False) -> onnx.ModelProto:
    """x -Q/DQ-> Conv(DQ(int8 W, per channel), DQ(int32 B)) -> Relu -Q/DQ-> Reshape -> Softmax."""
    w = np.arange(-12, 12, dtype=np.int8).reshape(3, 2, 2, 2)
    w_scale = np.array([0.5, 0.25, 0.125], np.float32)
    b = np.array([10, -20, 30], np.int32)
    b_scale = (np.float32(0.02) * w_scale).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(128, np.uint8), "x_zp"),
        numpy_helper.from_array(w, "w_q"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(3, np.int8), "w_zp"),
        numpy_helper.from_array(b, "b_q"),
        numpy_helper.from_array(b_scale, "b_scale"),
        numpy_helper.from_array(np.array(0.1, np.float32), "y_scale"),
        numpy_helper.from_array(np.array(0, np.uint8), "y_zp"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="q_x"),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], name="dq_w", axis=0),
        helper.make_node("DequantizeLinear", ["b_q", "b_scale"], ["b"], name="dq_b", axis=0),
        helper.make_node("Conv", ["x_dq", "w", "b"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "y_scale", "y_zp"], ["r_q"], name="q_r"),
        helper.make_node("DequantizeLinear", ["r_q", "y_scale", "y_zp"], ["r_dq"], name="dq_r"),
        helper.make_node("Reshape", ["r_dq", "shape"], ["flat"], name="reshape"),
        helper.make_node("Softmax", ["flat"], ["y"], name="softmax"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 27])]
    if relu_is_output:
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 3, 3, 3]))
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])], outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def test_inspect_classifies_hand_built_qdq_graph() -> None:
    s = inspect_model(_qdq_model())
    assert s.opsets == {"ai.onnx": 13}
    assert s.op_counts == {
        "DequantizeLinear": 4,
        "QuantizeLinear": 2,
        "Conv": 1,
        "Relu": 1,
        "Reshape": 1,
        "Softmax": 1,
    }
    assert s.quantized_nodes == (
        NodeRef("conv", "Conv"),
        NodeRef("relu", "Relu"),
        NodeRef("reshape", "Reshape"),
    )
    assert s.float_nodes == (NodeRef("softmax", "Softmax"),)
    assert s.qdq_pairs == 2
    # int8: W (24) + its zero points (3); float32: scales 1 + 3 + 3 + 1
    assert s.constant_bytes == {"int8": 27, "float32": 4 * 8, "int32": 12, "int64": 16, "uint8": 2}


def test_inspect_reads_scales_and_zero_points_of_each_quantized_tensor() -> None:
    by_tensor = {q.tensor: q for q in inspect_model(_qdq_model()).qparams}
    assert set(by_tensor) == {"x", "w_q", "b_q", "r"}
    x, w, b, r = by_tensor["x"], by_tensor["w_q"], by_tensor["b_q"], by_tensor["r"]
    assert (x.kind, x.dtype, x.axis, x.zero_point) == ("activation", "uint8", None, (128,))
    assert x.scale == pytest.approx((0.02,))
    assert (w.kind, w.dtype, w.axis, w.scale, w.zero_point) == (
        "constant",
        "int8",
        0,
        (0.5, 0.25, 0.125),
        (0, 0, 0),
    )
    assert (b.kind, b.dtype, b.axis, b.zero_point) == ("constant", "int32", 0, (0, 0, 0))
    assert b.scale == pytest.approx((0.01, 0.005, 0.0025))
    assert (r.dtype, r.zero_point) == ("uint8", (0,))


def test_inspect_does_not_count_relu_as_fused_when_it_is_a_graph_output() -> None:
    s = inspect_model(_qdq_model(relu_is_output=True))
    assert NodeRef("relu", "Relu") in s.float_nodes
    assert NodeRef("conv", "Conv") in s.quantized_nodes


def test_inspect_reports_fp32_model_as_all_float() -> None:
    path = asset_path("digits_cnn.onnx")
    s = inspect_model(path)
    proto = onnx.load(str(path))
    assert s.opsets == {"ai.onnx": 17}
    assert s.op_counts["Conv"] == 4 and s.op_counts["Gemm"] == 1
    assert sum(s.op_counts.values()) == len(proto.graph.node)
    assert s.quantized_nodes == () and s.qdq_pairs == 0 and s.qparams == ()
    assert len(s.float_nodes) == len(proto.graph.node) - s.op_counts.get("Constant", 0)
    init_bytes = sum(numpy_helper.to_array(t).nbytes for t in proto.graph.initializer)
    assert s.constant_bytes["float32"] == init_bytes + 8  # + the two Clip bounds held in Constant nodes
    assert s.file_bytes == path.stat().st_size


def test_inspect_agrees_with_onnxruntime_quantizer_output(tmp_path: Path) -> None:
    quant = pytest.importorskip("onnxruntime.quantization")
    with np.load(asset_path("digits_calib.npz")) as z:
        calib = z["input"]

    class Reader(quant.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calib[i : i + 16]} for i in range(0, 64, 16)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    out = tmp_path / "ort.int8.onnx"
    quant.quantize_static(
        str(asset_path("digits_cnn.onnx")),
        str(out),
        Reader(),
        quant_format=quant.QuantFormat.QDQ,
        per_channel=True,
    )
    s = inspect_model(out)
    proto = onnx.load(str(out))
    compute = [
        n for n in proto.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear", "Constant")
    ]
    assert [n.name for n in s.quantized_nodes] == [n.name for n in compute]
    assert s.float_nodes == ()
    assert s.qdq_pairs == s.op_counts["QuantizeLinear"]
    weights = [q for q in s.qparams if q.kind == "constant" and q.dtype == "int8"]
    assert sorted(len(q.scale) for q in weights) == [10, 32, 32, 32, 64]
    assert all(q.axis == 0 and set(q.zero_point) == {0} for q in weights)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    dq = next(
        n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == weights[0].tensor
    )
    np.testing.assert_allclose(weights[0].scale, inits[dq.input[1]], rtol=1e-7)
    assert s.constant_bytes["int8"] > 20 * s.constant_bytes.get("float32", 0)


def test_inspect_agrees_with_onnxq_report(tmp_path: Path) -> None:
    from onnxq.api import prepare
    from onnxq.calibration.sources import load_calibration_data

    prepared = prepare(asset_path("digits_cnn.onnx"), "x86")
    prepared.calibrate(load_calibration_data(asset_path("digits_calib.npz")), progress=False)
    s = inspect_model(prepared.convert())
    # every node the report calls quantized runs between Q/DQ; the graph may wrap more (a Relu
    # between two Q/DQ pairs is quantized in effect even where the report calls it float)
    assert {n.name for n in prepared.report.quantized} <= {n.name for n in s.quantized_nodes}
    assert {n.name for n in s.float_nodes} <= {n.name for n in prepared.report.float_nodes}
    assert len(s.quantized_nodes) >= 12
    weights = [q for q in s.qparams if q.kind == "constant" and q.dtype == "int8"]
    assert len(weights) == 5 and all(q.axis == 0 for q in weights)  # x86: per channel, Conv and Gemm axis 0


def test_inspect_counts_external_data_in_file_size(tmp_path: Path) -> None:
    model = onnx.load(str(asset_path("digits_cnn.onnx")))
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="ext.bin", size_threshold=0)
    s = inspect_model(path)
    assert s.file_bytes == path.stat().st_size + (tmp_path / "ext.bin").stat().st_size
    assert s.constant_bytes == inspect_model(asset_path("digits_cnn.onnx")).constant_bytes


def test_inspect_raises_model_load_error_on_garbage(tmp_path: Path) -> None:
    (tmp_path / "g.onnx").write_bytes(b"\x00\xff" * 100)
    with pytest.raises(ModelLoadError, match=r"g\.onnx"):
        inspect_model(tmp_path / "g.onnx")


def test_format_summary_lists_float_nodes_and_scales_on_request() -> None:
    s = inspect_model(_qdq_model())
    text = format_summary(s)
    assert "4 compute: 3 quantized, 1 float; 2 Q/DQ pairs" in text
    assert "softmax (Softmax)" in text
    assert "conv (Conv)" not in text and "zero point" not in text
    full = format_summary(s, scales=True, nodes=True)
    assert "conv (Conv)" in full
    w_line = next(line for line in full.splitlines() if line.startswith("w_q "))
    assert "axis 0: 3 in [0.125, 0.5]" in w_line and w_line.rstrip().endswith(" 0")
    x_line = next(line for line in full.splitlines() if line.startswith("x "))
    assert "0.02" in x_line and x_line.rstrip().endswith("128")


def test_summary_to_dict_is_json_and_complete() -> None:
    s = inspect_model(_qdq_model())
    data = json.loads(json.dumps(s.to_dict()))
    assert data["quantized_nodes"][0] == {"name": "conv", "op_type": "Conv"}
    assert data["qdq_pairs"] == 2
    assert {q["tensor"] for q in data["qparams"]} == {"x", "w_q", "b_q", "r"}


def test_weight_only_int4_model_is_summarised_as_weight_only() -> None:
    import onnxq
    from onnxq.qconfig import PerBlock, QConfig, QSpec

    qconfig = QConfig(None, QSpec("int4", symmetric=True, granularity=PerBlock(block_size=16)))
    qmodel = onnxq.prepare(asset_path("digits_cnn.onnx"), qconfig).convert()
    s = inspect_model(qmodel)
    assert {n.op_type for n in s.weight_only_nodes} == {"Conv", "Gemm"} and len(s.weight_only_nodes) == 5
    assert s.quantized_nodes == () and s.qdq_pairs == 0 and "int4" in s.constant_bytes
    weights = [q for q in s.qparams if q.kind == "constant"]
    assert len(weights) == 5 and all(q.block_size == 16 and q.axis == 1 for q in weights)
    text = format_summary(s, scales=True)
    assert "5 weight-only" in text and "blocks of 16" in text


def test_a_model_lowered_to_onnxq_ops_counts_as_quantized_and_is_not_quantized_again() -> None:
    import onnxq
    from onnxq.errors import UnsupportedModelError
    from onnxq.lower import lower

    calib = np.load(asset_path("digits_calib.npz"))["input"]
    qdq = onnxq.quantize_static(str(asset_path("digits_cnn.onnx")), [{"input": calib[:16]}], progress=False)
    lowered = lower(qdq).model
    summary = inspect_model(lowered)
    assert summary.float_nodes == () and len(summary.quantized_nodes) >= 9
    assert "ai.onnxq.QLinearConv" in summary.op_counts
    with pytest.raises(UnsupportedModelError, match="already quantized"):
        onnxq.prepare(lowered)
