"""``onnxq quantize --float-outputs`` (onnxq.cli_quantize): the model's output left float, said in
the summary and the report, with every output format; refused outside static quantization."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest


@pytest.mark.parametrize("fmt", ["qdq", "onnxq"])
def test_float_outputs_leaves_the_logits_float_and_reports_them(
    digits_work: Path, onnxq_cli, fmt: str
) -> None:
    out, report = digits_work / "q.onnx", digits_work / "q.json"
    code, stdout, err = onnxq_cli("quantize", digits_work / "model.onnx", "-o", out, "--calib",
                                  digits_work / "calib.npz", "--float-outputs", "--report", report,
                                  "--format", fmt, "--no-progress")  # fmt: skip
    assert code == 0, err
    assert "graph outputs kept float (float_outputs): logits" in stdout
    assert json.loads(report.read_text())["float_outputs"] == ["logits"]
    q = onnx.load(str(out))
    producers = {o: n for n in q.graph.node for o in n.output}
    assert producers["logits"].op_type == "Gemm"  # no DequantizeLinear after the last Gemm
    assert producers[producers["logits"].input[0]].op_type == "DequantizeLinear"
    if fmt == "onnxq":  # the convs are lowered, the last Gemm stays QDQ with a note
        assert "Gemm" in stdout and "float graph output" in stdout
        assert any(n.domain == "ai.onnxq" for n in q.graph.node)


def test_float_outputs_outside_static_mode_is_one_line_exit_2(digits_work: Path, onnxq_cli) -> None:
    code, _, err = onnxq_cli("quantize", digits_work / "model.onnx", "-o", digits_work / "q.onnx",
                             "--mode", "dynamic", "--float-outputs")  # fmt: skip
    assert code == 2 and "--float-outputs applies to --mode static" in err
    assert len(err.strip().splitlines()) == 1
    assert not (digits_work / "q.onnx").exists()
