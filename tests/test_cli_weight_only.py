"""``onnxq quantize --mode weight-only``: no calibration, dtypes and formats, the report; bad options
exit 2 with one line and write nothing."""

from __future__ import annotations

import json

import onnx
import pytest

import onnxq


def _quantize(onnxq_cli, work, *options: object) -> tuple[int, str, str]:
    return onnxq_cli(
        "quantize", work / "model.onnx", "-o", work / "q.onnx", "--mode", "weight-only", *options
    )


@pytest.mark.parametrize("dtype", ["int8", "int4"])
def test_weight_only_mode_writes_the_model_and_a_report(digits_work, onnxq_cli, dtype) -> None:
    report = digits_work / "r.json"
    code, stdout, err = _quantize(onnxq_cli, digits_work, "--weight-dtype", dtype, "--block-size", "32",
                                  "--report", report)  # fmt: skip
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["mode"] == "weight_only" and data["num_samples"] == 0
    assert {n["op_type"] for n in data["nodes"] if n["quantized"]} == {"Conv", "Gemm"}
    assert "weight-only: activations stay float, no calibration" in stdout
    model = onnx.load(str(digits_work / "q.onnx"))
    assert "DequantizeLinear" in {n.op_type for n in model.graph.node}



def test_onnxq_format_writes_the_int4_custom_op(digits_work, onnxq_cli) -> None:
    code, _, err = _quantize(onnxq_cli, digits_work, "--weight-dtype", "int4", "--format", "onnxq")
    assert code == 0, err
    model = onnx.load(str(digits_work / "q.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert "DynamicMatMulNBits" in ops and "Gemm" not in ops  # the Conv weights: the qdq form
    assert {o.domain: o.version for o in model.opset_import}["ai.onnxq"] == 1

@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--weight-dtype", "int4", "--block-size", "33"], "block_size must be a power of two"),
        (["--weight-dtype", "uint8"], "unknown weight dtype 'uint8'"),
        (["--format", "qdq-uint8"], "unknown weight-only format 'qdq-uint8'"),
        (["--op-types", "LSTM"], "unknown op type(s)"),
        (["--per-tensor"], "--per-tensor does not apply to --mode weight-only"),
        (["--method", "gptq"], "--method gptq needs --calib"),
        (["--method", "sgd"], "unknown weight method 'sgd'"),
        (["--sequential"], "--sequential applies to --mode weight-only --method gptq"),
    ],
)
def test_bad_options_exit_2_with_one_line(digits_work, onnxq_cli, options, needle) -> None:
    code, _, err = _quantize(onnxq_cli, digits_work, *options)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("onnxq: error: "), err
    assert needle in lines[0]
    assert not (digits_work / "q.onnx").exists()


def test_block_size_belongs_to_weight_only(digits_work, onnxq_cli) -> None:
    code, _, err = onnxq_cli("quantize", digits_work / "model.onnx", "-o", digits_work / "q.onnx",
                             "--mode", "dynamic", "--block-size", "32")  # fmt: skip
    assert code == 2 and "--block-size applies to --mode weight-only" in err


@pytest.mark.parametrize(
    "extra", [[], ["--sequential", "--scale-search", "minmax"]], ids=["one-run", "sequential"]
)
def test_gptq_reads_the_calibration_data(digits_work, onnxq_cli, extra) -> None:
    report = digits_work / "r.json"
    code, _, err = _quantize(onnxq_cli, digits_work, "--method", "gptq", "--calib", digits_work / "calib.npz",
                             "--no-progress", "--report", report, *extra)  # fmt: skip
    assert code == 0, err
    nodes = json.loads(report.read_text())["nodes"]
    assert {n["op_type"] for n in nodes if n["quantized"]} == {"Conv", "Gemm"}


def test_a_model_over_the_protobuf_limit_goes_in_and_out_with_external_data(
    digits_work, onnxq_cli, monkeypatch
) -> None:
    """The 2 GB limit lowered to a few kB: the input is read from external data, the output is
    written with external data without ever being one proto, and it gives the same outputs as the
    same model quantized in one piece."""
    import numpy as np

    from onnxq import api_weight_only, io
    from onnxq.runtime import make_session

    code, _, err = _quantize(onnxq_cli, digits_work, "--weight-dtype", "int8")
    assert code == 0, err
    whole = make_session(str(digits_work / "q.onnx"), optimize=False)
    big_in = digits_work / "big.onnx"
    io.save_model(io.load_model(digits_work / "model.onnx"), big_in, external_data=True)
    for module in (io, api_weight_only):
        monkeypatch.setattr(module, "AUTO_EXTERNAL_BYTES", 4096)

    def refuse(model: object) -> None:
        raise AssertionError("the big model was made into one proto")

    monkeypatch.setattr(api_weight_only, "to_proto", refuse)
    out = digits_work / "big.int8.onnx"
    code, _, err = onnxq_cli("quantize", big_in, "-o", out, "--mode", "weight-only", "--weight-dtype", "int8")
    assert code == 0, err
    assert (digits_work / "big.int8.onnx.data").stat().st_size > 4096
    split = make_session(str(out), optimize=False)
    x = np.random.default_rng(0).standard_normal((3, *whole.get_inputs()[0].shape[1:])).astype(np.float32)
    name = whole.get_inputs()[0].name
    np.testing.assert_array_equal(split.run(None, {name: x})[0], whole.run(None, {name: x})[0])
    with pytest.raises(onnxq.OnnxqError, match=r"over protobuf's 2 GB limit: write it with .*save\(path\)"):
        _ = onnxq.convert_weight_only(big_in, "int8").model
