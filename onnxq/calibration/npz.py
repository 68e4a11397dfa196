"""Read ``.npz`` archives and ``.npy`` files without trusting them.

``numpy.load`` believes what a file says: a zip entry that inflates to 4 GiB of zeros is inflated,
an ``.npy`` header that declares ``(10**12,)`` elements is allocated before the data is found
missing, and zip features it does not handle (encryption, other compression methods) surface as
assorted exceptions. Here every size is checked before anything is allocated:

* the archive's entries are listed from its central directory; the sum of their declared
  uncompressed sizes must not exceed ``max_bytes`` (each is also the most that is ever inflated
  from that entry);
* each entry must be an ``.npy`` array (format 1.0 or 2.0, header at most
  :data:`MAX_HEADER_BYTES`) of a plain numeric or bool dtype (never a pickled object);
* the header's shape times the dtype's item size must equal the bytes the entry holds after the
  header; only then is the array allocated, once, and filled in chunks.

A lone ``.npy`` file is checked the same way: at most ``max_bytes`` on disk, the same header
rules, and its header's size must equal the bytes after it. Every failure is one
:class:`~onnxq.errors.CalibrationDataError` line naming the file (and entry). Arrays come back in
native byte order.
"""

from __future__ import annotations

import contextlib
import lzma
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from onnxq.errors import CalibrationDataError, first_line

#: Largest total of array bytes one calibration file may hold (a bigger set goes in a directory
#: of files, which are read one at a time).
MAX_FILE_BYTES = 2 << 30
#: Largest ``.npy`` header read (numpy's own default limit).
MAX_HEADER_BYTES = 10_000
_CHUNK_BYTES = 16 << 20
_COMPRESSION = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
_DTYPE_KINDS = "biufc"  # bool, signed, unsigned, float, complex
#: What reading a damaged archive can raise, from zipfile and its decompressors.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    OverflowError,
    struct.error,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True)
class ArrayHeader:
    """What an ``.npy`` entry declares, checked against the bytes it holds."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_npz(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path``, by name (the entry name without ``.npy``)."""
    p = Path(path)
    out: dict[str, np.ndarray] = {}
    with _archive(p, max_bytes) as (zf, infos):
        for info in infos:
            where = f"{p}: entry '{info.filename}'"
            try:
                with zf.open(info) as f:
                    header = _read_header(f, _entry_name(info), info.file_size, where)
                    out[header.name] = _read_data(f, header, where)
            except CalibrationDataError:
                raise
            except _READ_ERRORS as e:
                raise CalibrationDataError(f"{where}: cannot read it ({first_line(e)})") from None
    return out


def read_npz_headers(
    path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES
) -> tuple[ArrayHeader, ...]:
    """The checked headers of the archive's arrays, without reading their data."""
    p = Path(path)
    headers = []
    with _archive(p, max_bytes) as (zf, infos):
        for info in infos:
            where = f"{p}: entry '{info.filename}'"
            try:
                with zf.open(info) as f:
                    headers.append(_read_header(f, _entry_name(info), info.file_size, where))
            except CalibrationDataError:
                raise
            except _READ_ERRORS as e:
                raise CalibrationDataError(f"{where}: cannot read it ({first_line(e)})") from None
    return tuple(headers)


def read_npy(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES) -> np.ndarray:
    """The array of the ``.npy`` file at ``path``."""
    p = Path(path)
    with _npy_file(p, max_bytes) as (f, size):
        return _read_data(f, _read_header(f, p.stem, size, str(p), "file"), str(p))


def read_npy_header(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES) -> ArrayHeader:
    """The checked header of the ``.npy`` file at ``path``, without reading its data."""
    p = Path(path)
    with _npy_file(p, max_bytes) as (f, size):
        return _read_header(f, p.stem, size, str(p), "file")


@contextlib.contextmanager
def _npy_file(p: Path, max_bytes: int) -> Iterator[tuple[IO[bytes], int]]:
    """The open file and its size, once it is known to be a regular file of at most ``max_bytes``;
    OS errors while reading become one line naming the file."""
    _check_regular(p)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise CalibrationDataError(
                    f"{p}: holds more than {max_bytes} bytes; split the samples over several files"
                )
            yield f, size
    except OSError as e:
        raise CalibrationDataError(f"{p}: cannot read it ({e.strerror or e})") from None


def _check_regular(p: Path) -> None:
    if not p.is_file():  # a FIFO would block, a device never end
        what = "does not exist" if not p.exists() else "is not a regular file"
        raise CalibrationDataError(f"{p}: calibration file {what}")


class _archive:
    """``with _archive(path, max_bytes) as (zipfile, entries)``: the archive opened and its
    entries checked (regular file, names, encryption, compression, total size)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        self.zf: zipfile.ZipFile | None = None

    def __enter__(self) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
        p = self.path
        _check_regular(p)
        try:
            self.zf = zipfile.ZipFile(p)
            infos = self.zf.infolist()
        except _READ_ERRORS as e:
            self.__exit__()
            raise CalibrationDataError(f"{p}: not an .npz archive ({first_line(e)})") from None
        try:
            _check_entries(p, infos, self.max_bytes)
        except CalibrationDataError:
            self.__exit__()
            raise
        return self.zf, infos

    def __exit__(self, *exc: object) -> None:
        if self.zf is not None:
            self.zf.close()
            self.zf = None


def _check_entries(path: Path, infos: list[zipfile.ZipInfo], max_bytes: int) -> None:
    seen: set[str] = set()
    total = 0
    for info in infos:
        where = f"{path}: entry '{info.filename}'"
        if not info.filename.endswith(".npy"):
            raise CalibrationDataError(f"{where} is not an .npy array")
        name = _entry_name(info)
        if name in seen:
            raise CalibrationDataError(f"{where} appears twice")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise CalibrationDataError(f"{where} is encrypted")
        if info.compress_type not in _COMPRESSION:
            supported = ", ".join(_COMPRESSION.values())
            raise CalibrationDataError(
                f"{where} uses zip compression method {info.compress_type} (supported: {supported})"
            )
        total += info.file_size
        if total > max_bytes:
            raise CalibrationDataError(
                f"{path}: holds more than {max_bytes} bytes of arrays (at entry '{info.filename}'); "
                "split the samples over several .npz files in a directory, which are read one at a time"
            )
    if not infos:
        raise CalibrationDataError(f"{path}: the archive holds no arrays")


def _entry_name(info: zipfile.ZipInfo) -> str:
    return info.filename[: -len(".npy")]


def _read_header(f: IO[bytes], name: str, size: int, where: str, holder: str = "entry") -> ArrayHeader:
    """The header at the start of ``f`` (``size`` bytes in all), checked against the data after it."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
        else:
            raise CalibrationDataError(f"{where}: .npy format {version[0]}.{version[1]} is not supported")
    except CalibrationDataError:
        raise
    except (zlib.error, lzma.LZMAError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise CalibrationDataError(f"{where}: cannot read it ({first_line(e)})") from None
    except Exception as e:  # numpy parses the header text with tokenize and ast: many error types
        raise CalibrationDataError(f"{where}: not a valid .npy header ({first_line(e)})") from None
    if dtype.kind not in _DTYPE_KINDS:  # objects (pickles), structured and sub-array dtypes
        raise CalibrationDataError(f"{where}: arrays of dtype {dtype} are not calibration data")
    header = ArrayHeader(name, dtype, tuple(int(d) for d in shape), bool(fortran))
    payload = size - f.tell()
    if header.nbytes != payload:
        raise CalibrationDataError(
            f"{where}: the header declares {dtype}{list(header.shape)} ({header.nbytes} bytes) "
            f"but the {holder} holds {max(payload, 0)} bytes of data"
        )
    return header


def _read_data(f: IO[bytes], header: ArrayHeader, where: str) -> np.ndarray:
    flat = np.empty(math.prod(header.shape), dtype=header.dtype)
    view = memoryview(flat).cast("B")
    done = 0
    while done < len(view):
        chunk = f.read(min(_CHUNK_BYTES, len(view) - done))
        if not chunk:
            raise CalibrationDataError(f"{where}: data ends after {done} of {len(view)} bytes")
        view[done : done + len(chunk)] = chunk
        done += len(chunk)
    arr = flat.reshape(header.shape, order="F" if header.fortran_order else "C")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


__all__ = ["MAX_FILE_BYTES", "ArrayHeader", "read_npy", "read_npy_header", "read_npz", "read_npz_headers"]
