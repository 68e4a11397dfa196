"""``onnxq quantize --accuracy-budget`` on the bundled digits CNN: the report's accuracy section,
bad input."""

from __future__ import annotations

import json
from pathlib import Path


def test_budget_report_lists_float_layers_and_intervals(digits_work: Path, onnxq_cli) -> None:
    out, report = digits_work / "q.onnx", digits_work / "r.json"
    code, stdout, _ = onnxq_cli(
        "quantize", digits_work / "model.onnx", "-o", out, "--calib", digits_work / "calib.npz",
        "--per-tensor", "--activation-dtype", "int8", "--accuracy-budget", "40", "--metric", "sqnr",
        "--report", report, "--no-progress",
    )  # fmt: skip
    assert code == 0 and "meets it" in stdout and out.is_file()
    acc = json.loads(report.read_text())["accuracy"]
    assert acc["met"] and acc["float_layers"] and acc["final"]["value"] >= 40.0
    assert acc["all_int8"]["value"] < 40.0 and acc["bootstrap_resamples"] == 1000
    lo, hi = acc["final"]["ci95"]
    assert lo <= acc["final"]["value"] <= hi and acc["final"]["samples_needed"] > 0


def test_bad_budget_input_is_one_line_exit_2(digits_work: Path, onnxq_cli) -> None:
    calib = digits_work / "calib.npz"
    base = ["quantize", digits_work / "model.onnx", "-o", digits_work / "q.onnx", "--calib", calib]
    cases = [
        (["--accuracy-budget", "-1"], "points of agreement lost"),
        (["--held-out", calib], "--held-out applies to --accuracy-budget"),
        (["--fallback", "int16"], "--fallback applies to --accuracy-budget"),
        (["--accuracy-budget", "1", "--held-out", digits_work / "q.onnx"], "q.onnx"),
    ]
    for extra, message in cases:
        code, _, stderr = onnxq_cli(*base, *extra)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not (digits_work / "q.onnx").exists()


def test_budget_int16_fallback_writes_a_16_bit_model_onnxruntime_runs(digits_work: Path, onnxq_cli) -> None:
    import onnx

    out, report = digits_work / "q16.onnx", digits_work / "r16.json"
    code, stdout, _ = onnxq_cli(
        "quantize", digits_work / "model.onnx", "-o", out, "--calib", digits_work / "calib.npz",
        "--per-tensor", "--activation-dtype", "int8", "--accuracy-budget", "40", "--metric", "sqnr",
        "--fallback", "int16", "--report", report, "--no-progress",
    )  # fmt: skip
    assert code == 0 and "at 16 bit" in stdout
    acc = json.loads(report.read_text())["accuracy"]
    assert acc["met"] and acc["fallback"] == "int16" and acc["float_layers"]
    model = onnx.load(str(out))  # written only after onnxruntime loaded it
    assert any(i.data_type == onnx.TensorProto.INT16 for i in model.graph.initializer)
