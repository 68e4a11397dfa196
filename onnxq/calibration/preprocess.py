"""How an image becomes a model input: :class:`ImagePreprocess`, its presets and its JSON form.

:mod:`onnxq.calibration.images` applies the steps, in this order:

1. decode the JPEG/PNG and convert it to RGB (grayscale, palette, CMYK; RGBA drops its alpha), or
   to 8-bit grayscale when ``channel_order`` is ``"L"``;
2. bring it to ``size`` = (height, width) with ``interpolation`` (bilinear, bicubic, nearest):

   * ``"resize"``: straight to (height, width); the aspect ratio is not kept;
   * ``"resize_shorter_then_center_crop"``: the shorter side to ``shorter_side`` (the longer one
     to ``int(shorter_side * long / short)``), then the central (height, width) crop, its corner
     at ``round((resized - crop) / 2)`` (torchvision's ``Resize`` + ``CenterCrop``). Without a
     ``shorter_side``, ``int(max(size) / 0.875)``: 256 for 224;
   * ``"letterbox"``: scaled by ``min(height / h, width / w)`` (aspect kept; sides rounded),
     centred on a (height, width) canvas of ``pad_value`` (the corner at half the margin, floored);

3. per channel, in float32: ``(pixel * scale - mean) / std`` (``mean``, ``std``: one value for
   every channel, or one per channel in ``channel_order``);
4. channel order (RGB, BGR or L), ``layout`` (NCHW: channels first; NHWC: last) and ``dtype``:
   float32/float16 by a cast, uint8/int8 rounded half to even and clipped to the type's range.

Fields left ``None`` are taken from the model input the images feed
(:func:`onnxq.calibration.images.resolve_preprocess`): ``size`` and ``layout`` from its static
shape, ``channel_order`` from its channel count (1: L, 3: RGB), ``dtype`` from its element type,
``scale`` from that dtype (1/255 for floats, 1 for integers), ``input_name`` the model's only input.
The JSON form (``to_dict`` / ``from_dict``, ``schemas/preprocess.schema.json``) writes every field
and a ``version``; unknown keys are errors.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from onnxq.errors import ConfigError

PREPROCESS_VERSION = 1
RESIZE_MODES = ("resize", "resize_shorter_then_center_crop", "letterbox")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CHANNEL_ORDERS = ("RGB", "BGR", "L")
LAYOUTS = ("NCHW", "NHWC")
IMAGE_DTYPES = ("float32", "float16", "uint8", "int8")
CROP_FRACTION = 0.875  # the central crop's share of the shorter side when no shorter_side is given
MAX_FILE_BYTES = 1 << 20


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fail(name: str, message: str) -> NoReturn:
    raise ConfigError(f"ImagePreprocess.{name} {message}")


@dataclass(frozen=True)
class ImagePreprocess:
    """The preprocessing of calibration images (the module docstring says what each field does).

    Attributes:
        size: (height, width) of the model input; ``None``: from the model's static shape.
        resize: ``"resize"``, ``"resize_shorter_then_center_crop"`` or ``"letterbox"``.
        shorter_side: The shorter side's length before the centre crop (crop mode only).
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
        mean, std: Subtracted, then divided by, after ``scale``: one value or one per channel.
        scale: Pixel values (0..255) are multiplied by it first; ``None``: 1/255 for float dtypes,
            1 for integer ones.
        channel_order: ``"RGB"``, ``"BGR"`` or ``"L"`` (one grayscale channel); ``None``: from the
            model's channel count.
        layout: ``"NCHW"`` or ``"NHWC"``; ``None``: from the model's shape.
        dtype: ``"float32"``, ``"float16"``, ``"uint8"`` or ``"int8"``; ``None``: the input's.
        pad_value: The letterbox canvas's pixel value (0..255, before normalisation).
        input_name: The model input the images feed; ``None``: the model's only input.
    """

    size: tuple[int, int] | None = None
    resize: str = "resize"
    shorter_side: int | None = None
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    scale: float | None = None
    channel_order: str | None = None
    layout: str | None = None
    dtype: str | None = None
    pad_value: int = 114
    input_name: str | None = None

    def __post_init__(self) -> None:
        if self.size is not None:
            if (
                not isinstance(self.size, (tuple, list))
                or len(self.size) != 2
                or not all(_is_int(v) and v > 0 for v in self.size)
            ):
                _fail("size", f"must be (height, width) of two positive integers, got {self.size!r}")
            object.__setattr__(self, "size", tuple(self.size))
        for name, allowed in (
            ("resize", RESIZE_MODES),
            ("interpolation", INTERPOLATIONS),
            ("channel_order", CHANNEL_ORDERS),
            ("layout", LAYOUTS),
            ("dtype", IMAGE_DTYPES),
        ):
            value = getattr(self, name)
            if (value is not None or name in ("resize", "interpolation")) and value not in allowed:
                _fail(name, f"must be one of {', '.join(allowed)}, got {value!r}")
        if self.shorter_side is not None:
            if not _is_int(self.shorter_side) or self.shorter_side < 1:
                _fail("shorter_side", f"must be a positive integer, got {self.shorter_side!r}")
            if self.resize != "resize_shorter_then_center_crop":
                _fail(
                    "shorter_side",
                    f"applies to resize 'resize_shorter_then_center_crop', not {self.resize!r}",
                )
            if self.size is not None and self.shorter_side < max(self.size):
                _fail("shorter_side", f"{self.shorter_side} is smaller than the crop {self.size}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if (
                not isinstance(values, (tuple, list))
                or len(values) not in (1, 3)
                or not all(_is_number(v) for v in values)
            ):
                _fail(name, f"must be 1 or 3 finite numbers, got {values!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if any(s <= 0 for s in self.std):
            _fail("std", f"must be positive, got {self.std!r}")
        channels = {"L": 1, "RGB": 3, "BGR": 3}.get(
            self.channel_order or "", max(len(self.mean), len(self.std))
        )
        for name in ("mean", "std"):
            if len(getattr(self, name)) not in (1, channels):
                _fail(name, f"has {len(getattr(self, name))} values for {channels} channel(s)")
        if self.scale is not None and (not _is_number(self.scale) or self.scale <= 0):
            _fail("scale", f"must be a positive finite number, got {self.scale!r}")
        if not _is_int(self.pad_value) or not 0 <= self.pad_value <= 255:
            _fail("pad_value", f"must be an integer 0..255, got {self.pad_value!r}")
        if self.input_name is not None and (not isinstance(self.input_name, str) or not self.input_name):
            _fail("input_name", f"must be a non-empty string, got {self.input_name!r}")

    @property
    def complete(self) -> bool:
        """Whether every field the steps need is set (nothing is left to the model)."""
        return None not in (self.size, self.scale, self.channel_order, self.layout, self.dtype)

    def crop_shorter_side(self) -> int:
        """The shorter side before the centre crop (given, or the crop over 0.875)."""
        assert self.size is not None
        return self.shorter_side if self.shorter_side is not None else int(max(self.size) / CROP_FRACTION)

    def describe(self) -> str:
        """One line: what an image goes through."""
        size = "?" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        how = self.resize
        if self.resize == "resize_shorter_then_center_crop" and self.size is not None:
            how = f"shorter side {self.crop_shorter_side()}, centre crop"
        scale = "?" if self.scale is None else f"{self.scale:.6g}"
        return (
            f"{size} ({how}, {self.interpolation}), {self.channel_order or '?'}, {self.layout or '?'}, "
            f"{self.dtype or '?'}, (pixel * {scale} - mean {list(self.mean)}) / std {list(self.std)}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("size", "mean", "std"):
            d[name] = None if d[name] is None else list(d[name])
        return {"version": PREPROCESS_VERSION, **d}

    @classmethod
    def from_dict(cls, d: Any, path: str = "$") -> ImagePreprocess:
        """Read :meth:`to_dict`'s form; errors name the JSON path (``$.size``)."""
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected object, got {type(d).__name__}")
        allowed = {"version", *cls.__dataclass_fields__}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ConfigError(f"{path}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
        if "version" not in d:
            raise ConfigError(f"{path}: missing required key 'version'")
        if d["version"] != PREPROCESS_VERSION or isinstance(d["version"], bool):
            raise ConfigError(f"{path}.version: must be {PREPROCESS_VERSION}, got {d['version']!r}")
        args = {k: v for k, v in d.items() if k != "version"}
        for name in ("size", "mean", "std"):
            if name in args and args[name] is not None and not isinstance(args[name], list):
                raise ConfigError(f"{path}.{name}: expected array, got {type(args[name]).__name__}")
        try:
            return cls(**args)
        except ConfigError as e:
            raise ConfigError(str(e).replace("ImagePreprocess.", f"{path}.", 1)) from None

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str]) -> ImagePreprocess:
        """Read a JSON file of :meth:`to_dict`'s form; errors name the file and the JSON path."""
        from onnxq.io import read_json_file  # lazy: io imports onnx

        data = read_json_file(path, "preprocessing file", ConfigError, MAX_FILE_BYTES)
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


#: Named specs: ``imagenet`` (torchvision's classifiers), ``inception`` (Inception v3, timm's
#: 0.5/0.5 models), ``yolo`` (Ultralytics detectors, letterboxed, pixels in 0..1) and ``caffe``
#: (Caffe/Keras ResNet: BGR, 0..255 less the channel means).
_FLOAT_RGB = {"scale": 1 / 255, "channel_order": "RGB", "layout": "NCHW", "dtype": "float32"}
_CROP = "resize_shorter_then_center_crop"
PREPROCESS_PRESETS: dict[str, ImagePreprocess] = {
    "imagenet": ImagePreprocess(
        (224, 224), _CROP, 256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), **_FLOAT_RGB
    ),
    "inception": ImagePreprocess((299, 299), _CROP, 342, mean=(0.5,), std=(0.5,), **_FLOAT_RGB),
    "yolo": ImagePreprocess((640, 640), "letterbox", **_FLOAT_RGB),
    "caffe": ImagePreprocess(
        (224, 224),
        _CROP,
        256,
        mean=(103.939, 116.779, 123.68),
        **{**_FLOAT_RGB, "scale": 1.0, "channel_order": "BGR"},
    ),
}


def resolve_preprocess(spec: str | os.PathLike[str] | ImagePreprocess | None) -> ImagePreprocess | None:
    """A preset name, a JSON file of an :class:`ImagePreprocess`, one itself, or ``None``."""
    if spec is None or isinstance(spec, ImagePreprocess):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(
            f"image preprocessing must be a preset name, a JSON file or an ImagePreprocess, got {spec!r}"
        )
    text = os.fspath(spec)
    if Path(text).exists():
        return ImagePreprocess.from_json_file(text)
    if text in PREPROCESS_PRESETS:
        return PREPROCESS_PRESETS[text]
    if text.endswith(".json"):
        raise ConfigError(f"{text}: cannot read preprocessing file (does not exist)")
    raise ConfigError(
        f"unknown image preprocessing {text!r}: a preset ({', '.join(PREPROCESS_PRESETS)}) or a JSON file"
    )


__all__ = [
    "IMAGE_DTYPES",
    "PREPROCESS_PRESETS",
    "PREPROCESS_VERSION",
    "ImagePreprocess",
    "resolve_preprocess",
]
