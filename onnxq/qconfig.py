"""Quantization configuration: QSpec, QConfig, QConfigMapping and the backend presets.

The ONNX counterpart of PyTorch's ``QConfig`` / ``QConfigMapping``. All classes are frozen and
validated on construction; ``to_dict`` / ``from_dict`` round-trip through the JSON format described
by ``schemas/qconfig.schema.json``. ``from_dict`` rejects unknown keys and wrong types with a
:class:`~onnxq.errors.ConfigError` naming the JSON path (``$.op_types.Conv.weight.dtype``).

Precedence when looking up a node (as in PyTorch): exact node name, then the first matching node
name regex, then op type, then the global qconfig. ``None`` at any level means "leave in float".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnxq.errors import ConfigError

CONFIG_VERSION = 1
DTYPES = ("uint8", "int8")
PRESETS = ("x86", "fbgemm", "qnnpack", "arm")


def _registered_observers() -> frozenset[str]:
    from onnxq.calibration.observers import observer_names  # lazy: observers import this module

    return frozenset(observer_names())


@dataclass(frozen=True)
class QSpec:
    """How one tensor is quantized.

    ``per_channel`` uses the axis natural to the consuming op (Conv weight axis 0, ConvTranspose 1,
    Gemm by transB, MatMul the last); ``observer`` names a registered observer and
    ``observer_args`` its keyword arguments (e.g. ``{"bins": 2048}``).
    """

    dtype: str = "uint8"
    symmetric: bool = False
    per_channel: bool = False
    reduce_range: bool = False
    observer: str = "minmax"
    observer_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"QSpec.dtype must be one of {DTYPES}, got {self.dtype!r}")
        for name in ("symmetric", "per_channel", "reduce_range"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"QSpec.{name} must be a bool, got {getattr(self, name)!r}")
        if self.observer not in _registered_observers():
            known = ", ".join(sorted(_registered_observers()))
            raise ConfigError(f"QSpec.observer {self.observer!r} is not registered (known: {known})")
        if not isinstance(self.observer_args, Mapping):
            raise ConfigError("QSpec.observer_args must be a mapping")
        object.__setattr__(self, "observer_args", dict(self.observer_args))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "symmetric": self.symmetric,
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "observer": self.observer,
            "observer_args": dict(self.observer_args),
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "$") -> QSpec:
        _expect_object(d, path, set(_QSPEC_TYPES))
        for key, typ in _QSPEC_TYPES.items():
            if key in d and not isinstance(d[key], typ):
                raise ConfigError(f"{path}.{key}: expected {typ.__name__}, got {_jtype(d[key])}")
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


_QSPEC_TYPES: dict[str, type] = {
    "dtype": str,
    "symmetric": bool,
    "per_channel": bool,
    "reduce_range": bool,
    "observer": str,
    "observer_args": dict,
}


@dataclass(frozen=True)
class QConfig:
    """Activation and weight specs for one node. Weights are always int8 symmetric."""

    activation: QSpec
    weight: QSpec

    def __post_init__(self) -> None:
        if not isinstance(self.activation, QSpec) or not isinstance(self.weight, QSpec):
            raise ConfigError("QConfig.activation and QConfig.weight must be QSpec")
        if self.weight.dtype != "int8" or not self.weight.symmetric:
            raise ConfigError("QConfig.weight must be int8 symmetric (weights are stored as int8)")
        if self.activation.per_channel:
            raise ConfigError("QConfig.activation cannot be per_channel (activations are per-tensor)")

    def to_dict(self) -> dict[str, Any]:
        return {"activation": self.activation.to_dict(), "weight": self.weight.to_dict()}

    @classmethod
    def from_dict(cls, d: Any, path: str = "$") -> QConfig | None:
        """A QConfig object, a preset name, or ``null`` (leave in float)."""
        if d is None:
            return None
        if isinstance(d, str):
            if d not in PRESETS:
                raise ConfigError(f"{path}: unknown preset {d!r} (expected one of {PRESETS})")
            return get_default_qconfig(d)
        _expect_object(d, path, {"activation", "weight"}, required={"activation", "weight"})
        try:
            return cls(
                QSpec.from_dict(d["activation"], f"{path}.activation"),
                QSpec.from_dict(d["weight"], f"{path}.weight"),
            )
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("$") else f"{path}: {msg}") from None


def get_default_qconfig(backend: str = "x86") -> QConfig:
    """PyTorch's default post-training qconfig for ``backend``.

    x86 / fbgemm: histogram observer on uint8 activations with ``reduce_range``, per-channel
    symmetric int8 weights. qnnpack / arm: histogram on uint8 activations without
    ``reduce_range``, per-tensor symmetric int8 weights.
    """
    if backend in ("x86", "fbgemm"):
        return QConfig(
            QSpec("uint8", reduce_range=True, observer="histogram"),
            QSpec("int8", symmetric=True, per_channel=True, observer="per_channel_minmax"),
        )
    if backend in ("qnnpack", "arm"):
        return QConfig(
            QSpec("uint8", observer="histogram"),
            QSpec("int8", symmetric=True, observer="minmax"),
        )
    raise ConfigError(f"unknown qconfig backend {backend!r} (expected one of {PRESETS})")


@dataclass(frozen=True)
class QConfigMapping:
    """Which QConfig (or ``None`` = float) applies to each node."""

    global_qconfig: QConfig | None = None
    op_types: Mapping[str, QConfig | None] = field(default_factory=dict)
    node_names: Mapping[str, QConfig | None] = field(default_factory=dict)
    node_name_regexes: tuple[tuple[str, QConfig | None], ...] = ()
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ConfigError(f"QConfigMapping.version must be {CONFIG_VERSION}, got {self.version}")
        for pattern, _ in self.node_name_regexes:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ConfigError(f"invalid node name regex {pattern!r}: {e}") from None
        object.__setattr__(self, "op_types", dict(self.op_types))
        object.__setattr__(self, "node_names", dict(self.node_names))
        object.__setattr__(self, "node_name_regexes", tuple(self.node_name_regexes))

    def qconfig_for(self, node_name: str, op_type: str) -> QConfig | None:
        """The QConfig for a node, or ``None`` to leave it in float."""
        if node_name in self.node_names:
            return self.node_names[node_name]
        for pattern, qc in self.node_name_regexes:
            if re.fullmatch(pattern, node_name):
                return qc
        if op_type in self.op_types:
            return self.op_types[op_type]
        return self.global_qconfig

    # builder-style helpers mirroring torch.ao.quantization.QConfigMapping
    def set_global(self, qc: QConfig | None) -> QConfigMapping:
        return _replace(self, global_qconfig=qc)

    def set_op_type(self, op_type: str, qc: QConfig | None) -> QConfigMapping:
        return _replace(self, op_types={**self.op_types, op_type: qc})

    def set_node_name(self, name: str, qc: QConfig | None) -> QConfigMapping:
        return _replace(self, node_names={**self.node_names, name: qc})

    def set_node_name_regex(self, pattern: str, qc: QConfig | None) -> QConfigMapping:
        return _replace(self, node_name_regexes=(*self.node_name_regexes, (pattern, qc)))

    def with_overrides(
        self, *, activation_dtype: str | None = None, per_channel: bool | None = None
    ) -> QConfigMapping:
        """The mapping with every QConfig in it changed (the CLI's ``--activation-dtype`` and
        ``--per-tensor``); ``None`` entries (float) stay ``None``.

        ``activation_dtype``: "uint8" (asymmetric) or "int8" (symmetric); ``per_channel``: weights
        per channel (``per_channel_minmax`` observer) or per tensor (``minmax``).
        """
        if activation_dtype is not None and activation_dtype not in DTYPES:
            raise ConfigError(f"activation dtype must be one of {DTYPES}, got {activation_dtype!r}")

        def change(qc: QConfig | None) -> QConfig | None:
            if qc is None:
                return None
            act, weight = qc.activation, qc.weight
            if activation_dtype is not None:
                act = _replace_spec(act, dtype=activation_dtype, symmetric=activation_dtype == "int8")
            if per_channel is not None and weight.per_channel != per_channel:
                swap = {"minmax": "per_channel_minmax", "per_channel_minmax": "minmax"}
                observer = swap.get(weight.observer, weight.observer)
                weight = _replace_spec(weight, per_channel=per_channel, observer=observer)
            return QConfig(act, weight)

        return QConfigMapping(
            change(self.global_qconfig),
            {k: change(v) for k, v in self.op_types.items()},
            {k: change(v) for k, v in self.node_names.items()},
            tuple((p, change(v)) for p, v in self.node_name_regexes),
            self.version,
        )

    def to_dict(self) -> dict[str, Any]:
        def enc(qc: QConfig | None) -> dict[str, Any] | None:
            return None if qc is None else qc.to_dict()

        return {
            "version": self.version,
            "global": enc(self.global_qconfig),
            "op_types": {k: enc(v) for k, v in self.op_types.items()},
            "node_names": {k: enc(v) for k, v in self.node_names.items()},
            "node_name_regex": [{"pattern": p, "qconfig": enc(q)} for p, q in self.node_name_regexes],
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "$") -> QConfigMapping:
        keys = {"version", "global", "op_types", "node_names", "node_name_regex"}
        _expect_object(d, path, keys, required={"version"})
        if not isinstance(d["version"], int) or isinstance(d["version"], bool):
            raise ConfigError(f"{path}.version: expected integer, got {_jtype(d['version'])}")
        maps: dict[str, dict[str, QConfig | None]] = {}
        for key in ("op_types", "node_names"):
            sub = d.get(key, {})
            _expect_object(sub, f"{path}.{key}", None)
            maps[key] = {k: QConfig.from_dict(v, f"{path}.{key}.{k}") for k, v in sub.items()}
        regexes = d.get("node_name_regex", [])
        if not isinstance(regexes, list):
            raise ConfigError(f"{path}.node_name_regex: expected array, got {_jtype(regexes)}")
        pairs = []
        for i, item in enumerate(regexes):
            p = f"{path}.node_name_regex[{i}]"
            _expect_object(item, p, {"pattern", "qconfig"}, required={"pattern", "qconfig"})
            if not isinstance(item["pattern"], str):
                raise ConfigError(f"{p}.pattern: expected string, got {_jtype(item['pattern'])}")
            pairs.append((item["pattern"], QConfig.from_dict(item["qconfig"], f"{p}.qconfig")))
        try:
            return cls(
                QConfig.from_dict(d.get("global"), f"{path}.global"),
                maps["op_types"],
                maps["node_names"],
                tuple(pairs),
                d["version"],
            )
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("$") else f"{path}: {msg}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> QConfigMapping:
        """Load a mapping from a JSON file; errors name the file and the JSON path."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: cannot read qconfig file ({e.strerror})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def resolve_qconfig(spec: str | QConfig | QConfigMapping | None) -> QConfigMapping:
    """Accept a preset name, a QConfig, a mapping or ``None`` (the x86 preset) as a mapping."""
    if spec is None:
        spec = "x86"
    if isinstance(spec, QConfigMapping):
        return spec
    if isinstance(spec, QConfig):
        return QConfigMapping(global_qconfig=spec)
    if isinstance(spec, str):
        if spec.endswith(".json"):
            return QConfigMapping.from_json_file(spec)
        return QConfigMapping(global_qconfig=get_default_qconfig(spec))
    raise ConfigError(f"qconfig must be a preset name, QConfig or QConfigMapping, got {spec!r}")


def _replace(m: QConfigMapping, **changes: Any) -> QConfigMapping:
    from dataclasses import replace

    return replace(m, **changes)


def _replace_spec(spec: QSpec, **changes: Any) -> QSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def _jtype(v: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    if v is None:
        return "null"
    return "object" if isinstance(v, dict) else names.get(type(v), type(v).__name__)


def _expect_object(
    d: Any, path: str, allowed: set[str] | None, required: set[str] | frozenset[str] = frozenset()
) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected object, got {_jtype(d)}")
    if allowed is not None:
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ConfigError(f"{path}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(set(required) - set(d))
    if missing:
        raise ConfigError(f"{path}: missing required key {missing[0]!r}")


__all__ = [
    "CONFIG_VERSION",
    "PRESETS",
    "QConfig",
    "QConfigMapping",
    "QSpec",
    "get_default_qconfig",
    "resolve_qconfig",
]
