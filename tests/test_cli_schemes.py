"""``onnxq quantize`` with the version-2 schemes: weight-only needs no calibration data, 16-bit
activations from the command line, and the one-line error when static quantization has no data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from onnxq.cli import main
from onnxq.demo import asset_path
from onnxq.inspect import inspect_model


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copy(asset_path("digits_cnn.onnx"), tmp_path / "model.onnx")
    shutil.copy(asset_path("digits_calib.npz"), tmp_path / "calib.npz")
    return tmp_path


def _run(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_weight_only_int4_quantizes_without_calibration_data(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qconfig = work / "int4.json"
    weight = {"dtype": "int4", "symmetric": True, "granularity": {"type": "per_block", "block_size": 32}}
    qconfig.write_text(json.dumps({"version": 2, "global": {"activation": None, "weight": weight}}))
    out = work / "model.int4.onnx"
    code, stdout, err = _run(["quantize", work / "model.onnx", "-o", out, "--qconfig", qconfig], capsys)
    assert code == 0, err
    assert "opset upgraded from 17 to 21" in stdout
    summary = inspect_model(out)
    assert len(summary.weight_only_nodes) == 5 and summary.opsets["ai.onnx"] == 21
    onnx.checker.check_model(onnx.load(str(out)))


def test_static_quantization_without_calibration_data_is_one_line(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["quantize", work / "model.onnx", "-o", work / "q.onnx"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("onnxq: error: --calib is required")
    assert not (work / "q.onnx").exists()


def test_int16_activations_from_the_command_line(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = work / "q16.onnx"
    argv = ["quantize", work / "model.onnx", "-o", out, "--calib", work / "calib.npz", "--activation-dtype",
            "int16", "--no-progress"]  # fmt: skip
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    activations = [q for q in inspect_model(out).qparams if q.kind == "activation"]
    assert activations and {q.dtype for q in activations} == {"int16"}
