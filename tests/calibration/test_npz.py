"""``.npz`` reading that checks every size before allocating (zip bombs, lying headers, FIFOs)."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from onnxq.calibration.npz import read_npy, read_npy_header, read_npz, read_npz_headers
from onnxq.calibration.sources import load_calibration_data
from onnxq.errors import CalibrationDataError


def _save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _patch_central(path: Path, offset: int, fmt: str, value: int) -> None:
    """Overwrite a field of the (first) central-directory record of the archive."""
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    struct.pack_into(fmt, data, at + offset, value)
    path.write_bytes(bytes(data))


def _npy_bytes(header: dict[str, object], payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


def _zip_with(path: Path, name: str, content: bytes, method: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        zf.writestr(name, content)
    return path


def test_round_trip_keeps_values_shapes_and_order(tmp_path: Path) -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    f = np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3))
    path = _save(tmp_path / "x.npz", a=a, f=f, s=np.float32(3.5))
    got = read_npz(path)
    assert set(got) == {"a", "f", "s"}
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["f"], f)
    assert got["s"].shape == () and got["s"] == np.float32(3.5)
    assert [h.shape for h in read_npz_headers(path)] == [(2, 3, 4), (2, 3), ()]


def test_compressed_archives_are_read(tmp_path: Path) -> None:
    a = np.zeros((5, 7), dtype=np.uint8)
    path = tmp_path / "c.npz"
    np.savez_compressed(path, a=a)
    np.testing.assert_array_equal(read_npz(path)["a"], a)


def test_big_endian_arrays_come_back_native(tmp_path: Path) -> None:
    a = np.arange(4, dtype=">f4")
    got = read_npz(_save(tmp_path / "b.npz", a=a))["a"]
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, [0, 1, 2, 3])


def test_archive_over_the_limit_is_refused_before_inflating(tmp_path: Path) -> None:
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros(1 << 20, dtype=np.float32))  # 4 MiB of zeros, a few KiB on disk
    with pytest.raises(CalibrationDataError, match=r"big\.npz: holds more than 1000000 bytes .*split"):
        read_npz(path, max_bytes=1_000_000)


def test_zip_bomb_declaring_4gib_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "bomb.npz", x=np.zeros(4, dtype=np.float32))
    _patch_central(path, 24, "<I", 0xFFFFFFF0)  # uncompressed size in the central directory
    with pytest.raises(CalibrationDataError, match=r"bomb\.npz: holds more than \d+ bytes"):
        read_npz(path)


def test_header_that_lies_about_its_size_is_refused_before_allocating(tmp_path: Path) -> None:
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    path = _zip_with(tmp_path / "lie.npz", "x.npy", _npy_bytes(header, b"\0" * 16))
    with pytest.raises(
        CalibrationDataError, match=r"entry 'x\.npy': the header declares float32\[1000000000000\]"
    ):
        read_npz(path)
    with pytest.raises(CalibrationDataError, match="header declares"):
        read_npz_headers(path)


def test_header_declaring_less_than_it_holds_is_refused(tmp_path: Path) -> None:
    header = {"descr": "<f4", "fortran_order": False, "shape": (2,)}
    path = _zip_with(tmp_path / "short.npz", "x.npy", _npy_bytes(header, b"\0" * 64))
    with pytest.raises(CalibrationDataError, match=r"\(8 bytes\) but the entry holds 64 bytes"):
        read_npz(path)


def test_garbage_header_is_one_line(tmp_path: Path) -> None:
    path = _zip_with(tmp_path / "g.npz", "x.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': (((((((")
    with pytest.raises(CalibrationDataError, match=r"entry 'x\.npy': not a valid \.npy header"):
        read_npz(path)


def test_encrypted_entry_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "enc.npz", x=np.zeros(4, dtype=np.float32))
    _patch_central(path, 8, "<H", 0x1)  # general purpose flags: encrypted
    with pytest.raises(CalibrationDataError, match=r"entry 'x\.npy' is encrypted"):
        read_npz(path)


def test_unknown_compression_method_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.npz", x=np.zeros(4, dtype=np.float32))
    _patch_central(path, 10, "<H", 99)
    with pytest.raises(CalibrationDataError, match=r"compression method 99 \(supported: stored, deflate"):
        read_npz(path)


def test_corrupt_deflate_stream_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "z.npz"
    np.savez_compressed(path, x=np.arange(1000, dtype=np.float32))
    data = bytearray(path.read_bytes())
    start = data.index(b"PK\x03\x04") + 30 + len("x.npy")
    data[start + 10 : start + 40] = b"\xff" * 30
    path.write_bytes(bytes(data))
    with pytest.raises(CalibrationDataError, match=r"entry 'x\.npy': cannot read it"):
        read_npz(path)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CalibrationDataError, match="dtype object are not calibration data"):
        read_npz(path)


def test_structured_dtypes_are_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "s.npz", x=np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
    with pytest.raises(CalibrationDataError, match="are not calibration data"):
        read_npz(path)


def test_entries_other_than_arrays_and_duplicates_are_refused(tmp_path: Path) -> None:
    path = _zip_with(tmp_path / "t.npz", "notes.txt", b"hello")
    with pytest.raises(CalibrationDataError, match=r"entry 'notes\.txt' is not an \.npy array"):
        read_npz(path)
    dup = tmp_path / "d.npz"
    payload = _npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (1,)}, b"\0" * 4)
    with zipfile.ZipFile(dup, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("x.npy", payload)
        zf.writestr("x.npy", payload)
    with pytest.raises(CalibrationDataError, match=r"entry 'x\.npy' appears twice"):
        read_npz(dup)


def test_empty_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.npz"
    zipfile.ZipFile(path, "w").close()
    with pytest.raises(CalibrationDataError, match="holds no arrays"):
        read_npz(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize(("name", "read"), [("calib.npz", read_npz), ("calib.npy", read_npy)])
def test_fifo_is_refused_not_waited_on(tmp_path: Path, name: str, read) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(CalibrationDataError, match="not a regular file"):
        load_calibration_data(fifo)
    with pytest.raises(CalibrationDataError, match="not a regular file"):
        read(fifo)
    _save(tmp_path / "real.npz", x=np.zeros(2, dtype=np.float32))
    assert [p.name for p in load_calibration_data(tmp_path).files] == ["real.npz"]  # the FIFO is skipped


# ---------------------------------------------------------------- lone .npy files


def test_npy_round_trip_and_header(tmp_path: Path) -> None:
    a = np.arange(12, dtype=">i4").reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    got = read_npy(tmp_path / "a.npy")
    assert got.dtype == np.int32 and got.dtype.isnative
    np.testing.assert_array_equal(got, a)
    header = read_npy_header(tmp_path / "a.npy")
    assert (header.name, header.shape, header.dtype) == ("a", (3, 4), np.dtype(">i4"))


def test_npy_header_that_lies_about_its_size_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "lie.npy"
    path.write_bytes(_npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (10**12,)}, b"\0" * 16))
    for read in (read_npy, read_npy_header):
        with pytest.raises(
            CalibrationDataError,
            match=r"lie\.npy: the header declares float32\[1000000000000\] .* but the file holds 16 bytes",
        ):
            read(path)


def test_truncated_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.npy"
    np.save(path, np.zeros(100, np.float32))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(
        CalibrationDataError, match=r"t\.npy: the header declares float32\[100\] \(400 bytes\)"
    ):
        read_npy(path)


def test_npy_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    np.save(path, np.zeros(1000, np.float32))
    with pytest.raises(CalibrationDataError, match=r"big\.npy: holds more than 1000 bytes"):
        read_npy(path, max_bytes=1000)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a valid .npy header"),
        (b"PK\x03\x04 an npz renamed", "not a valid .npy header"),
        (
            _npy_bytes({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\0" * 8),
            "arrays of dtype object are not calibration data",
        ),
    ],
)
def test_bad_npy_files_are_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.npy"
    path.write_bytes(content)
    with pytest.raises(CalibrationDataError, match=rf"bad\.npy: {message}") as info:
        read_npy(path)
    assert "\n" not in str(info.value)
