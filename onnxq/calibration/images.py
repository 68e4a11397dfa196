"""Calibration images: a folder of JPEG/PNG files read one at a time for one model input.

:class:`ImageFolder` is a calibration source: each image is one sample (an array with a leading
axis of 1, re-batched by :mod:`onnxq.calibration.data`). Its :class:`ImagePreprocess` may leave
fields to the model; :func:`bind_preprocess` fills them from the input the images feed and says
which (:mod:`onnxq.calibration.preprocess` lists the steps and what is inferred;
:mod:`onnxq.calibration.imaging` reads and transforms one image).

Files are the regular files named ``*.jpg``, ``*.jpeg`` or ``*.png`` (any case), sorted by path,
with ``recursive`` also in subdirectories (symbolic links to directories are not followed).
Before the first run every file's header is checked (:meth:`ImageFolder.stand_ins`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from onnxq.calibration.imaging import image_shape, load_image, open_image
from onnxq.calibration.preprocess import IMAGE_DTYPES, ImagePreprocess, resolve_preprocess
from onnxq.errors import CalibrationDataError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


def image_files(directory: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """The image files of ``directory`` (and its subdirectories with ``recursive``), sorted."""
    root = Path(directory)
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        if not recursive:
            dirs.clear()
        found += [Path(folder, n) for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return sorted((f for f in found if f.is_file()), key=lambda f: f.relative_to(root).parts)


def bind_preprocess(
    preprocess: ImagePreprocess | None, specs: Sequence[Any]
) -> tuple[ImagePreprocess, tuple[str, ...]]:
    """``preprocess`` completed from the model input the images feed, and what was taken from it.

    ``specs`` are the model's :class:`~onnxq.calibration.data.InputSpec`. Raises
    :class:`CalibrationDataError` naming the input when the images cannot feed it (another input
    the folder cannot fill, a size, channel count or dtype that does not match) or when something
    needed is neither given nor declared by the model.
    """
    p = preprocess if preprocess is not None else ImagePreprocess()
    names = ", ".join(repr(s.name) for s in specs)
    if p.input_name is not None and p.input_name not in {s.name for s in specs}:
        raise CalibrationDataError(
            f"image preprocessing: input_name {p.input_name!r} is not a model input ({names})"
        )
    if len(specs) != 1:
        raise CalibrationDataError(
            f"an image folder feeds a model with one input; this one has {len(specs)} ({names})"
        )
    spec = specs[0]
    where = f"input {spec.name!r} {spec.describe()}"
    if spec.shape is not None and len(spec.shape) not in (3, 4):
        raise CalibrationDataError(f"{where} is not an image input (rank 3 or 4)")
    dims = tuple(spec.shape[-3:]) if spec.shape is not None else (None, None, None)
    inferred: list[str] = []
    layout = p.layout or _infer_layout(dims)
    if layout is None:
        raise CalibrationDataError(f"cannot tell the layout of {where}: give the image layout (NCHW or NHWC)")
    channels, height, width = dims if layout == "NCHW" else (dims[2], dims[0], dims[1])
    order = p.channel_order or {1: "L", 3: "RGB", None: "RGB"}.get(channels)
    if order is None:
        raise CalibrationDataError(f"{where} has {channels} channels: images give 1 (L) or 3 (RGB, BGR)")
    if channels is not None and channels != (1 if order == "L" else 3):
        raise CalibrationDataError(
            f"channel_order {order!r} does not give the {channels} channel(s) of {where}"
        )
    if p.size is not None and (height not in (None, p.size[0]) or width not in (None, p.size[1])):
        raise CalibrationDataError(f"image size {p.size[0]}x{p.size[1]} does not match {where} ({layout})")
    if p.size is None and (height is None or width is None):
        raise CalibrationDataError(f"cannot infer the image size from {where}: give a size (height, width)")
    size = p.size or (height, width)
    dtype = p.dtype or spec.dtype.name
    if dtype != spec.dtype.name:
        raise CalibrationDataError(f"image dtype {dtype} does not match {where}")
    if dtype not in IMAGE_DTYPES:
        raise CalibrationDataError(f"{where}: images give {', '.join(IMAGE_DTYPES)}, not {dtype}")
    scale = p.scale if p.scale is not None else (1 / 255 if dtype.startswith("float") else 1.0)
    for field, value in (("size", f"{size[0]}x{size[1]}"), ("layout", layout), ("channel_order", order)):
        if getattr(p, field) is None:
            inferred.append(f"{field} {value}")
    if p.dtype is None:
        inferred.append(f"dtype {dtype}")
    if p.scale is None:
        inferred.append(f"scale {scale:.6g}")
    n = 1 if order == "L" else 3
    for field in ("mean", "std"):
        if len(getattr(p, field)) not in (1, n):
            raise CalibrationDataError(
                f"image {field} has {len(getattr(p, field))} values for the {n} channel(s) of {where}"
            )
    resolved = replace(
        p, size=size, layout=layout, channel_order=order, dtype=dtype, scale=scale, input_name=spec.name
    )
    return resolved, tuple(inferred)


def _infer_layout(dims: tuple[int | None, ...]) -> str | None:
    first, last = dims[0], dims[2]
    if first in (1, 3):
        return "NCHW"
    return "NHWC" if last in (1, 3) else None


class ImageFolder:
    """Images as calibration samples, read lazily one at a time.

    ``preprocess`` is an :class:`ImagePreprocess`, a preset name or a JSON file; what it leaves
    ``None`` is taken from the model when calibration binds the folder to it (:meth:`for_inputs`),
    logged as a warning when nothing was given and as info otherwise.
    """

    samples_on_axis0 = True

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]],
        preprocess: ImagePreprocess | str | os.PathLike[str] | None = None,
        *,
        max_pixels: int | None = None,
    ) -> None:
        self.files = tuple(Path(f) for f in files)
        self.preprocess = resolve_preprocess(preprocess)
        self.max_pixels = max_pixels

    @classmethod
    def from_directory(
        cls,
        directory: str | os.PathLike[str],
        preprocess: ImagePreprocess | str | os.PathLike[str] | None = None,
        *,
        recursive: bool = False,
        max_pixels: int | None = None,
    ) -> ImageFolder:
        files = image_files(directory, recursive)
        if not files:
            raise CalibrationDataError(f"{directory}: directory holds no .jpg, .jpeg or .png images")
        return cls(files, preprocess, max_pixels=max_pixels)

    def for_inputs(self, specs: Sequence[Any]) -> ImageFolder:
        """This folder with its preprocessing completed from the model's inputs ``specs``."""
        resolved, inferred = bind_preprocess(self.preprocess, specs)
        if inferred:
            level = logging.WARNING if self.preprocess is None else logging.INFO
            given = "no image preprocessing given" if self.preprocess is None else "image preprocessing"
            logger.log(
                level,
                "%s: %s taken from input %r; images become %s",
                given,
                ", ".join(inferred),
                resolved.input_name,
                resolved.describe(),
            )
        return ImageFolder(self.files, resolved, max_pixels=self.max_pixels)

    def _complete(self) -> ImagePreprocess:
        if self.preprocess is None or not self.preprocess.complete:
            raise CalibrationDataError(
                "image preprocessing leaves fields to the model: bind the folder to it (for_inputs) "
                "or give size, layout, channel_order, dtype and scale"
            )
        return self.preprocess

    def _item(self, array: np.ndarray) -> dict[str, np.ndarray] | np.ndarray:
        name = self._complete().input_name
        return array if name is None else {name: array}

    def __iter__(self) -> Iterator[dict[str, np.ndarray] | np.ndarray]:
        p = self._complete()
        for path in self.files:
            yield self._item(load_image(path, p, self.max_pixels)[None])

    def stand_ins(self) -> Iterator[tuple[str, dict[str, np.ndarray] | np.ndarray]]:
        """Each image as a zero-stride array of the shape and dtype it will have, after its header
        was checked (no pixel is decoded)."""
        p = self._complete()
        stand_in = np.broadcast_to(np.zeros((), np.dtype(p.dtype)), (1, *image_shape(p)))
        for path in self.files:
            open_image(path, self.max_pixels).close()
            yield str(path), self._item(stand_in)

    def batch_label(self, index: int) -> str:
        """How errors name batch ``index``: its file."""
        return str(self.files[index])

    @property
    def num_samples(self) -> int:
        return len(self.files)


__all__ = [
    "IMAGE_SUFFIXES",
    "ImageFolder",
    "bind_preprocess",
    "image_files",
]
