"""Loader of the compiled ``_native`` module and the validation layer of the binding boundary.

Every value a wrapper hands to C goes through one of the helpers below, so C only ever sees
buffers of the dtype, contiguity, alignment and length it is told (and C checks every length
and offset again, returning an error status instead of reading out of bounds). Each helper
raises :class:`onnxq.errors.KernelError` with one line naming the argument and what was
expected; none of them casts silently:

- :func:`require_array`: an input tensor. It must have exactly the dtype the kernel computes in
  (a float64 array where float32 is expected is an error, never converted or reinterpreted);
  a non-contiguous or misaligned view is copied to a C-contiguous, aligned array (no copy
  otherwise).
- :func:`require_buffer`: an array C reads or writes in place (packed weights and the arrays
  held by packed-weight objects, ``out=`` arrays): an ``ndarray`` of exactly that dtype, shape
  or size, C-contiguous, aligned (to its elements; packed buffers to 8 bytes) and (for outputs)
  writable already; never copied.
- :func:`require_int`: an integer argument (zero point, size, thread count): a Python or numpy
  integer (or an integral float) inside the range the C field can hold.
- :func:`require_scales`: quantisation multipliers, real numbers rounded to float32 (the type
  ONNX stores scales in).
- :func:`new_array`: an output array; KernelError instead of MemoryError when it is too large.
- :func:`check`: the status of a C call, KernelError with the C message otherwise.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxq.errors import KernelError

try:
    from onnxq.kernels._native import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(
        "onnxq.kernels._native is not built; run `pip install -e . --no-build-isolation` "
        "or `python setup.py build_ext --inplace`"
    ) from exc

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "SIZE_MAX",
    "aligned_empty",
    "byte_ptr",
    "check",
    "ffi",
    "in_ptr",
    "lib",
    "new_array",
    "out_ptr",
    "require_array",
    "require_buffer",
    "require_float",
    "require_int",
    "require_ints",
    "require_scales",
    "require_zero_points",
    "show",
]

_CTYPES = {
    np.dtype(np.uint8): "uint8_t[]",
    np.dtype(np.int8): "int8_t[]",
    np.dtype(np.int32): "int32_t[]",
    np.dtype(np.int64): "int64_t[]",
    np.dtype(np.float32): "float[]",
    np.dtype(np.float64): "double[]",
}
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SIZE_MAX = 2**63 - 1  # sizes handed to C as size_t; larger ones are refused before C sees them


def check(status: int, name: str | None = None) -> None:
    """Raise KernelError carrying the C message (prefixed with ``name:`` when given) when status
    is not ONNXQ_OK."""
    if status != lib.ONNXQ_OK:
        message = ffi.string(lib.onnxq_last_error()).decode("utf-8", "replace")
        status_name = ffi.string(lib.onnxq_status_name(status)).decode()
        message = message or f"native kernel failed ({status_name})"
        raise KernelError(f"{name}: {message}" if name else message)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def show(value: object, limit: int = 60) -> str:
    """A one-line, bounded repr of ``value`` for error messages (arrays by dtype and shape)."""
    if isinstance(value, np.ndarray) and value.size > 4:
        return _describe(value)
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_ndarray(value: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged sequences, objects numpy cannot take
        detail = show(str(exc), 120)
        raise KernelError(f"{name}: expected an array, got {_describe(value)} ({detail})") from None


def _check_layout(
    arr: np.ndarray,
    name: str,
    dtype: np.dtype,
    ndim: int | None,
    shape: Sequence[int] | None,
    size: int | None,
) -> None:
    if arr.dtype != dtype:
        raise KernelError(f"{name}: expected dtype {dtype}, got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise KernelError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise KernelError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    if size is not None and arr.size != size:
        raise KernelError(f"{name}: expected {size} values, got {arr.size}")


def require_array(
    value: Any,
    name: str,
    dtype: np.dtype | type,
    ndim: int | None = None,
    *,
    shape: Sequence[int] | None = None,
    size: int | None = None,
) -> np.ndarray:
    """``value`` as a C-contiguous array of exactly ``dtype`` (and ``ndim`` / ``shape`` / ``size``
    when given); non-contiguous views are copied, any other mismatch is a KernelError naming
    ``name``."""
    arr = _as_ndarray(value, name)
    _check_layout(arr, name, np.dtype(dtype), ndim, shape, size)
    if arr.flags.c_contiguous and arr.flags.aligned:
        return arr
    return np.array(arr, order="C", copy=True)  # contiguous and aligned to its itemsize


def require_buffer(
    value: Any,
    name: str,
    dtype: np.dtype | type,
    ndim: int | None = None,
    *,
    shape: Sequence[int] | None = None,
    size: int | None = None,
    writable: bool = False,
    align: int = 1,
) -> np.ndarray:
    """``value`` itself, which C reads (or with ``writable``, writes) in place: an ndarray of exactly
    ``dtype``, C-contiguous, ``align``-byte aligned; KernelError naming ``name`` otherwise."""
    want = np.dtype(dtype)
    if not isinstance(value, np.ndarray):
        raise KernelError(f"{name}: expected a numpy array of dtype {want}, got {_describe(value)}")
    _check_layout(value, name, want, ndim, shape, size)
    if not value.flags.c_contiguous:
        raise KernelError(
            f"{name}: expected a C-contiguous array (C reads it in place), got a view "
            f"with strides {value.strides}"
        )
    if not value.flags.aligned:
        raise KernelError(f"{name}: expected an array aligned to its {want.itemsize}-byte elements")
    if writable and not value.flags.writeable:
        raise KernelError(f"{name}: expected a writable array")
    if align > 1 and value.size and value.ctypes.data % align:
        raise KernelError(
            f"{name}: expected a {align}-byte aligned buffer, got address {value.ctypes.data:#x}"
        )
    return value


def require_int(
    value: Any, name: str, lo: int | None = INT32_MIN, hi: int | None = INT32_MAX, what: str | None = None
) -> int:
    """``value`` as a Python int in ``[lo, hi]`` (None: unbounded on that side); integral floats
    are accepted, booleans and other types are not. ``what`` replaces the range in the message."""
    if isinstance(value, (bool, np.bool_)):
        raise KernelError(f"{name}: expected an integer, got {show(value)}")
    try:
        v = operator.index(value)
    except TypeError:
        if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
            v = int(value)
        else:
            raise KernelError(f"{name}: expected an integer, got {show(value)}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        if what is None:
            lo_s = "-inf" if lo is None else str(lo)
            hi_s = "inf" if hi is None else str(hi)
            what = f"[{lo_s}, {hi_s}]"
        raise KernelError(f"{name}: {v} is outside {what}")
    return v


def require_ints(values: Any, name: str, count: int, lo: int = 0, hi: int = SIZE_MAX) -> tuple[int, ...]:
    """A sequence of exactly ``count`` integers in ``[lo, hi]`` (strides, pads, kernel sizes)."""
    try:
        seq = tuple(values)
    except TypeError:
        raise KernelError(f"{name}: expected {count} integers, got {show(values)}") from None
    bad = KernelError(f"{name}: expected {count} non-negative integers, got {show(list(seq))}")
    if len(seq) != count:
        raise bad
    try:
        return tuple(require_int(v, name, lo, hi) for v in seq)
    except KernelError:
        raise bad from None


def require_scales(value: Any, name: str, *, flatten: bool = False) -> np.ndarray:
    """Quantisation multipliers: real numbers (a scalar or 1-D; any shape with ``flatten``), as a
    C-contiguous 1-D float32 array (float64 rounds to the nearest float32, as ONNX stores scales);
    the values are checked in C."""
    arr = _as_ndarray(value, name)
    if arr.dtype.kind not in "fiu" or (arr.ndim > 1 and not flatten):
        raise KernelError(f"{name}: expected real numbers (a scalar or a 1-D array), got {_describe(arr)}")
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(arr.astype(np.float32).reshape(-1))


def require_float(value: Any, name: str) -> float:
    """A real scalar (scale), as a Python float (C rounds it to float32 and checks the value)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        arr = _as_ndarray(value, name)
        if arr.ndim != 0 or arr.dtype.kind not in "fiu":
            raise KernelError(f"{name}: expected a real number, got {show(value)}")
        value = arr[()]
    return float(value)


def require_zero_points(value: Any, name: str) -> np.ndarray:
    """Zero points: integers (a scalar or any shape, flattened) as a C-contiguous int32 array;
    values outside int32 are a KernelError, the type range is checked in C."""
    arr = _as_ndarray(value, name)
    if arr.dtype.kind not in "iu":
        raise KernelError(f"{name}: expected integers, got dtype {arr.dtype}")
    flat = arr.reshape(-1)
    if flat.size and (int(flat.min()) < INT32_MIN or int(flat.max()) > INT32_MAX):
        raise KernelError(f"{name}: values must fit in int32, got {flat.min()}..{flat.max()}")
    return np.ascontiguousarray(flat.astype(np.int32))


def new_array(shape: Sequence[int], dtype: np.dtype | type, name: str) -> np.ndarray:
    """``np.empty(shape, dtype)``; KernelError when the array is too large to allocate."""
    try:
        return np.empty(tuple(int(d) for d in shape), dtype=dtype)
    except (MemoryError, ValueError) as exc:
        raise KernelError(
            f"{name}: cannot allocate an output of shape {tuple(shape)} ({show(str(exc), 120)})"
        ) from None


def _passable(arr: object) -> bool:
    return (
        isinstance(arr, np.ndarray) and arr.flags.c_contiguous and arr.flags.aligned and arr.dtype in _CTYPES
    )


def in_ptr(arr: np.ndarray) -> Any:
    """Read-only cffi pointer to a C-contiguous, aligned array (no copy)."""
    if not _passable(arr):
        raise KernelError(f"internal: cannot pass {_describe(arr)} to C (not C-contiguous and aligned)")
    return ffi.from_buffer(_CTYPES[arr.dtype], arr)


def out_ptr(arr: np.ndarray) -> Any:
    """Writable cffi pointer to a C-contiguous, aligned array (no copy)."""
    if not _passable(arr):
        raise KernelError(f"internal: cannot pass {_describe(arr)} to C (not C-contiguous and aligned)")
    return ffi.from_buffer(_CTYPES[arr.dtype], arr, require_writable=True)


def byte_ptr(arr: np.ndarray) -> Any:
    """Read-only ``uint8_t*`` to the bytes of a C-contiguous array of any dtype (no copy)."""
    if not (isinstance(arr, np.ndarray) and arr.flags.c_contiguous):
        raise KernelError(f"internal: cannot pass {_describe(arr)} to C (not C-contiguous)")
    return ffi.from_buffer("uint8_t[]", arr)


def aligned_empty(nbytes: int, align: int = 64) -> np.ndarray:
    """An uninitialised uint8 buffer of ``nbytes`` starting at an ``align``-byte boundary (packed
    weights); KernelError when it cannot be allocated."""
    raw = new_array((nbytes + align,), np.uint8, "packed weights")
    start = (-raw.ctypes.data) % align
    return raw[start : start + nbytes]
