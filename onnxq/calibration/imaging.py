"""One calibration image: decoded with Pillow, checked, resized and normalised.

The steps are those :mod:`onnxq.calibration.preprocess` lists. :func:`open_image` reads and checks
a file's header before any pixel is decoded: its content must be JPEG or PNG (whatever its name),
of at most ``max_pixels`` pixels (default ``PIL.Image.MAX_IMAGE_PIXELS``, Pillow's
decompression-bomb limit) in an 8-bit mode; a corrupt or truncated image is one
:class:`~onnxq.errors.CalibrationDataError` line naming the file. EXIF orientation is not applied
(torchvision's loaders do not either). :func:`normalize` is pure numpy. Pillow (the ``images``
extra) is imported when the first image is read.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from onnxq.calibration.preprocess import ImagePreprocess
from onnxq.errors import CalibrationDataError, first_line

_FORMATS = ("JPEG", "PNG")
_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})  # 8 bits a channel
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)


def image_shape(p: ImagePreprocess) -> tuple[int, int, int]:
    """The shape of one preprocessed image (no batch axis), from a complete ``p``."""
    assert p.size is not None
    c = 1 if p.channel_order == "L" else 3
    return (c, *p.size) if p.layout == "NCHW" else (*p.size, c)


def load_image(path: str | os.PathLike[str], p: ImagePreprocess, max_pixels: int | None = None) -> np.ndarray:
    """One image, preprocessed as the complete ``p`` says (shape :func:`image_shape`)."""
    image = _pil()
    with open_image(path, max_pixels) as img:
        try:
            img.load()
            rgb = img.convert("L" if p.channel_order == "L" else "RGB")
            pixels = np.asarray(resize_image(rgb, p), dtype=np.uint8)
        except (*_DECODE_ERRORS, image.DecompressionBombError) as e:
            raise CalibrationDataError(f"{path}: cannot decode the image ({first_line(e)})") from None
    return normalize(pixels, p)


def open_image(path: str | os.PathLike[str], max_pixels: int | None = None) -> Any:
    """The image at ``path`` with its header read and checked, its pixels not yet decoded."""
    image = _pil()
    p = Path(path)
    if not p.is_file():  # a FIFO would block, a device never end
        raise CalibrationDataError(
            f"{p}: image {'does not exist' if not p.exists() else 'is not a regular file'}"
        )
    limit = image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():  # the limit is checked below, as an error
            warnings.simplefilter("ignore", image.DecompressionBombWarning)
            img = image.open(p, formats=_FORMATS)
    except image.UnidentifiedImageError:
        raise CalibrationDataError(f"{p}: not a JPEG or PNG image") from None
    except image.DecompressionBombError as e:  # over twice Pillow's limit: it refuses on its own
        raise CalibrationDataError(f"{p}: more than the decompression-bomb limit ({first_line(e)})") from None
    except _DECODE_ERRORS as e:
        raise CalibrationDataError(f"{p}: cannot read the image ({first_line(e)})") from None
    width, height = img.size
    if limit is not None and width * height > limit:
        img.close()
        raise CalibrationDataError(
            f"{p}: {width}x{height} pixels, more than the decompression-bomb limit of {limit}"
        )
    if img.mode not in _MODES:
        img.close()
        raise CalibrationDataError(f"{p}: image mode {img.mode} is not 8 bits a channel")
    return img


def resize_image(img: Any, p: ImagePreprocess) -> Any:
    """``img`` brought to ``p.size`` as ``p.resize`` says (the module docstring of
    :mod:`onnxq.calibration.preprocess` gives the arithmetic)."""
    image = _pil()
    assert p.size is not None
    height, width = p.size
    resampling = getattr(image, "Resampling", image)  # Pillow < 9.1 has the constants on Image
    method = getattr(resampling, p.interpolation.upper())
    w, h = img.size
    if p.resize == "resize":
        return img.resize((width, height), method)
    if p.resize == "letterbox":
        r = min(height / h, width / w)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        fill = p.pad_value if img.mode == "L" else (p.pad_value,) * 3
        canvas = image.new(img.mode, (width, height), fill)
        canvas.paste(img.resize((nw, nh), method), ((width - nw) // 2, (height - nh) // 2))
        return canvas
    side = p.crop_shorter_side()
    nw, nh = (side, int(side * h / w)) if w <= h else (int(side * w / h), side)
    resized = img.resize((nw, nh), method)
    top, left = round((nh - height) / 2), round((nw - width) / 2)
    return resized.crop((left, top, left + width, top + height))


def normalize(pixels: np.ndarray, p: ImagePreprocess) -> np.ndarray:
    """Pixels (height, width[, channels], uint8, RGB or L) as the model input ``p`` describes."""
    x = pixels.reshape(*pixels.shape[:2], -1).astype(np.float32) * np.float32(p.scale)
    x = (x - np.asarray(p.mean, np.float32)) / np.asarray(p.std, np.float32)
    if p.channel_order == "BGR":
        x = x[..., ::-1]
    if p.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    dtype = np.dtype(p.dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        x = np.clip(np.rint(x), info.min, info.max)
    return np.ascontiguousarray(x, dtype=dtype)


def _pil() -> ModuleType:
    try:
        from PIL import Image
    except ImportError:
        raise CalibrationDataError(
            'reading calibration images needs Pillow: pip install "onnxq[images]"'
        ) from None
    return Image


__all__ = ["image_shape", "load_image", "normalize", "open_image", "resize_image"]
