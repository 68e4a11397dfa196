"""Calibration data on disk: ``.npz`` and ``.npy`` files, directories of them, image folders.

:func:`load_calibration_data` takes a path and picks the source:

* an ``.npz`` file: one batch, its keys the input names;
* a ``.npy`` file: one batch for a model with one input;
* a directory of arrays, every batch read lazily, one at a time:

  - each ``*.npz`` file in it is a batch (keys = input names);
  - each ``*.npy`` file in it is a batch for a model with one input;
  - each subdirectory holding ``*.npy`` files is named after an input: ``calib/input_ids/0001.npy``
    and ``calib/attention_mask/0001.npy`` are one batch. Every such subdirectory must hold the
    same file names;

  files in the directory come first in name order (``.npz`` and ``.npy`` mixed), then the
  subdirectories' batches in file name order. Other files are ignored;
* a JPEG/PNG image or a directory of them (searched recursively) with no arrays in it: an
  :class:`~onnxq.calibration.images.ImageFolder` preprocessed as ``preprocess`` says (a preset, a
  JSON file or an :class:`ImagePreprocess`), or as the model's input shape tells.

In every array, axis 0 holds samples (:mod:`onnxq.calibration.data` says how samples become runs
of the model): a single sample keeps a batch axis of 1. Files are read by
:mod:`onnxq.calibration.npz` (only regular files; sizes checked before anything is allocated; at
most ``max_file_bytes`` a file); before the first run every file's header is checked against the
model (:meth:`CalibrationFiles.stand_ins`). A source says it holds samples on axis 0 with
``samples_on_axis0 = True``; any other iterable of batches is taken as runs of the model as given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxq.calibration.images import IMAGE_SUFFIXES, ImageFolder, image_files
from onnxq.calibration.npz import (
    MAX_FILE_BYTES,
    ArrayHeader,
    read_npy,
    read_npy_header,
    read_npz,
    read_npz_headers,
)
from onnxq.calibration.preprocess import ImagePreprocess
from onnxq.errors import CalibrationDataError

Batch = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class ArrayBatch:
    """One batch of files: an ``.npz`` (``names`` empty), a lone ``.npy`` for the model's only
    input (``names == (None,)``), or one ``.npy`` per named input."""

    files: tuple[Path, ...]
    names: tuple[str | None, ...] = ()

    @property
    def label(self) -> str:
        """How errors name the batch: its file, or ``dir/*/name.npy`` for per-input files."""
        if len(self.files) == 1:
            return str(self.files[0])
        return str(self.files[0].parent.parent / "*" / self.files[0].name)


class CalibrationFiles:
    """Batches of ``.npz``/``.npy`` files (:class:`ArrayBatch`), read one batch at a time."""

    samples_on_axis0 = True

    def __init__(self, batches: Sequence[ArrayBatch], max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.batches = tuple(batches)
        self.max_file_bytes = max_file_bytes

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file read, in order."""
        return tuple(f for b in self.batches for f in b.files)

    def __iter__(self) -> Iterator[dict[str, np.ndarray] | np.ndarray]:
        for batch in self.batches:
            if not batch.names:
                yield read_npz(batch.files[0], self.max_file_bytes)
            elif batch.names == (None,):
                yield read_npy(batch.files[0], self.max_file_bytes)
            else:
                yield {
                    str(n): read_npy(f, self.max_file_bytes)
                    for n, f in zip(batch.names, batch.files, strict=True)
                }

    def _headers(self, batch: ArrayBatch) -> dict[str | None, ArrayHeader]:
        if not batch.names:
            return {h.name: h for h in read_npz_headers(batch.files[0], self.max_file_bytes)}
        return {
            n: read_npy_header(f, self.max_file_bytes) for n, f in zip(batch.names, batch.files, strict=True)
        }

    def stand_ins(self) -> Iterator[tuple[str, dict[str, np.ndarray] | np.ndarray]]:
        """Each batch as zero-stride arrays of the shapes and dtypes its headers declare."""
        for batch in self.batches:
            arrays = {
                n: np.broadcast_to(np.zeros((), h.dtype), h.shape) for n, h in self._headers(batch).items()
            }
            yield batch.label, arrays[None] if batch.names == (None,) else arrays

    def batch_label(self, index: int) -> str:
        """How errors name batch ``index``: its file."""
        return self.batches[index].label

    @property
    def num_samples(self) -> int | None:
        """Samples in all files (from the array headers; ``None`` if a header is unreadable)."""
        total = 0
        try:
            for batch in self.batches:
                shape = next(iter(self._headers(batch).values())).shape
                total += shape[0] if shape else 1
        except CalibrationDataError:
            return None
        return total


def load_calibration_data(
    path: str | os.PathLike[str],
    max_file_bytes: int = MAX_FILE_BYTES,
    *,
    preprocess: ImagePreprocess | str | os.PathLike[str] | None = None,
) -> CalibrationFiles | ImageFolder:
    """The calibration source at ``path`` (the module docstring lists the layouts).

    ``preprocess`` applies to images only. Only regular files are read (a FIFO or a device is
    refused, never waited on).
    """
    p = Path(path)
    if p.is_dir():
        batches = _directory_batches(p)
        images = image_files(p, recursive=True)
        if batches and images:
            raise CalibrationDataError(
                f"{p}: directory holds both arrays (.npz/.npy) and images; put them in separate directories"
            )
        if images:
            return ImageFolder(images, preprocess)
        if not batches:
            raise CalibrationDataError(f"{p}: directory holds no .npz, .npy or image calibration files")
        return _arrays(p, batches, max_file_bytes, preprocess)
    if not p.exists():
        raise CalibrationDataError(f"{p}: calibration data not found")
    if not p.is_file():
        raise CalibrationDataError(f"{p}: calibration data is not a regular file or a directory")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolder([p], preprocess)
    if p.suffix not in (".npz", ".npy"):
        raise CalibrationDataError(f"{p}: expected an .npz or .npy file, an image, or a directory of them")
    return _arrays(p, [ArrayBatch((p,), (None,) if p.suffix == ".npy" else ())], max_file_bytes, preprocess)


def _arrays(p: Path, batches: list[ArrayBatch], max_file_bytes: int, preprocess: object) -> CalibrationFiles:
    if preprocess is not None:
        raise CalibrationDataError(f"{p}: image preprocessing was given, but this calibration data is arrays")
    return CalibrationFiles(batches, max_file_bytes)


def _directory_batches(p: Path) -> list[ArrayBatch]:
    """The array batches of directory ``p`` (files first, then per-input subdirectories)."""
    entries = sorted(p.iterdir())
    batches = [
        ArrayBatch((f,), (None,) if f.suffix == ".npy" else ())
        for f in entries
        if f.suffix in (".npz", ".npy") and f.is_file()
    ]
    per_input = {d.name: _npy_files(d) for d in entries if d.is_dir()}
    per_input = {name: files for name, files in per_input.items() if files}
    if not per_input:
        return batches
    names = sorted(set().union(*per_input.values()))
    for file_name in names:
        for input_name, files in per_input.items():
            if file_name not in files:
                other = next(n for n, f in per_input.items() if file_name in f)
                raise CalibrationDataError(
                    f"{p / input_name}: no {file_name} to go with {p / other / file_name} "
                    "(each input's directory must hold the same file names)"
                )
        batches.append(ArrayBatch(tuple(d / file_name for d in map(p.joinpath, per_input)), tuple(per_input)))
    return batches


def _npy_files(directory: Path) -> set[str]:
    return {f.name for f in directory.iterdir() if f.suffix == ".npy" and f.is_file()}


def count_samples(batches: Iterable[Batch]) -> int | None:
    """Number of samples if knowable without reading data (file headers, image counts, in-memory
    sequences of mappings)."""
    if isinstance(batches, (CalibrationFiles, ImageFolder)):
        return batches.num_samples
    if isinstance(batches, Sequence):
        try:
            return sum(int(np.shape(next(iter(b.values())))[0]) for b in batches if len(b))
        except (AttributeError, IndexError, TypeError, StopIteration):
            return None
    return None


__all__ = ["ArrayBatch", "Batch", "CalibrationFiles", "count_samples", "load_calibration_data"]
