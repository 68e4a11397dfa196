"""Quantization configuration: QConfig, QConfigMapping and the backend presets (QSpec, one tensor's
spec, is :mod:`onnxq.qspec`).

The ONNX counterpart of PyTorch's ``QConfig`` / ``QConfigMapping``. All classes are frozen and
validated on construction; ``to_dict`` / ``from_dict`` round-trip through the JSON format described
by ``schemas/qconfig.schema.json`` (version 2; version-1 files, whose specs say ``per_channel`` and
whose weights are int8, are read too). ``from_dict`` rejects unknown keys and wrong types with a
:class:`~onnxq.errors.ConfigError` naming the JSON path (``$.op_types.Conv.weight.dtype``).

A spec that no runtime can execute is refused here, with the reason: per-channel or per-block
activations, dynamic weights, dynamic activations other than uint8 asymmetric on the full range
(``DynamicQuantizeLinear``), dynamic activations with weights that ``MatMulInteger`` cannot take
(8-bit, per tensor or per channel), a per-channel or per-block spec whose observer keeps one
range per tensor.

Precedence when looking up a node (as in PyTorch): exact node name, then the first matching node
name regex, then op type, then the global qconfig. ``None`` at any level means "leave in float".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from onnxq.errors import ConfigError
from onnxq.qspec import CONFIG_VERSION, QSpec, expect_object, granularity_name, json_type
from onnxq.scheme import (
    DTYPE_NAMES,
    PER_TENSOR,
    PerBlock,
    PerChannel,
    PerTensor,
)

FIXED_RANGE_POLICIES = ("always", "when_filled")
READABLE_VERSIONS = (1, 2)
#: Largest qconfig file read (a mapping of a few thousand nodes is well under this).
MAX_FILE_BYTES = 16 << 20


@dataclass(frozen=True)
class QConfig:
    """Activation and weight specs for one node; ``activation=None`` quantizes weights only.

    ``fixed_ranges`` says what to do with ops whose output range is known (Sigmoid, Softmax, Tanh):
    ``"always"`` uses it (PyTorch's fixed qparams: the presets), ``"when_filled"`` observes the
    output and uses the known range only when the observed one fills at least 90% of it.
    """

    activation: QSpec | None
    weight: QSpec
    fixed_ranges: str = "always"

    def __post_init__(self) -> None:
        if self.fixed_ranges not in FIXED_RANGE_POLICIES:
            raise ConfigError(
                f"QConfig.fixed_ranges must be one of {FIXED_RANGE_POLICIES}, got {self.fixed_ranges!r}"
            )
        if not (self.activation is None or isinstance(self.activation, QSpec)) or not isinstance(
            self.weight, QSpec
        ):
            raise ConfigError("QConfig.activation and QConfig.weight must be QSpec (activation may be None)")
        act, weight = self.activation, self.weight
        if act is not None and not isinstance(act.granularity, PerTensor):
            kind = granularity_name(act.granularity)
            raise ConfigError(f"QConfig.activation cannot be {kind} (activations are per-tensor)")
        if weight.dynamic:
            raise ConfigError(
                "QConfig.weight cannot be dynamic (weights are constants, quantized ahead of time)"
            )
        if (
            act is not None
            and act.dynamic
            and (weight.dtype not in ("int8", "uint8") or isinstance(weight.granularity, PerBlock))
        ):
            raise ConfigError(
                "QConfig with dynamic activations needs 8-bit weights per tensor or per channel "
                f"(MatMulInteger), got {weight.dtype} {granularity_name(weight.granularity)}"
            )

    def to_dict(self) -> dict[str, Any]:
        act = None if self.activation is None else self.activation.to_dict()
        return {"activation": act, "weight": self.weight.to_dict(), "fixed_ranges": self.fixed_ranges}

    @classmethod
    def from_dict(cls, d: Any, path: str = "$", version: int = CONFIG_VERSION) -> QConfig | None:
        """A QConfig object, a preset name, or ``null`` (leave in float)."""
        if d is None:
            return None
        if isinstance(d, str):
            if d not in PRESETS:
                raise ConfigError(f"{path}: unknown preset {d!r} (expected one of {PRESETS})")
            return get_default_qconfig(d)
        keys = {"activation", "weight"} if version == 1 else {"activation", "weight", "fixed_ranges"}
        expect_object(d, path, keys, required={"activation", "weight"})
        if not isinstance(d.get("fixed_ranges", "always"), str):
            raise ConfigError(f"{path}.fixed_ranges: expected str, got {json_type(d['fixed_ranges'])}")
        try:
            if version == 1:  # weights were always int8 symmetric, and written out as such
                weight = d["weight"]
                if isinstance(weight, dict) and (
                    weight.get("dtype") != "int8" or weight.get("symmetric") is not True
                ):
                    raise ConfigError("QConfig.weight must be int8 symmetric (version-1 files)")
            act_doc = d["activation"]
            weight_only = act_doc is None and version >= 2  # version 1 had no weight-only configs
            activation = None if weight_only else QSpec.from_dict(act_doc, f"{path}.activation", version)
            weight = QSpec.from_dict(d["weight"], f"{path}.weight", version)
            return cls(activation, weight, d.get("fixed_ranges", "always"))
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("$") else f"{path}: {msg}") from None


def _x86() -> QConfig:
    return QConfig(
        QSpec("uint8", reduce_range=True, observer="histogram"),
        QSpec("int8", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax"),
    )


def _qnnpack() -> QConfig:
    return QConfig(QSpec("uint8", observer="histogram"), QSpec("int8", symmetric=True, observer="minmax"))


#: Activations quantized at run time (``DynamicQuantizeLinear``: uint8, full range, per tensor).
DYNAMIC_ACTIVATION = QSpec("uint8", dynamic=True)


def _dynamic() -> QConfig:
    return QConfig(DYNAMIC_ACTIVATION, QSpec("int8", symmetric=True, observer="minmax"))


def _per_channel_dynamic() -> QConfig:
    weight = QSpec("int8", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax")
    return QConfig(DYNAMIC_ACTIVATION, weight)


#: PyTorch's default post-training qconfig per backend (x86 = fbgemm, arm = qnnpack).
_STATIC_FACTORIES: dict[str, Callable[[], QConfig]] = {
    "x86": _x86,
    "fbgemm": _x86,
    "qnnpack": _qnnpack,
    "arm": _qnnpack,
}
#: PyTorch's ``default_dynamic_qconfig`` and ``per_channel_dynamic_qconfig`` (for quantize_dynamic).
_DYNAMIC_FACTORIES: dict[str, Callable[[], QConfig]] = {
    "dynamic": _dynamic,
    "per_channel_dynamic": _per_channel_dynamic,
}
_PRESET_FACTORIES = {**_STATIC_FACTORIES, **_DYNAMIC_FACTORIES}
STATIC_PRESETS = tuple(_STATIC_FACTORIES)
DYNAMIC_PRESETS = tuple(_DYNAMIC_FACTORIES)
PRESETS = tuple(_PRESET_FACTORIES)


def get_default_qconfig(backend: str = "x86") -> QConfig:
    """PyTorch's default post-training qconfig for ``backend``.

    x86 / fbgemm: histogram observer on uint8 activations with ``reduce_range``, per-channel
    symmetric int8 weights. qnnpack / arm: histogram on uint8 activations without
    ``reduce_range``, per-tensor symmetric int8 weights. The dynamic presets (for
    :func:`onnxq.quantize_dynamic`): ``dynamic`` (PyTorch's ``default_dynamic_qconfig``: uint8
    activations quantized at run time, per-tensor symmetric int8 weights) and
    ``per_channel_dynamic`` (``per_channel_dynamic_qconfig``: the same, weights per channel).
    """
    factory = _PRESET_FACTORIES.get(backend)
    if factory is None:
        raise ConfigError(f"unknown qconfig backend {backend!r} (expected one of {PRESETS})")
    return factory()


@dataclass(frozen=True)
class QConfigMapping:
    """Which QConfig (or ``None`` = float) applies to each node."""

    global_qconfig: QConfig | None = None
    op_types: Mapping[str, QConfig | None] = field(default_factory=dict)
    node_names: Mapping[str, QConfig | None] = field(default_factory=dict)
    node_name_regexes: tuple[tuple[str, QConfig | None], ...] = ()

    def __post_init__(self) -> None:
        for pattern, _ in self.node_name_regexes:
            try:
                re.compile(pattern)
            except (re.error, TypeError, ValueError, OverflowError, RecursionError) as e:
                raise ConfigError(f"invalid node name regex {str(pattern)[:80]!r}: {e}") from None
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

    def qconfigs(self) -> tuple[QConfig, ...]:
        """Every QConfig the mapping can give (``None`` entries left out)."""
        entries = [self.global_qconfig, *self.op_types.values(), *self.node_names.values()]
        entries += [qc for _, qc in self.node_name_regexes]
        return tuple(qc for qc in entries if qc is not None)

    # builder-style helpers mirroring torch.ao.quantization.QConfigMapping
    def set_global(self, qc: QConfig | None) -> QConfigMapping:
        return replace(self, global_qconfig=qc)

    def set_op_type(self, op_type: str, qc: QConfig | None) -> QConfigMapping:
        return replace(self, op_types={**self.op_types, op_type: qc})

    def set_node_name(self, name: str, qc: QConfig | None) -> QConfigMapping:
        return replace(self, node_names={**self.node_names, name: qc})

    def set_node_name_regex(self, pattern: str, qc: QConfig | None) -> QConfigMapping:
        return replace(self, node_name_regexes=(*self.node_name_regexes, (pattern, qc)))

    def with_overrides(
        self, *, activation_dtype: str | None = None, per_channel: bool | None = None
    ) -> QConfigMapping:
        """The mapping with every QConfig in it changed (the CLI's ``--activation-dtype`` and
        ``--per-tensor``); ``None`` entries (float) stay ``None``, and so do weight-only configs'
        missing activations.

        ``activation_dtype``: unsigned types asymmetric, signed types symmetric; ``per_channel``:
        weights per channel (``per_channel_minmax`` observer) or per tensor (``minmax``).
        """
        if activation_dtype is not None and activation_dtype not in DTYPE_NAMES:
            raise ConfigError(f"activation dtype must be one of {DTYPE_NAMES}, got {activation_dtype!r}")

        def change(qc: QConfig | None) -> QConfig | None:
            if qc is None:
                return None
            act, weight = qc.activation, qc.weight
            if activation_dtype is not None and act is not None:
                act = replace(act, dtype=activation_dtype, symmetric=not activation_dtype.startswith("u"))
            if per_channel is not None and weight.per_channel != per_channel:
                swap = {"minmax": "per_channel_minmax", "per_channel_minmax": "minmax"}
                observer = swap.get(weight.observer, weight.observer)
                granularity = PerChannel() if per_channel else PER_TENSOR
                weight = replace(weight, granularity=granularity, observer=observer)
            return replace(qc, activation=act, weight=weight)  # fixed_ranges and the rest kept

        return QConfigMapping(
            change(self.global_qconfig),
            {k: change(v) for k, v in self.op_types.items()},
            {k: change(v) for k, v in self.node_names.items()},
            tuple((p, change(v)) for p, v in self.node_name_regexes),
        )

    def to_dict(self) -> dict[str, Any]:
        def enc(qc: QConfig | None) -> dict[str, Any] | None:
            return None if qc is None else qc.to_dict()

        return {
            "version": CONFIG_VERSION,
            "global": enc(self.global_qconfig),
            "op_types": {k: enc(v) for k, v in self.op_types.items()},
            "node_names": {k: enc(v) for k, v in self.node_names.items()},
            "node_name_regex": [{"pattern": p, "qconfig": enc(q)} for p, q in self.node_name_regexes],
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "$") -> QConfigMapping:
        keys = {"version", "global", "op_types", "node_names", "node_name_regex"}
        expect_object(d, path, keys, required={"version"})
        version = d["version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"{path}.version: expected integer, got {json_type(version)}")
        if version not in READABLE_VERSIONS:
            raise ConfigError(
                f"{path}: QConfigMapping.version must be one of {READABLE_VERSIONS}, got {version}"
            )
        maps: dict[str, dict[str, QConfig | None]] = {}
        for key in ("op_types", "node_names"):
            sub = d.get(key, {})
            expect_object(sub, f"{path}.{key}", None)
            maps[key] = {k: QConfig.from_dict(v, f"{path}.{key}.{k}", version) for k, v in sub.items()}
        regexes = d.get("node_name_regex", [])
        if not isinstance(regexes, list):
            raise ConfigError(f"{path}.node_name_regex: expected array, got {json_type(regexes)}")
        pairs = []
        for i, item in enumerate(regexes):
            p = f"{path}.node_name_regex[{i}]"
            expect_object(item, p, {"pattern", "qconfig"}, required={"pattern", "qconfig"})
            if not isinstance(item["pattern"], str):
                raise ConfigError(f"{p}.pattern: expected string, got {json_type(item['pattern'])}")
            pairs.append((item["pattern"], QConfig.from_dict(item["qconfig"], f"{p}.qconfig", version)))
        try:
            return cls(
                QConfig.from_dict(d.get("global"), f"{path}.global", version),
                maps["op_types"],
                maps["node_names"],
                tuple(pairs),
            )
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("$") else f"{path}: {msg}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> QConfigMapping:
        """Load a mapping from a JSON file; errors name the file and the JSON path."""
        from onnxq.io import read_json_file  # lazy: io imports onnx, which plain configs do not need

        data = read_json_file(path, "qconfig file", ConfigError, MAX_FILE_BYTES)
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


__all__ = [
    "CONFIG_VERSION",
    "DYNAMIC_ACTIVATION",
    "DYNAMIC_PRESETS",
    "PRESETS",
    "STATIC_PRESETS",
    "PerBlock",
    "PerChannel",
    "PerTensor",
    "QConfig",
    "QConfigMapping",
    "QSpec",
    "get_default_qconfig",
    "resolve_qconfig",
]
