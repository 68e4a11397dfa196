"""Array helpers shared by the observers: float conversion, NaN/Inf filtering, channel layout."""

from __future__ import annotations

import inspect
import math
from collections.abc import Collection
from typing import Any

import numpy as np


def as_float(x: np.ndarray) -> np.ndarray:
    """``x`` as a float array (float32/float64 kept as they are, everything else to float32)."""
    arr = np.asarray(x)
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        return arr
    return arr.astype(np.float32)


def finite_min_max(x: np.ndarray) -> tuple[float, float, int, np.ndarray]:
    """``(min, max, nonfinite_count, finite_values)`` of a float array, ignoring NaN and ±Inf.

    The common all-finite case costs two passes (min and max propagate NaN and reveal Inf);
    only when they are not finite is a mask built. With no finite value, ``min > max``.
    """
    if x.size == 0:
        return math.inf, -math.inf, 0, x.reshape(-1)
    lo, hi = float(x.min()), float(x.max())
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi, 0, x
    finite = x[np.isfinite(x)]
    bad = x.size - finite.size
    if finite.size == 0:
        return math.inf, -math.inf, bad, finite
    return float(finite.min()), float(finite.max()), bad, finite


def channels_first(x: np.ndarray, axis: int) -> np.ndarray:
    """``x`` reshaped to ``(channels, -1)`` with the channel ``axis`` first (negative axes allowed)."""
    if x.ndim == 0:
        raise ValueError(f"per-channel observer (axis={axis}) got a 0-d tensor")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"per-channel axis {axis} out of range for a tensor of rank {x.ndim}")
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


def channel_min_max(x2d: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-row ``(min, max, nonfinite_count)`` of a ``(C, N)`` array ignoring NaN/Inf.

    A row with no finite value gets ``min = +inf`` and ``max = -inf``.
    """
    c = x2d.shape[0]
    if x2d.shape[1] == 0:
        return np.full(c, np.inf), np.full(c, -np.inf), 0
    lo = x2d.min(axis=1).astype(np.float64)
    hi = x2d.max(axis=1).astype(np.float64)
    if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
        return lo, hi, 0
    finite = np.isfinite(x2d)
    bad = int(x2d.size - np.count_nonzero(finite))
    lo = np.where(finite, x2d, np.inf).min(axis=1).astype(np.float64)
    hi = np.where(finite, x2d, -np.inf).max(axis=1).astype(np.float64)
    return lo, hi, bad


def to_json_floats(a: np.ndarray | float) -> float | list[float] | None:
    """A scalar or 1-d array as JSON-friendly floats; non-finite entries become ``None``."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        v = float(arr)
        return v if math.isfinite(v) else None
    return [float(v) if math.isfinite(v) else None for v in arr]


def from_json_floats(v: float | list[float | None] | None, missing: float) -> np.ndarray:
    """Inverse of :func:`to_json_floats`: ``None`` entries become ``missing`` (±inf)."""
    if v is None:
        return np.asarray(missing, dtype=np.float64)
    if isinstance(v, list):
        return np.asarray([missing if e is None else e for e in v], dtype=np.float64)
    return np.asarray(float(v), dtype=np.float64)


def constructor_args(cls: type) -> tuple[str, ...]:
    """The names of ``cls.__init__``'s arguments (without ``self``): the settings a state records."""
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def check_state_fields(kind: str, state: dict[str, Any], fields: Collection[str]) -> None:
    """Raise a one-line ValueError unless ``state`` is a state of the ``kind`` observer with exactly
    ``fields`` (naming the first field it lacks or has beyond them)."""
    named = state.get("observer") if isinstance(state, dict) else None
    if named != kind:
        raise ValueError(f"state of {named!r} given to the {kind} observer")
    missing, unknown = sorted(set(fields) - state.keys()), sorted(state.keys() - set(fields))
    if missing or unknown:
        what = f"lacks field {missing[0]!r}" if missing else f"has unknown field {unknown[0]!r}"
        raise ValueError(f"{kind} observer state {what}")


def count_field(state: dict[str, Any], name: str) -> int:
    """``state[name]`` checked to be a count (a non-negative int), else a one-line ValueError."""
    value = state[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name!r} must be a non-negative int, got {value!r}")
    return value


def int_arg(kind: str, name: str, value: object, least: int, most: int) -> int:
    """A constructor argument checked to be an int in ``[least, most]``, else a one-line ConfigError."""
    from onnxq.errors import ConfigError

    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise ConfigError(f"observer {kind!r}: {name} must be an int in [{least}, {most}], got {value!r}")
    return value
