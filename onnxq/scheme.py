"""The quantization scheme as types: integer dtypes and granularities.

Dtypes (:data:`QDTYPES`): ``int4``/``uint4``, ``int8``/``uint8``, ``int16``/``uint16``, the integer
types of ONNX QuantizeLinear/DequantizeLinear. 4-bit values are held in numpy as ``ml_dtypes``
``int4``/``uint4`` (one value per byte in memory; ONNX packs two per byte in the file).

Granularities: how many scale/zero-point pairs a tensor has.

* :class:`PerTensor` — one pair;
* :class:`PerChannel` ``(axis)`` — one pair per index along ``axis``;
* :class:`PerBlock` ``(axis, block_size)`` — one pair per run of ``block_size`` consecutive
  elements along ``axis`` (the last block may be shorter), as DequantizeLinear's ``block_size``
  (opset 21): the scale has the tensor's shape with ``ceil(n / block_size)`` along ``axis``.

In a :class:`~onnxq.qconfig.QSpec` the axis may be ``None``: the consuming op's natural axis (its
output channels for :class:`PerChannel`, the axis it sums over for :class:`PerBlock`), which the
plan fills in per node; :class:`~onnxq.qparams.QParams` always hold a concrete axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class QDType:
    """One integer type: its name, bit width and signedness."""

    name: str
    bits: int
    signed: bool

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype holding its values (``ml_dtypes`` for 4 bits)."""
        return np.dtype(_NUMPY[self.name])

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


_NUMPY: dict[str, Any] = {
    "int4": ml_dtypes.int4,
    "uint4": ml_dtypes.uint4,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
}
QDTYPES: dict[str, QDType] = {
    d.name: d
    for d in (
        QDType("int4", 4, True), QDType("uint4", 4, False), QDType("int8", 8, True),
        QDType("uint8", 8, False), QDType("int16", 16, True), QDType("uint16", 16, False),
    )
}  # fmt: skip
DTYPE_NAMES = tuple(QDTYPES)


def qdtype(name: str) -> QDType:
    """The :class:`QDType` called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return QDTYPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"quantized dtype must be one of {', '.join(DTYPE_NAMES)}, got {name!r}") from None


def dtype_of(array: np.ndarray) -> QDType:
    """The :class:`QDType` of an integer array's dtype (``ValueError`` for other dtypes)."""
    name = str(np.asarray(array).dtype)
    if name not in QDTYPES:
        raise ValueError(f"expected one of {', '.join(DTYPE_NAMES)}, got {name}")
    return QDTYPES[name]


def _check_axis(axis: object, what: str) -> None:
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int)):
        raise ValueError(f"{what}.axis must be an int or None, got {axis!r}")


@dataclass(frozen=True)
class PerTensor:
    """One scale and zero point for the whole tensor."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "per_tensor"}


@dataclass(frozen=True)
class PerChannel:
    """One scale and zero point per index along ``axis`` (None: the op's output-channel axis)."""

    axis: int | None = None

    def __post_init__(self) -> None:
        _check_axis(self.axis, "PerChannel")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "per_channel", "axis": self.axis}


@dataclass(frozen=True)
class PerBlock:
    """One scale and zero point per ``block_size`` elements along ``axis`` (None: the op's
    reduction axis)."""

    axis: int | None = None
    block_size: int = 32

    def __post_init__(self) -> None:
        _check_axis(self.axis, "PerBlock")
        b = self.block_size
        if isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= MAX_BLOCK_SIZE:
            shown = repr(b) if len(repr(b)) <= 40 else repr(b)[:37] + "..."
            raise ValueError(f"PerBlock.block_size must be an int from 2 to {MAX_BLOCK_SIZE}, got {shown}")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "per_block", "axis": self.axis, "block_size": self.block_size}


Granularity = Union[PerTensor, PerChannel, PerBlock]  # noqa: UP007 (a runtime alias for isinstance)
GRANULARITIES: dict[str, type] = {"per_tensor": PerTensor, "per_channel": PerChannel, "per_block": PerBlock}
PER_TENSOR = PerTensor()


#: onnxruntime reads DequantizeLinear's block_size as a 32-bit int.
MAX_BLOCK_SIZE = 2**31 - 1


def granularity_from_dict(d: Any) -> Granularity:
    """Inverse of ``to_dict``; a bare type name (``"per_channel"``) means its defaults."""
    if isinstance(d, str):
        d = {"type": d}
    if not isinstance(d, dict):
        raise ValueError(f"granularity must be an object or one of {', '.join(GRANULARITIES)}")
    kind = d.get("type")
    if kind not in GRANULARITIES:
        raise ValueError(f"granularity type must be one of {', '.join(GRANULARITIES)}, got {kind!r}")
    args = {k: v for k, v in d.items() if k != "type"}
    allowed = {"per_tensor": set(), "per_channel": {"axis"}, "per_block": {"axis", "block_size"}}[kind]
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ValueError(f"granularity {kind}: unknown key {unknown[0]!r}")
    return GRANULARITIES[kind](**args)  # type: ignore[no-any-return]


__all__ = [
    "DTYPE_NAMES",
    "PER_TENSOR",
    "QDTYPES",
    "Granularity",
    "PerBlock",
    "PerChannel",
    "PerTensor",
    "QDType",
    "dtype_of",
    "granularity_from_dict",
    "qdtype",
]
