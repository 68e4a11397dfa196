"""``onnxq quantize --calib`` with .npy directories and image folders, and ``--preprocess``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from onnxq.cli import main
from onnxq.demo import asset_path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The bundled digits model (input float32[batch, 1, 8, 8], values 0..1)."""
    shutil.copy(asset_path("digits_cnn.onnx"), tmp_path / "model.onnx")
    return tmp_path


def _digits() -> np.ndarray:
    with np.load(asset_path("digits_calib.npz")) as z:
        return z["input"]


def _images(directory: Path, count: int = 12) -> Path:
    image = pytest.importorskip("PIL.Image")
    directory.mkdir()
    for i, x in enumerate(_digits()[:count]):
        image.fromarray(np.rint(x[0] * 255).astype(np.uint8), mode="L").save(directory / f"{i:03d}.png")
    return directory


def _quantize(work: Path, capsys: pytest.CaptureFixture[str], *extra: object) -> tuple[int, str]:
    code = main([str(a) for a in ["quantize", work / "model.onnx", "-o", work / "out.onnx", *extra]])
    return code, capsys.readouterr().err


def test_calib_image_folder_without_preprocess_says_what_it_inferred(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _quantize(work, capsys, "--calib", _images(work / "imgs"), "--no-progress")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "image preprocessing" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("onnxq: warning: no image preprocessing given: size 8x8, layout NCHW")
    assert "channel_order L" in warnings[0] and (work / "out.onnx").is_file()


def test_calib_image_folder_with_a_json_preprocess_file(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = work / "pre.json"
    spec.write_text(
        json.dumps({"version": 1, "size": [8, 8], "channel_order": "L", "interpolation": "nearest"})
    )
    code, err = _quantize(
        work, capsys, "--calib", _images(work / "imgs"), "--preprocess", spec, "--no-progress"
    )
    assert code == 0, err
    assert "no image preprocessing given" not in err


def test_calib_directory_per_input_of_npy_files(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "calib" / "input").mkdir(parents=True)
    for i, part in enumerate(np.array_split(_digits(), 3)):
        np.save(work / "calib" / "input" / f"{i}.npy", part)
    code, err = _quantize(work, capsys, "--calib", work / "calib", "--no-progress")
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ("--preprocess", "imagenet"),
            ("channel_order 'RGB' does not give the 1 channel(s) of input 'input'", "float32[?, 1, 8, 8]"),
        ),
        (("--preprocess", "imagenet21k"), ("unknown image preprocessing 'imagenet21k'",)),
        (("--preprocess", "missing.json"), ("missing.json", "does not exist")),
    ],
)
def test_calib_image_preprocess_errors_are_one_line(
    work: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    code, err = _quantize(work, capsys, "--calib", _images(work / "imgs", 2), *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("onnxq: error: "), err
    assert all(n in lines[0] for n in needles), lines[0]
    assert not (work / "out.onnx").exists()


def test_calib_preprocess_needs_image_calibration_data(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(work / "calib.npz", input=_digits())
    code, err = _quantize(work, capsys, "--calib", work / "calib.npz", "--preprocess", "imagenet")
    assert code == 2 and "image preprocessing was given, but this calibration data is arrays" in err
    code, err = _quantize(work, capsys, "--preprocess", "imagenet")
    assert code == 2 and "--preprocess applies to image calibration data: give --calib too" in err


def test_calib_bad_image_fails_before_calibrating_naming_it(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _images(work / "imgs", 3)
    (folder / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, err = _quantize(work, capsys, "--calib", folder, "--no-progress")
    assert (
        code == 2 and "zz.png" in err and len(err.strip().splitlines()) == 2
    )  # the inference warning + error
