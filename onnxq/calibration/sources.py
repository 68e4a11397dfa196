"""Calibration data sources: ``.npz`` files and directories of them, read lazily.

Every array of a file holds its samples on axis 0 (:mod:`onnxq.calibration.data` says how
samples become runs of the model). A source says so with ``samples_on_axis0 = True``; any other
iterable of ``{input name: array}`` dicts (a Python list, a generator) is taken as runs of the
model as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from onnxq.calibration.npz import MAX_FILE_BYTES, read_npz, read_npz_headers
from onnxq.errors import CalibrationDataError

Batch = Mapping[str, np.ndarray]


class NpzCalibrationData:
    """Lazily read ``.npz`` files, one file in memory at a time; each file is one batch of samples
    on axis 0. Files are read by :mod:`onnxq.calibration.npz`: sizes are checked before anything
    is allocated, and a file may hold at most ``max_file_bytes`` of arrays."""

    samples_on_axis0 = True

    def __init__(self, files: Sequence[Path], max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.files = tuple(files)
        self.max_file_bytes = max_file_bytes

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for path in self.files:
            yield read_npz(path, self.max_file_bytes)

    def batch_label(self, index: int) -> str:
        """How errors name batch ``index``: its file."""
        return str(self.files[index])

    @property
    def num_samples(self) -> int | None:
        """Samples in all files (from the array headers; ``None`` if a header is unreadable)."""
        total = 0
        try:
            for path in self.files:
                headers = read_npz_headers(path, self.max_file_bytes)
                total += headers[0].shape[0] if headers[0].shape else 1
        except CalibrationDataError:
            return None
        return total


def load_calibration_data(path: str | Path, max_file_bytes: int = MAX_FILE_BYTES) -> NpzCalibrationData:
    """An ``.npz`` file (keys = input names, axis 0 = samples) or a directory of them (sorted).

    Only regular files are read (a FIFO or a device is refused, never waited on); each file may
    hold at most ``max_file_bytes`` of arrays.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".npz" and f.is_file())
        if not files:
            raise CalibrationDataError(f"{p}: directory holds no .npz calibration files")
        return NpzCalibrationData(files, max_file_bytes)
    if not p.exists():
        raise CalibrationDataError(f"{p}: calibration data not found")
    if not p.is_file():
        raise CalibrationDataError(f"{p}: calibration data is not a regular file or a directory")
    if p.suffix != ".npz":
        raise CalibrationDataError(f"{p}: expected an .npz file or a directory of .npz files")
    return NpzCalibrationData([p], max_file_bytes)


def count_samples(batches: Iterable[Batch]) -> int | None:
    """Number of samples if knowable without reading data (npz headers, in-memory sequences)."""
    if isinstance(batches, NpzCalibrationData):
        return batches.num_samples
    if isinstance(batches, Sequence):
        try:
            return sum(int(np.shape(next(iter(b.values())))[0]) for b in batches if len(b))
        except (AttributeError, IndexError, TypeError, StopIteration):
            return None
    return None


__all__ = ["Batch", "NpzCalibrationData", "count_samples", "load_calibration_data"]
