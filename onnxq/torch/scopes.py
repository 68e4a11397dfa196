"""Which torch module each node of an exported ONNX graph comes from, and where a planned tensor
sits in the module tree.

The two exporters record a node's module differently:

* dynamo (TorchExport-based): each node carries the metadata ``pkg.torch.onnx.name_scopes``, the
  list ``['', 'stages', 'stages.0', 'stages.0.body', 'stages.0.body.3', 'conv2d']``: full module
  paths from the root, then the FX node's name;
* TorchScript: the node's name is its scope, ``/stages/stages.0/body/body.3/Conv``: each part is
  an attribute name, prefixed with its container's name for a ``Sequential``/``ModuleList``
  child (``stages.0`` is child ``0`` of ``stages``); the last part is the op.

A node built by a function in ``forward`` (``x + y``, ``torch.flatten``) gets the module whose
``forward`` called it. Both exports are made with BatchNormalization kept
(``keep_batchnorm=True``), so a Conv node names its ``Conv2d`` and the BatchNormalization node its
``BatchNorm2d``; onnxq folds the pair itself.

A planned tensor (by its name in the prepared model) is placed at a :class:`Site`: a graph input,
or the output of the innermost module that produces it, when no consumer of it lies inside that
module (its ``forward`` returns it). A tensor a structural pass created (ReduceMean rewritten as
GlobalAveragePool) is found through a consumer that kept its name.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import onnx
import onnx_ir as ir

from onnxq.errors import ExportError

#: The dynamo exporter's metadata key holding a node's module scopes.
NAME_SCOPES = "pkg.torch.onnx.name_scopes"


@dataclass(frozen=True)
class Site:
    """Where a tensor is in the module tree: ``kind`` "input" (graph input ``index``) or "output"
    (the output of the module at ``path``; ``""`` is the root)."""

    kind: str
    path: str = ""
    index: int = 0


def node_modules(proto: onnx.ModelProto, module: Any) -> dict[str, str]:
    """The module path (``""``: the root) of every named node of the exported ``proto``."""
    paths = {name for name, _ in module.named_modules()}
    found: dict[str, str] = {}
    for node in proto.graph.node:
        if not node.name:
            continue
        meta = {p.key: p.value for p in node.metadata_props}
        if NAME_SCOPES in meta:
            scopes = ast.literal_eval(meta[NAME_SCOPES])
            inner = [s for s in scopes[1:-1] if s in paths]
            found[node.name] = inner[-1] if inner else ""
        else:
            found[node.name] = _torchscript_path(node.name, module)
    return found


def _torchscript_path(name: str, module: Any) -> str:
    """The module path of a TorchScript node name (``/stages/stages.0/body/body.3/Conv``)."""
    parts = [p for p in name.split("/")[:-1] if p]
    current, path, last = module, "", ""
    for part in parts:
        children = dict(current.named_children())
        child = part if part in children else None
        if child is None and last and part.startswith(last + "."):
            rest = part[len(last) + 1 :]
            child = rest if rest in children else None
        if child is None:
            break
        current, last = children[child], part
        path = f"{path}.{child}" if path else child
    return path


def batchnorm_pairs(proto: onnx.ModelProto, modules: Mapping[str, str]) -> dict[str, str]:
    """``{conv module path: batchnorm module path}`` for every Conv whose only consumer is a
    BatchNormalization (the pairs onnxq folds)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    pairs: dict[str, str] = {}
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        users = consumers.get(node.output[0], [])
        if len(users) == 1 and users[0].op_type == "BatchNormalization":
            pairs[modules.get(node.name, "")] = modules.get(users[0].name, "")
    return pairs


class SiteFinder:
    """Places the tensors of a prepared model (named as in the export ``proto``) in the module tree."""

    def __init__(self, proto: onnx.ModelProto, modules: Mapping[str, str], prepared: ir.Model) -> None:
        self._inputs = {v.name: i for i, v in enumerate(proto.graph.input)}
        self._outputs = {v.name for v in proto.graph.output}
        self._producer: dict[str, onnx.NodeProto] = {o: n for n in proto.graph.node for o in n.output}
        self._consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in proto.graph.node:
            for name in node.input:
                self._consumers.setdefault(name, []).append(node)
        self._nodes = {n.name: n for n in proto.graph.node}
        self._modules = modules
        self._prepared = prepared

    def site(self, value: str) -> Site:
        """The site of ``value`` (a tensor of the prepared model); ExportError when it has none."""
        name = self._source_name(value)
        if name in self._inputs:
            return Site("input", index=self._inputs[name])
        path = self._modules.get(self._producer[name].name, "")
        users = [self._modules.get(n.name, "") for n in self._consumers.get(name, [])]
        inside = any(_within(u, path) for u in users) if path else bool(users) and name not in self._outputs
        if inside:
            where = f"module {path!r}" if path else "the root module"
            raise ExportError(
                f"tensor {value!r} is computed and consumed inside the forward of {where}; "
                "onnxq.torch places fake-quant at module outputs: move that computation into a submodule"
            )
        return Site("output", path)

    def _source_name(self, value: str) -> str:
        if value in self._producer or value in self._inputs:
            return value
        for node in self._prepared.graph:  # a value a structural pass made: through a consumer
            src = self._nodes.get(node.name or "")
            if src is None:
                continue
            for slot, inp in enumerate(node.inputs):
                if inp is not None and inp.name == value and slot < len(src.input):
                    return src.input[slot]
        raise ExportError(f"tensor {value!r} of the prepared model has no counterpart in the export")


def _within(path: str, scope: str) -> bool:
    return path == scope or path.startswith(scope + ".")


__all__ = ["Site", "SiteFinder", "batchnorm_pairs", "node_modules"]
