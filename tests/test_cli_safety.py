"""Bad input never loses data: every output path is checked against every input and other output,
symbolic links included; nothing is written when a check fails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from onnxq.cli import main
from onnxq.demo import asset_path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copy(asset_path("digits_cnn.onnx"), tmp_path / "model.onnx")
    shutil.copy(asset_path("digits_calib.npz"), tmp_path / "calib.npz")
    (tmp_path / "data").mkdir()
    shutil.copy(asset_path("digits_calib.npz"), tmp_path / "data" / "a.npz")
    return tmp_path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["-o", "out.onnx", "--calib", "calib.npz", "--report", "model.onnx"],
            "report 'model.onnx' is the input model",
        ),
        (
            ["-o", "out.onnx", "--calib", "calib.npz", "--report", "out.onnx"],
            "report 'out.onnx' is the output",
        ),
        (["-o", "calib.npz", "--calib", "calib.npz"], "output 'calib.npz' is the calibration data"),
        (["-o", "data/a.npz", "--calib", "data"], "output 'data/a.npz' is the calibration data"),
        (["-o", "link.onnx", "--calib", "calib.npz"], "output 'link.onnx' is the input model"),
        (
            ["-o", "out.onnx", "--calib", "calib.npz", "--report", "calib.npz"],
            "report 'calib.npz' is the calibration",
        ),
        (
            ["-o", "m", "--calib", "calib.npz", "--report", "m.data"],
            "report 'm.data' is the output's external data",
        ),
    ],
)
def test_an_output_that_is_an_input_or_another_output_is_refused(
    work: Path,
    extra: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(work)
    os.symlink(work / "model.onnx", work / "link.onnx")
    before = _snapshot(work)
    code = main(["quantize", "model.onnx", *extra, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert _snapshot(work) == before  # nothing written, nothing replaced
