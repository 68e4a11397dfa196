"""Export a torch module and quantize it with onnxq in one call: ``quantize_static`` (export +
prepare + calibrate + convert) and ``quantize_dynamic`` (export + dynamic quantization).

Export: the dynamo exporter by default (opset 18), the TorchScript one (opset 17) when dynamo
fails or ``dynamo=False``; the batch axis is dynamic; BatchNormalization is kept in the export so
that every node names its own module (onnxq folds Conv + BatchNorm itself).

A mapping can name torch modules: ``{"global": "x86", "module_name": {"stages.0.body.0": None}}``
keeps that module (and its submodules) float, the counterpart of ``module.qconfig = None``. Module
names become node names of the export through :mod:`onnxq.torch.scopes`, for both exporters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import onnx

from onnxq.api import QConfigLike, prepare
from onnxq.api_dynamic import quantize_dynamic as onnx_quantize_dynamic
from onnxq.errors import ConfigError, ExportError
from onnxq.qconfig import QConfig, QConfigMapping, resolve_qconfig
from onnxq.torch.export import export
from onnxq.torch.scopes import node_modules

logger = logging.getLogger(__name__)

DYNAMO_OPSET = 18
TORCHSCRIPT_OPSET = 17
_MAPPING_KEYS = frozenset({"global", "module_name"})


@dataclass(frozen=True)
class ModuleQConfigMapping:
    """An onnxq QConfigMapping plus entries by torch module name (None: that module stays float)."""

    base: QConfigMapping
    module_names: Mapping[str, QConfig | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "module_names", dict(self.module_names))

    @classmethod
    def of(cls, spec: QConfigLike | Mapping[str, Any] | ModuleQConfigMapping) -> ModuleQConfigMapping:
        """From a preset, QConfig, QConfigMapping, None (x86), or
        ``{"global": ..., "module_name": {...}}``."""
        if isinstance(spec, ModuleQConfigMapping):
            return spec
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - _MAPPING_KEYS)
            if unknown:
                raise ConfigError(
                    f"unknown key {unknown[0]!r} in the torch qconfig mapping "
                    f"(expected {sorted(_MAPPING_KEYS)})"
                )
            names = spec.get("module_name", {})
            if not isinstance(names, Mapping):
                raise ConfigError("'module_name' must map module names to a QConfig or None")
            return cls(resolve_qconfig(spec.get("global")), names)
        return cls(resolve_qconfig(spec))

    def for_export(self, proto: onnx.ModelProto, module: Any) -> QConfigMapping:
        """The onnxq mapping for ``proto`` (an export of ``module``): module entries as node names."""
        known = {name for name, _ in module.named_modules() if name}
        for name in self.module_names:
            if name not in known:
                raise ConfigError(
                    f"the qconfig mapping names module {name!r}, which {type(module).__name__} does not have"
                )
        mapping = self.base
        if not self.module_names:
            return mapping
        for node, path in node_modules(proto, module).items():
            owners = [n for n in self.module_names if path == n or path.startswith(n + ".")]
            if owners:
                mapping = mapping.set_node_name(node, self.module_names[max(owners, key=len)])
        return mapping


def export_for_onnxq(
    module: Any, example_inputs: Any, *, dynamo: bool, opset: int | None
) -> tuple[onnx.ModelProto, bool]:
    """The export (BatchNorm kept, dynamic batch) and whether dynamo made it; dynamo failing falls
    back to TorchScript with a warning naming the dynamo error."""
    if dynamo:
        try:
            return export(
                module, example_inputs, None, dynamo=True, opset=opset or DYNAMO_OPSET, keep_batchnorm=True
            ), True
        except ExportError as e:
            logger.warning("%s; trying the TorchScript exporter", e)
            opset = None if opset is None else min(opset, 20)
    proto = export(
        module, example_inputs, None, dynamo=False, opset=opset or TORCHSCRIPT_OPSET, keep_batchnorm=True
    )
    return proto, False


def as_batches(loader: Iterable[Any], input_names: list[str]) -> Iterable[dict[str, Any]]:
    """``{input name: array}`` batches from a loader of tensors or tuples (extra items: labels)."""
    for item in loader:
        parts = item if isinstance(item, (tuple, list)) else (item,)
        if len(parts) < len(input_names):
            raise ConfigError(
                f"a calibration batch holds {len(parts)} item(s); the model has {len(input_names)} input(s)"
            )
        yield {name: _numpy(part) for name, part in zip(input_names, parts[: len(input_names)], strict=True)}


def _numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def quantize_static(
    module: Any,
    example_inputs: Any,
    calib_loader: Iterable[Any],
    qconfig: QConfigLike | Mapping[str, Any] | ModuleQConfigMapping = "x86",
    *,
    dynamo: bool = True,
    opset: int | None = None,
    progress: bool = False,
    float_outputs: bool = False,
) -> onnx.ModelProto:
    """Export ``module`` and quantize it statically; returns the QDQ ``onnx.ModelProto``.

    ``calib_loader`` yields what :func:`onnxq.prepare`'s calibration takes (tensors, arrays, or a
    DataLoader's ``(x, y)``: labels ignored). A module in training mode is exported in eval mode,
    with a warning. ``float_outputs``: the model outputs no node reads stay float
    (:func:`onnxq.prepare`).
    """
    if getattr(module, "training", False):
        logger.warning(
            "quantize_static: %s is in training mode; it is exported in eval mode", type(module).__name__
        )
    proto, _ = export_for_onnxq(module, example_inputs, dynamo=dynamo, opset=opset)
    mapping = ModuleQConfigMapping.of(qconfig).for_export(proto, module)
    prepared = prepare(proto, mapping, float_outputs=float_outputs)
    prepared.calibrate(as_batches(calib_loader, [i.name for i in proto.graph.input]), progress=progress)
    return prepared.convert()


def quantize_dynamic(
    module: Any,
    module_types: Iterable[type] | None,
    example_inputs: Any,
    *,
    dynamo: bool = True,
    opset: int | None = None,
    **options: Any,
) -> onnx.ModelProto:
    """Export ``module`` and quantize the nodes of the given module types (``{nn.Linear, nn.LSTM}``;
    None: every type :func:`onnxq.quantize_dynamic` handles) dynamically; ``options`` are
    :func:`onnxq.quantize_dynamic`'s (``per_channel``, ``format``, ``weight_dtype``,
    ``reduce_range``: 7-bit weights, the default here too)."""
    proto, _ = export_for_onnxq(module, example_inputs, dynamo=dynamo, opset=opset)
    if module_types is None:
        return onnx_quantize_dynamic(proto, **options)
    types = tuple(module_types)
    modules = dict(module.named_modules())
    chosen = {
        node for node, path in node_modules(proto, module).items() if isinstance(modules.get(path), types)
    }
    preset = "per_channel_dynamic" if options.pop("per_channel", True) else "dynamic"
    qc = resolve_qconfig(preset).global_qconfig
    mapping = QConfigMapping(node_names=dict.fromkeys(chosen, qc))
    reduce_range = options.pop("reduce_range", True)  # the mapping is ours: the default's bits
    return onnx_quantize_dynamic(proto, qconfig_mapping=mapping, reduce_range=reduce_range, **options)


__all__ = ["ModuleQConfigMapping", "export_for_onnxq", "quantize_dynamic", "quantize_static"]
