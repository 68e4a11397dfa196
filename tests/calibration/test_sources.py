"""Calibration files on disk: the directory layouts of .npz and .npy files, checked before any run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxq.calibration.data import InputSpec, rebatch, validate_batches
from onnxq.calibration.sources import CalibrationFiles, count_samples, load_calibration_data
from onnxq.errors import CalibrationDataError

ONE = (InputSpec("x", np.dtype(np.float32), (None, 2), ("N", None)),)
TWO = (
    InputSpec("ids", np.dtype(np.int64), (None, 3), ("N", None)),
    InputSpec("mask", np.dtype(np.bool_), (None, 3), ("N", None)),
)


def _x(n: int, start: int) -> np.ndarray:
    return np.arange(start, start + 2 * n, dtype=np.float32).reshape(n, 2)


def test_flat_npy_and_npz_files_are_batches_in_name_order(tmp_path: Path) -> None:
    np.save(tmp_path / "b.npy", _x(3, 10))
    np.savez(tmp_path / "a.npz", x=_x(1, 0))
    np.save(tmp_path / "c.npy", _x(2, 20))
    (tmp_path / "README.txt").write_text("ignored")
    source = load_calibration_data(tmp_path)
    assert isinstance(source, CalibrationFiles)
    assert [f.name for f in source.files] == ["a.npz", "b.npy", "c.npy"]
    assert count_samples(source) == 6
    batches = list(validate_batches(ONE, source))
    assert [b["x"][0, 0] for b in batches] == [0, 10, 20]
    assert [n for _, n in rebatch(ONE, batches)] == [6]


def test_single_npy_file_feeds_a_one_input_model(tmp_path: Path) -> None:
    np.save(tmp_path / "calib.npy", _x(4, 0))
    (batch,) = validate_batches(ONE, load_calibration_data(tmp_path / "calib.npy"))
    np.testing.assert_array_equal(batch["x"], _x(4, 0))


def test_bare_npy_for_a_model_of_two_inputs_names_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "0.npy", np.zeros((2, 3), np.int64))
    with pytest.raises(
        CalibrationDataError, match=r"0\.npy: a single array feeds a model with one input; this one has 2"
    ):
        list(validate_batches(TWO, load_calibration_data(tmp_path)))


def _per_input(root: Path, names: tuple[str, ...] = ("0001.npy", "0002.npy")) -> None:
    for i, name in enumerate(names):
        for sub, arr in (
            ("ids", np.full((i + 1, 3), i, np.int64)),
            ("mask", np.ones((i + 1, 3), np.bool_)),
        ):
            (root / sub).mkdir(exist_ok=True)
            np.save(root / sub / name, arr)


def test_a_directory_per_input_pairs_files_by_name(tmp_path: Path) -> None:
    _per_input(tmp_path)
    (tmp_path / "empty").mkdir()  # a subdirectory without .npy files is not an input
    source = load_calibration_data(tmp_path)
    assert count_samples(source) == 3
    batches = list(validate_batches(TWO, source))
    assert [(b["ids"].shape[0], int(b["ids"][0, 0])) for b in batches] == [(1, 0), (2, 1)]
    assert all(b["mask"].dtype == np.bool_ for b in batches)
    assert source.batch_label(1) == str(tmp_path / "*" / "0002.npy")


def test_per_input_directories_must_hold_the_same_names(tmp_path: Path) -> None:
    _per_input(tmp_path)
    (tmp_path / "mask" / "0002.npy").unlink()
    with pytest.raises(CalibrationDataError, match=r"mask: no 0002\.npy to go with .*ids/0002\.npy"):
        load_calibration_data(tmp_path)


def test_per_input_error_names_the_batch_and_input(tmp_path: Path) -> None:
    _per_input(tmp_path)
    np.save(tmp_path / "mask" / "0002.npy", np.ones((2, 3), np.int8))
    with pytest.raises(
        CalibrationDataError, match=r"\*/0002\.npy: input 'mask': expected dtype bool, got int8"
    ):
        list(validate_batches(TWO, load_calibration_data(tmp_path)))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((2, 2), np.float64), "input 'x': expected dtype float32, got float64"),
        (np.zeros((2, 5), np.float32), r"input 'x': expected float32\[\?, 2\], got shape \(2, 5\)"),
        (np.zeros((2,), np.float32), r"input 'x': expected rank 2"),
    ],
)
def test_every_file_is_checked_before_the_first_batch(tmp_path: Path, bad: np.ndarray, message: str) -> None:
    for i in range(3):
        np.save(tmp_path / f"{i}.npy", _x(2, 0))
    np.save(tmp_path / "3.npy", bad)  # the last file
    batches = validate_batches(ONE, load_calibration_data(tmp_path))
    with pytest.raises(CalibrationDataError, match=rf"3\.npy: {message}"):
        next(batches)  # not a single batch is handed out


def test_npz_missing_an_input_is_found_before_the_first_batch(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", ids=np.zeros((1, 3), np.int64), mask=np.ones((1, 3), np.bool_))
    np.savez(tmp_path / "b.npz", ids=np.zeros((1, 3), np.int64))
    with pytest.raises(CalibrationDataError, match=r"b\.npz: missing model input\(s\) 'mask'"):
        next(validate_batches(TWO, load_calibration_data(tmp_path)))


def test_arrays_and_images_do_not_mix(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", _x(1, 0))
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "cat.jpg").write_bytes(b"")
    with pytest.raises(CalibrationDataError, match=r"holds both arrays .* and images"):
        load_calibration_data(tmp_path)


def test_image_preprocessing_for_arrays_is_an_error(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", _x(1, 0))
    with pytest.raises(CalibrationDataError, match=r"image preprocessing was given, but .* arrays"):
        load_calibration_data(tmp_path, preprocess="imagenet")
