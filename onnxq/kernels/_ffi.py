"""Loader of the compiled ``_native`` module and the helpers every wrapper uses.

Wrappers pass numpy arrays to C without copies (``ffi.from_buffer``); they check dtype and
contiguity first, so C only ever sees buffers of the size it was told.
"""

from __future__ import annotations

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

__all__ = ["check", "ffi", "in_ptr", "lib", "out_ptr", "require_array"]

_CTYPES = {
    np.dtype(np.uint8): "uint8_t[]",
    np.dtype(np.int8): "int8_t[]",
    np.dtype(np.int32): "int32_t[]",
    np.dtype(np.float32): "float[]",
}


def check(status: int) -> None:
    """Raise KernelError carrying the C message when status is not ONNXQ_OK."""
    if status != lib.ONNXQ_OK:
        message = ffi.string(lib.onnxq_last_error()).decode("utf-8", "replace")
        name = ffi.string(lib.onnxq_status_name(status)).decode()
        raise KernelError(message or f"native kernel failed ({name})")


def require_array(value: Any, name: str, dtype: np.dtype | type, ndim: int | None = None) -> np.ndarray:
    """``value`` as a C-contiguous array of exactly ``dtype``; KernelError naming ``name`` if not."""
    arr = np.asarray(value)
    want = np.dtype(dtype)
    if arr.dtype != want:
        raise KernelError(f"{name}: expected dtype {want}, got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise KernelError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


def in_ptr(arr: np.ndarray) -> Any:
    """Read-only cffi pointer to a C-contiguous array (no copy)."""
    return ffi.from_buffer(_CTYPES[arr.dtype], arr)


def out_ptr(arr: np.ndarray) -> Any:
    """Writable cffi pointer to a C-contiguous array (no copy)."""
    return ffi.from_buffer(_CTYPES[arr.dtype], arr, require_writable=True)
