"""``onnxq quantize --mode dynamic``: no calibration, formats, op types, the report; bad options
exit 2 with one line and write nothing."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper


def _quantize(onnxq_cli, work, *options: object) -> tuple[int, str, str]:
    """``onnxq quantize model.onnx -o q.onnx --mode dynamic OPTIONS`` in ``work``."""
    return onnxq_cli("quantize", work / "model.onnx", "-o", work / "q.onnx", "--mode", "dynamic", *options)


def _one_error(code: int, err: str, needle: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("onnxq: error: "), err
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize("fmt", ["qdq", "onnxruntime", "qdq-uint8", "onnxruntime-uint8", "onnxq"])
def test_dynamic_mode_writes_the_model_and_a_report_without_calibration(digits_work, onnxq_cli, fmt) -> None:
    report = digits_work / "r.json"
    options = (
        ["--format", "onnxruntime", "--weight-dtype", "uint8"]
        if fmt == "onnxruntime-uint8"
        else ["--format", fmt]
    )
    code, stdout, err = _quantize(onnxq_cli, digits_work, *options, "--report", report)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["mode"] == "dynamic" and data["num_samples"] == 0
    kinds = {n["op_type"]: n["kind"] for n in data["nodes"] if n["quantized"]}
    assert kinds == {"Conv": "weight_only", "Gemm": "dynamic_matmul"}
    assert "dynamic: activations quantized at run time, no calibration" in stdout
    model = onnx.load(str(digits_work / "q.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert ("DynamicQuantizeMatMul" in ops) == fmt.startswith("onnxruntime")
    assert ("MatMulInteger" in ops) == fmt.startswith("qdq")
    assert ("DynamicMatMul" in ops) == (fmt == "onnxq")
    int8 = any(t.data_type == TensorProto.INT8 for t in model.graph.initializer)
    assert int8 == (not fmt.endswith("uint8"))


def test_dynamic_mode_warns_once_and_ignores_calibration_data(digits_work, onnxq_cli) -> None:
    calib = digits_work / "calib.npz"
    code, _, err = _quantize(onnxq_cli, digits_work, "--calib", calib)
    assert code == 0
    assert err.strip().splitlines() == [
        f"onnxq: warning: --mode dynamic quantizes activations at run time: --calib {calib} is ignored"
    ]


def test_dynamic_mode_op_types_and_per_tensor(digits_work, onnxq_cli) -> None:
    report = digits_work / "r.json"
    code, _, err = _quantize(onnxq_cli, digits_work, "--op-types", "Gemm", "--per-tensor", "--report", report)
    assert code == 0, err
    nodes = json.loads(report.read_text())["nodes"]
    assert {n["op_type"] for n in nodes if n["quantized"]} == {"Gemm"}
    assert {n["reason"] for n in nodes if n["op_type"] == "Conv"} == {
        "op type Conv is not among the op types asked for"
    }
    scales = [
        t for t in onnx.load(str(digits_work / "q.onnx")).graph.initializer if t.name.endswith("_scale")
    ]
    assert scales and all(len(t.dims) == 0 for t in scales)


@pytest.mark.parametrize(
    ("option", "most"), [([], 63), (["--no-reduce-range"], 127), (["--reduce-range"], 63)]
)
def test_dynamic_mode_reduce_range_gives_the_gemm_7_bit_weights(digits_work, onnxq_cli, option, most) -> None:
    code, _, err = _quantize(onnxq_cli, digits_work, "--op-types", "Gemm", *option)
    assert code == 0, err
    qmodel = onnx.load(str(digits_work / "q.onnx"))
    int8 = [t for t in qmodel.graph.initializer if t.data_type == TensorProto.INT8 and len(t.dims) == 2]
    (weight,) = [numpy_helper.to_array(t) for t in int8]
    assert int(np.abs(weight).max()) == most


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--op-types", "MatMul,Lstm"],
         "unknown op type(s) for dynamic quantization: 'Lstm' (known: MatMul, Gemm, LSTM, GRU, RNN"),
        (["--format", "onnxq", "--weight-dtype", "uint8"], "format 'onnxq' runs int8 weights"),
        (["--activation-dtype", "int8"], "--activation-dtype does not apply"),
    ],
)  # fmt: skip
def test_bad_dynamic_options_exit_2_with_one_line_and_write_nothing(
    digits_work, onnxq_cli, options, needle
) -> None:
    code, _, err = _quantize(onnxq_cli, digits_work, *options)
    _one_error(code, err, needle)
    assert not (digits_work / "q.onnx").exists()


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--format", "onnxruntime"], "--format onnxruntime"),
        (["--op-types", "MatMul"], "--op-types"),
        (["--weight-dtype", "uint8"], "--weight-dtype"),
        (["--no-reduce-range"], "--reduce-range / --no-reduce-range"),
    ],
)
def test_dynamic_options_are_refused_in_static_mode(digits_work, onnxq_cli, option, needle) -> None:
    work = digits_work
    calib = work / "calib.npz"
    code, _, err = onnxq_cli(
        "quantize", work / "model.onnx", "-o", work / "q.onnx", "--calib", calib, *option
    )
    _one_error(code, err, f"{needle} applies to --mode dynamic")
    assert not (work / "q.onnx").exists()
