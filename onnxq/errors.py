"""The errors onnxq raises.

Every message is one line that names the file, tensor, node or argument at fault and says what was
expected, so the CLI can print it as is and exit with status 2.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


class OnnxqError(Exception):
    """Base class of every error onnxq raises on bad input."""


class ModelLoadError(OnnxqError):
    """A model file is missing, not ONNX, truncated, or its external data cannot be read."""


class UnsupportedModelError(OnnxqError):
    """The model is valid ONNX but onnxq cannot process it (opset, structure)."""


class ConfigError(OnnxqError):
    """A qconfig (object or JSON file) is invalid; the message names the JSON path."""


class CalibrationDataError(OnnxqError):
    """Calibration data does not match the model (names, ranks, shapes, dtypes) or is empty."""


class ExportError(OnnxqError):
    """A torch module could not be exported to ONNX (bad arguments or an exporter failure)."""


class KernelError(OnnxqError):
    """A native kernel refused its arguments (returned a non-zero status)."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), for one-line errors
    that wrap what a library raised."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def enum_member(cls: type[E], name: str, what: str) -> E:
    """The member of the string enum ``cls`` whose value is ``name``; a :class:`ConfigError`
    naming ``what`` and the known values otherwise."""
    try:
        return cls(name)
    except ValueError:
        known = ", ".join(str(m.value) for m in cls)
        raise ConfigError(f"unknown {what} {name!r} (expected one of {known})") from None


__all__ = [
    "CalibrationDataError",
    "ConfigError",
    "ExportError",
    "KernelError",
    "ModelLoadError",
    "OnnxqError",
    "UnsupportedModelError",
    "enum_member",
    "first_line",
]
