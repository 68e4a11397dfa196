"""ISA selection and the kernel table, read from the native library.

The active ISA is process-wide (one setting in C). ``ONNXQ_ISA`` is read once, when the library
first runs; :func:`set_isa` / :func:`use_isa` change it afterwards, e.g. in tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from onnxq.errors import KernelError
from onnxq.kernels._ffi import check, ffi, lib, show

__all__ = [
    "ISAS",
    "KernelInfo",
    "active_isa",
    "available_isas",
    "kernel_table",
    "selected_kernel",
    "set_isa",
    "use_isa",
]

ISAS: tuple[str, ...] = tuple(ffi.string(lib.onnxq_isa_name(i)).decode() for i in range(lib.ONNXQ_ISA_COUNT))


@dataclass(frozen=True)
class KernelInfo:
    """One micro-kernel from native/kernels.list (as compiled for this architecture)."""

    family: str
    op: str
    name: str
    isa: str
    tile: str
    available: bool  # this CPU can run it


def available_isas() -> tuple[str, ...]:
    """ISAs this CPU and OS provide, best last (always starts with "scalar")."""
    mask = lib.onnxq_isa_mask()
    return tuple(name for i, name in enumerate(ISAS) if (mask >> i) & 1)


def active_isa() -> str:
    """The ISA kernels run with now; KernelError when ONNXQ_ISA named an unusable ISA."""
    isa = lib.onnxq_isa_active()
    if isa < 0:
        check(lib.onnxq_isa_status())
    return ISAS[isa]


def set_isa(name: str | None) -> None:
    """Force kernels onto ``name`` (None or "auto": the best available) for the whole process."""
    if name is not None and not isinstance(name, str):
        raise KernelError(f"isa: expected a string, got {type(name).__name__}")
    check(lib.onnxq_isa_set(ffi.NULL if name is None else name.encode()))


@contextmanager
def use_isa(name: str | None) -> Iterator[str]:
    """Context manager: run the block with ``name`` active, then restore the previous ISA."""
    previous = lib.onnxq_isa_active()
    set_isa(name)
    try:
        yield ISAS[lib.onnxq_isa_active()]
    finally:
        check(lib.onnxq_isa_set(ISAS[previous].encode() if previous >= 0 else ffi.NULL))


def kernel_table() -> list[KernelInfo]:
    """Every micro-kernel compiled in, best ISA first within each op."""
    mask = lib.onnxq_isa_mask()
    rows = []
    for i in range(lib.onnxq_kernel_count()):
        info = lib.onnxq_kernel_get(i)
        rows.append(
            KernelInfo(
                family=ffi.string(info.family).decode(),
                op=ffi.string(info.op).decode(),
                name=ffi.string(info.name).decode(),
                isa=ISAS[info.isa],
                tile=ffi.string(info.tile).decode(),
                available=bool((mask >> info.isa) & 1),
            )
        )
    return rows


def selected_kernel(op: str) -> str:
    """Name of the micro-kernel ``op`` runs with under the active ISA."""
    if not isinstance(op, str):
        raise KernelError(f"op: expected a kernel op name (str), got {show(op)}")
    name = lib.onnxq_kernel_selected(op.encode())
    if name == ffi.NULL:
        active_isa()  # raises when ONNXQ_ISA is bad
        raise KernelError(f"op: unknown kernel op {show(op)}")
    return ffi.string(name).decode()
