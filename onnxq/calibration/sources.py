"""Calibration data sources: ``.npz`` files and directories of them, read lazily.

Every array of a file holds its samples on axis 0 (:mod:`onnxq.calibration.data` says how
samples become runs of the model). A source says so with ``samples_on_axis0 = True``; any other
iterable of ``{input name: array}`` dicts (a Python list, a generator) is taken as runs of the
model as given.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from onnxq.errors import CalibrationDataError

Batch = Mapping[str, np.ndarray]


class NpzCalibrationData:
    """Lazily read ``.npz`` files, one file in memory at a time; each file is one batch of samples
    on axis 0."""

    samples_on_axis0 = True

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = tuple(files)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for path in self.files:
            try:
                z = np.load(path, allow_pickle=False)
                if not isinstance(z, np.lib.npyio.NpzFile):
                    raise CalibrationDataError(f"{path}: expected an .npz archive, got a single array")
                with z:
                    batch = {k: z[k] for k in z.files}
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise CalibrationDataError(f"{path}: cannot read calibration data: {msg}") from None
            yield batch

    def batch_label(self, index: int) -> str:
        """How errors name batch ``index``: its file."""
        return str(self.files[index])

    @property
    def num_samples(self) -> int | None:
        """Samples in all files (from the array headers; ``None`` if a header is unreadable)."""
        total = 0
        try:
            for path in self.files:
                with zipfile.ZipFile(path) as zf:
                    name = next((n for n in zf.namelist() if n.endswith(".npy")), None)
                    if name is None:
                        continue
                    with zf.open(name) as f:
                        version = np.lib.format.read_magic(f)
                        if version == (1, 0):
                            shape = np.lib.format.read_array_header_1_0(f)[0]
                        elif version == (2, 0):
                            shape = np.lib.format.read_array_header_2_0(f)[0]
                        else:
                            return None
                    total += int(shape[0]) if shape else 1
        except (OSError, ValueError, zipfile.BadZipFile):
            return None
        return total


def load_calibration_data(path: str | Path) -> NpzCalibrationData:
    """An ``.npz`` file (keys = input names, axis 0 = samples) or a directory of them (sorted)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".npz" and f.is_file())
        if not files:
            raise CalibrationDataError(f"{p}: directory holds no .npz calibration files")
        return NpzCalibrationData(files)
    if not p.exists():
        raise CalibrationDataError(f"{p}: calibration data not found")
    if p.suffix != ".npz":
        raise CalibrationDataError(f"{p}: expected an .npz file or a directory of .npz files")
    return NpzCalibrationData([p])


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
