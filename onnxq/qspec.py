"""QSpec: how one tensor is quantized (dtype, symmetry, granularity, observer), validated on
construction, with its JSON form (``schemas/qconfig.schema.json``, versions 1 and 2), and the JSON
checks :mod:`onnxq.qconfig` shares: an object's keys, with errors naming the JSON path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from onnxq.errors import ConfigError
from onnxq.scheme import (
    DTYPE_NAMES,
    PER_TENSOR,
    Granularity,
    PerBlock,
    PerChannel,
    PerTensor,
    granularity_from_dict,
)

#: The version of the JSON format ``to_dict`` writes.
CONFIG_VERSION = 2


def _observer_registry() -> tuple[frozenset[str], Callable[[str], bool], Callable[..., None]]:
    from onnxq.calibration.observers import (  # lazy: they import us
        check_observer_args,
        observer_names,
        observer_supports_axis,
    )

    return frozenset(observer_names()), observer_supports_axis, check_observer_args


@dataclass(frozen=True)
class QSpec:
    """How one tensor is quantized.

    Attributes:
        dtype: One of int4, uint4, int8, uint8, int16, uint16.
        symmetric: Zero point in the middle of the range (0 for signed types, narrow range).
        granularity: :class:`PerTensor`, :class:`PerChannel` or :class:`PerBlock`; an axis of
            ``None`` is the consuming op's natural one (Conv weight axis 0, ConvTranspose 1, Gemm
            by transB, MatMul the last; blocks along the axis the op sums over).
        reduce_range: Drop one bit of range (PyTorch's x86/fbgemm activations).
        dynamic: Parameters computed at run time from each input (activations only).
        observer: A registered observer name; ``observer_args`` its keyword arguments.
    """

    dtype: str = "uint8"
    symmetric: bool = False
    granularity: Granularity = PER_TENSOR
    reduce_range: bool = False
    dynamic: bool = False
    observer: str = "minmax"
    observer_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_NAMES:
            raise ConfigError(f"QSpec.dtype must be one of {DTYPE_NAMES}, got {self.dtype!r}")
        for name in ("symmetric", "reduce_range", "dynamic"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"QSpec.{name} must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.granularity, (PerTensor, PerChannel, PerBlock)):
            raise ConfigError(
                f"QSpec.granularity must be PerTensor, PerChannel or PerBlock, got {self.granularity!r}"
            )
        observers, supports_axis, check_args = _observer_registry()
        if self.observer not in observers:
            known = ", ".join(sorted(observers))
            raise ConfigError(f"QSpec.observer {self.observer!r} is not registered (known: {known})")
        if not isinstance(self.observer_args, Mapping):
            raise ConfigError("QSpec.observer_args must be a mapping")
        if not isinstance(self.granularity, PerTensor) and not supports_axis(self.observer):
            raise ConfigError(
                f"QSpec.observer {self.observer!r} keeps one range per tensor; it cannot observe "
                f"{granularity_name(self.granularity)} parameters"
            )
        check_args(self.observer, self.observer_args, not isinstance(self.granularity, PerTensor))
        if self.dynamic and (self.dtype != "uint8" or self.symmetric or self.reduce_range):
            raise ConfigError(
                "QSpec.dynamic needs dtype uint8, asymmetric, without reduce_range "
                "(DynamicQuantizeLinear computes full-range uint8 parameters)"
            )
        if self.dynamic and not isinstance(self.granularity, PerTensor):
            raise ConfigError("QSpec.dynamic parameters are per tensor (DynamicQuantizeLinear)")
        object.__setattr__(self, "observer_args", dict(self.observer_args))

    @property
    def per_channel(self) -> bool:
        """True for :class:`PerChannel` granularity."""
        return isinstance(self.granularity, PerChannel)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "symmetric": self.symmetric,
            "granularity": self.granularity.to_dict(),
            "reduce_range": self.reduce_range,
            "dynamic": self.dynamic,
            "observer": self.observer,
            "observer_args": dict(self.observer_args),
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "$", version: int = CONFIG_VERSION) -> QSpec:
        types = _QSPEC_TYPES[version]
        expect_object(d, path, set(types))
        for key, typ in types.items():
            if key in d and not isinstance(d[key], typ):
                raise ConfigError(f"{path}.{key}: expected {_type_name(typ)}, got {json_type(d[key])}")
        args = dict(d)
        try:
            if "per_channel" in args:  # version 1
                args["granularity"] = PerChannel() if args.pop("per_channel") else PER_TENSOR
            elif "granularity" in args:
                args["granularity"] = granularity_from_dict(args["granularity"])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{path}.granularity: {e}") from None
        try:
            return cls(**args)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


_V1_TYPES: dict[str, type | tuple[type, ...]] = {
    "dtype": str,
    "symmetric": bool,
    "per_channel": bool,
    "reduce_range": bool,
    "observer": str,
    "observer_args": dict,
}
_V2_TYPES: dict[str, type | tuple[type, ...]] = {
    "dtype": str,
    "symmetric": bool,
    "granularity": (dict, str),
    "reduce_range": bool,
    "dynamic": bool,
    "observer": str,
    "observer_args": dict,
}
_QSPEC_TYPES = {1: _V1_TYPES, 2: _V2_TYPES}


def granularity_name(g: Granularity) -> str:
    return {PerTensor: "per-tensor", PerChannel: "per_channel", PerBlock: "per_block"}[type(g)]


def _type_name(t: type | tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in t) if isinstance(t, tuple) else t.__name__


def json_type(v: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    if v is None:
        return "null"
    return "object" if isinstance(v, dict) else names.get(type(v), type(v).__name__)


def expect_object(
    d: Any, path: str, allowed: set[str] | None, required: set[str] | frozenset[str] = frozenset()
) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected object, got {json_type(d)}")
    if allowed is not None:
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ConfigError(f"{path}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(set(required) - set(d))
    if missing:
        raise ConfigError(f"{path}: missing required key {missing[0]!r}")


__all__ = ["CONFIG_VERSION", "QSpec", "expect_object", "granularity_name", "json_type"]
