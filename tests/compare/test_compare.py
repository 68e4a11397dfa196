"""``onnxq.compare`` on the digits CNN quantized by onnxq and by onnxruntime's quantize_static:
the metrics against numpy on the same data, a corrupted layer ranked first, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from onnxq.compare import compare
from onnxq.errors import OnnxqError

TOOLS = ["onnxq", "onnxruntime"]


def _run_with_outputs(path: Path, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model with ``names`` as outputs, in plain onnxruntime, no optimisation."""
    proto = onnx.load(path)
    have = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have and n != "input")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    fetch = [n for n in names if n != "input"]
    return {"input": x, **dict(zip(fetch, sess.run(fetch, {"input": x}), strict=True))}


def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    r, q = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    return float(10 * np.log10(np.sum(r**2) / np.sum((r - q) ** 2)))


@pytest.mark.parametrize("tool", TOOLS)
def test_accumulated_metrics_equal_numpy_on_the_same_data(digits_qdq, tool: str) -> None:
    fp32, qdq, calib = digits_qdq(tool)
    x = np.load(calib)["input"]
    report = compare(fp32, qdq, [{"input": x}])
    assert report.num_samples == len(x) and len(report.layers) >= 8 and not report.unmatched
    ref = _run_with_outputs(fp32, [layer.tensor for layer in report.layers], x)
    got = _run_with_outputs(qdq, [layer.dequantized for layer in report.layers], x)
    for layer in report.layers:
        r, q = ref[layer.tensor].astype(np.float64), got[layer.dequantized].astype(np.float64)
        assert math.isclose(layer.accumulated.sqnr_db, _sqnr(r, q), rel_tol=1e-6), layer.tensor
        cos = np.dot(r.ravel(), q.ravel()) / np.linalg.norm(r) / np.linalg.norm(q)
        assert math.isclose(layer.accumulated.cosine, cos, rel_tol=1e-6)
        assert math.isclose(layer.accumulated.max_abs_error, float(np.max(np.abs(r - q))), rel_tol=1e-6)
        assert sum(layer.histogram.counts) + layer.histogram.below + layer.histogram.above == r.size
    stem = report.layers[1]  # reads the graph input: nothing upstream to accumulate
    assert stem.introduced == stem.accumulated


def _dq(proto: onnx.ModelProto, name: str) -> np.ndarray:
    """The value of the DequantizeLinear output ``name`` whose input is an initializer."""
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    node = next(n for n in proto.graph.node if n.output[0] == name)
    q, s = inits[node.input[0]].astype(np.float64), inits[node.input[1]].astype(np.float64)
    z = inits[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    shape = [-1 if i == axis and np.ndim(s) else 1 for i in range(q.ndim)]
    return (q - np.reshape(z, shape)) * np.reshape(s, shape)


def _fake_quant(x: np.ndarray, scale: float, zp: int, qmin: int, qmax: int) -> np.ndarray:
    return (np.clip(np.round(x.astype(np.float64) / scale) + zp, qmin, qmax) - zp) * scale


def test_introduced_error_of_the_classifier_equals_numpy(digits_qdq) -> None:
    fp32, qdq, calib = digits_qdq("onnxq")
    x = np.load(calib)["input"]
    report = compare(fp32, qdq, [{"input": x}])
    logits = next(layer for layer in report.layers if layer.tensor == "logits")
    proto = onnx.load(qdq)
    gemm = next(n for n in proto.graph.node if n.op_type == "Gemm")
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    qnodes = {n.input[0]: n for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    ref = _run_with_outputs(fp32, ["/Flatten_output_0", "logits"], x)

    def qparams(tensor: str) -> tuple[float, int, int, int]:
        node = qnodes[tensor]
        zp = inits[node.input[2]]
        info = np.iinfo(zp.dtype)
        return float(inits[node.input[1]]), int(zp), int(info.min), int(info.max)

    a = _fake_quant(ref["/Flatten_output_0"], *qparams("/Flatten_output_0"))
    w, b = _dq(proto, gemm.input[1]), _dq(proto, gemm.input[2])
    trans_b = next((at.i for at in gemm.attribute if at.name == "transB"), 0)
    y = a @ (w.T if trans_b else w) + b
    expected = _fake_quant(y, *qparams(gemm.output[0]))
    assert math.isclose(logits.introduced.sqnr_db, _sqnr(ref["logits"], expected), rel_tol=1e-4)


@pytest.mark.parametrize("tool", TOOLS)
def test_a_layer_with_a_corrupted_weight_scale_ranks_first(digits_qdq, tool: str, tmp_path: Path) -> None:
    fp32, qdq, calib = digits_qdq(tool)
    proto = onnx.load(qdq)
    producers = {o: n for n in proto.graph.node for o in n.output}
    conv = next(n for n in proto.graph.node if n.op_type == "Conv" and "conv1" in n.name)
    scale_name = producers[conv.input[1]].input[1]  # the weight's DequantizeLinear scale
    for init in proto.graph.initializer:
        if init.name == scale_name:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 3, init.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, bad)
    report = compare(fp32, bad, [{"input": np.load(calib)["input"]}], limit=8)
    assert report.num_samples == 8
    worst = report.ranked()[0]
    assert worst.tensor == "/block/Relu_output_0" and worst.introduced.sqnr_db < 10
    second = report.ranked()[1]
    assert second.introduced.sqnr_db > 30  # the readers of the bad layer see exact fp32 inputs


def test_models_with_different_outputs_are_refused(digits_qdq, tmp_path: Path) -> None:
    fp32, qdq, calib = digits_qdq("onnxq")
    proto = onnx.load(qdq)
    proto.graph.output[0].name = "renamed"
    proto.graph.node[-1].output[0] = "renamed"
    with pytest.raises(OnnxqError, match="outputs differ"):
        compare(fp32, proto, [{"input": np.load(calib)["input"]}])
