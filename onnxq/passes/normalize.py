"""Normalise a model into the form the other passes expect. Each step is an identity of the maths:

1. Opset: a model importing an ai.onnx opset older than ``min_opset`` (13, or 21 when the
   configuration asks for 4-bit/16-bit types or per-block scales; :mod:`onnxq.opsets`) is
   upgraded with ``onnx.version_converter`` or refused; an opset newer than the installed
   onnxruntime runs is refused.
2. Initializers that are also graph inputs (IR < 4 exports) are dropped from the inputs, so they
   are constants: onnxruntime can fold them and its QDQ fusion sees constant weights
   (``onnx_ir``'s ``RemoveInitializersFromInputsPass``).
3. Constants become initializers: ``Constant`` nodes, in subgraphs too (``onnx_ir``'s
   ``LiftConstantsToInitializersPass``); ``ConstantOfShape(s)`` with a constant shape ``s`` ->
   ``full(s, value)``; ``Identity(c)`` of a constant ``c`` -> ``c``; ``Shape(x)`` of a statically
   shaped ``x``; and the cheap deterministic ops of :data:`onnxq.passes.folding.FOLDABLE_OPS` on
   constant inputs (exporters build weights and zero biases that way:
   ``Expand(CastLike(0, x), Shape(W)[:1])``). A result bigger than both
   :data:`~onnxq.passes.folding.MAX_FOLD_ELEMENTS` elements and its inputs is not folded.
   A ``Constant`` whose output has no name feeds nothing and is removed.
4. ``Identity(x) = x`` and ``Dropout(x) = x`` (its inference semantics; training-mode exports keep
   Dropout nodes, and their mask output must be unused) are bypassed unless they produce a graph
   output, so they do not split a fusion group.
5. ``Sum(a, b) = Add(a, b)`` (same multidirectional broadcasting); ``Sum(a) = a``; ``Sum`` of three or
   more inputs is left alone and reported.
6. Input and output dims written as negative numbers (PaddlePaddle's ``-1`` batch) become
   dynamic dims (reported), so shape inference and ``Shape`` folding never take them for sizes.
   Every node gets a unique name (unnamed or duplicate ones get fresh names such as ``Relu_1``;
   :func:`onnxq.graph.name_nodes`), since qconfigs and reports refer to nodes by name.
7. Types and shapes are inferred where onnx can (:mod:`onnxq.passes.shapes`; best effort: a model
   without shape information still works; a model shape inference rejects is logged in one line).
   The IR version is raised to what the opsets need (an IR-3 file upgraded to opset 13 becomes IR 7).
8. Exporter debug information on nodes (``doc_string``, ``metadata_props``: stack traces, FX node
   text) is dropped (``strip_node_metadata=True``, the default; ``onnx_ir``'s
   ``ClearMetadataAndDocStringPass``): it can be 10% of an int8 file.
"""

from __future__ import annotations

import logging

import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common_passes
import onnxruntime as ort
from onnx import version_converter

from onnxq.errors import UnsupportedModelError
from onnxq.graph import (
    NameAuthority,
    is_onnx_domain,
    is_op,
    iter_graphs,
    name_nodes,
    opset_version,
    remove_node,
    remove_unused_initializers,
    replace_all_uses,
)
from onnxq.opsets import MIN_OPSET
from onnxq.passes.base import GraphPass, PassResult
from onnxq.passes.folding import folded_value
from onnxq.passes.shapes import infer_shapes
from onnxq.passes.weightless import weights_as_inputs
from onnxq.runtime import max_opset

logger = logging.getLogger(__name__)


def _drop_unused_opsets(model: ir.Model, notes: list[str]) -> int:
    """Forget the opset imports of domains no node uses (a stray ``com.microsoft`` of version 0
    makes onnxruntime's optimizer fail once it fuses Q/DQ into that domain's ops); a used domain
    must have a version of at least 1."""
    used = {node.domain or "" for graph in iter_graphs(model.graph) for node in graph}
    dropped = [d for d in model.opset_imports if d not in used and d not in ("", "ai.onnx")]
    for domain in dropped:
        del model.opset_imports[domain]
    if dropped:
        notes.append(f"opset import(s) of unused domain(s) {', '.join(map(repr, dropped))} dropped")
    for domain, version in model.opset_imports.items():
        if domain in used and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise UnsupportedModelError(
                f"model imports domain {domain!r}, which its nodes use, at version {version}"
            )
    return len(dropped)


def _raise_ir_version(model: ir.Model, notes: list[str]) -> int:
    """Make the IR version at least what the model's opsets need (IR 3 files upgraded to opset 13
    would otherwise keep IR 3's rule that every initializer is a graph input); 1 if raised."""
    opsets = [onnx.helper.make_opsetid(domain, version) for domain, version in model.opset_imports.items()]
    needed = onnx.helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    if model.ir_version >= needed:
        return 0
    notes.append(f"IR version raised from {model.ir_version} to {needed}, which its opsets need")
    model.ir_version = needed
    return 1


def _dynamic_interface_dims(graph: ir.Graph) -> int:
    """Rewrite the negative dims of the graph's inputs and outputs (PaddlePaddle's ``-1``) as
    dynamic ones, so that shape inference and folding never take them for sizes; return how many."""
    count = 0
    for value in (*graph.inputs, *graph.outputs):
        if value.shape is None or not any(isinstance(d, int) and d < 0 for d in value.shape):
            continue
        dims = [ir.SymbolicDim(None) if isinstance(d, int) and d < 0 else d for d in value.shape]
        count += sum(isinstance(d, int) and d < 0 for d in value.shape)
        value.shape = ir.Shape(dims)
    return count


def _drop_unnamed_constants(graph: ir.Graph) -> int:
    """Remove the Constant nodes whose output is unnamed (nothing can read it); return how many."""
    dead = [n for g in iter_graphs(graph) for n in g if is_op(n, "Constant") and not n.outputs[0].name]
    for node in dead:
        remove_node(node)
    return len(dead)


def _count_constants(graph: ir.Graph) -> int:
    return sum(1 for g in iter_graphs(graph) for n in g if is_op(n, "Constant"))


class Normalize(GraphPass):
    """Upgrade the opset and canonicalise constants, graph inputs and ``Sum`` (see module docstring).

    Args:
        target_opset: Opset that models older than ``min_opset`` are upgraded to (at least it).
        min_opset: The oldest opset left as it is (13; 21 when the configuration needs 4-bit or
            16-bit types or per-block scales, see :mod:`onnxq.opsets`).
        infer_shapes: Run onnx shape inference (best effort).
        strip_node_metadata: Drop the doc strings and metadata_props of nodes (exporter debug info).
    """

    name = "normalize"

    def __init__(
        self,
        target_opset: int = MIN_OPSET,
        *,
        min_opset: int = MIN_OPSET,
        infer_shapes: bool = True,
        strip_node_metadata: bool = True,
    ) -> None:
        if target_opset < MIN_OPSET:
            raise ValueError(f"target_opset must be >= {MIN_OPSET}, got {target_opset}")
        if min_opset < MIN_OPSET:
            raise ValueError(f"min_opset must be >= {MIN_OPSET}, got {min_opset}")
        self.min_opset = min_opset
        self.target_opset = max(target_opset, min_opset)
        self.infer_shapes = infer_shapes
        self.strip_node_metadata = strip_node_metadata

    def call(self, model: ir.Model) -> PassResult:
        notes: list[str] = []
        count = self._upgrade_opset(model, notes)
        graph = model.graph
        names = NameAuthority(graph)
        name_nodes(graph, names)
        dynamic = _dynamic_interface_dims(graph)
        if dynamic:
            notes.append(f"{dynamic} input/output dimension(s) written as negative numbers taken as dynamic")
        library: list[ir.passes.PassBase] = [common_passes.RemoveInitializersFromInputsPass()]
        if self.strip_node_metadata:
            library.append(common_passes.ClearMetadataAndDocStringPass())
        initializer_inputs = sum(v.is_initializer() for g in iter_graphs(graph) for v in g.inputs)
        count += _drop_unnamed_constants(graph)  # the lift below cannot name their initializers
        constants = _count_constants(graph)
        ir.passes.Sequential(*library, common_passes.LiftConstantsToInitializersPass(True, 0))(model)
        if initializer_inputs:
            notes.append(f"{initializer_inputs} initializer(s) removed from the graph inputs (old IR style)")
        count += initializer_inputs
        count += _drop_unused_opsets(model, notes)
        rewrites = constants - _count_constants(graph)
        self._infer_shapes(model)  # static shapes let Shape(x) fold
        rewrites += self._fold_constants(graph, names)
        rewrites += self._bypass_identities(graph, names, notes)
        rewrites += self._rewrite_sums(graph, names, notes)
        remove_unused_initializers(graph)
        if rewrites:
            self._infer_shapes(model)
        if count or model.ir_version < 4:  # an upgraded opset, or IR 3's initializer-input rule
            count += _raise_ir_version(model, notes)
        return PassResult(model, count + rewrites, tuple(notes))

    def _infer_shapes(self, model: ir.Model) -> None:
        if not self.infer_shapes:
            return
        reason = infer_shapes(model)  # shape inference is an optional improvement
        if reason is not None:
            logger.warning("normalize: shape inference failed, continuing without: %s", reason)

    def _upgrade_opset(self, model: ir.Model, notes: list[str]) -> int:
        """Upgrade ``model`` in place (its graph is replaced) when its opset is below ``min_opset``."""
        version = opset_version(model)
        newest = max_opset()
        if version > newest:
            raise UnsupportedModelError(
                f"model uses ai.onnx opset {version}, newer than onnxruntime {ort.__version__} supports "
                f"(max {newest}); export it with opset {newest} or lower"
            )
        if version >= self.min_opset:
            return 0
        if self.target_opset > newest:
            raise UnsupportedModelError(
                f"model must be upgraded to ai.onnx opset {self.target_opset}, newer than onnxruntime "
                f"{ort.__version__} supports (max {newest})"
            )
        try:  # large weights stay out of the proto: models over 2 GB upgrade too, without a copy
            with weights_as_inputs(model) as held:
                proto = held.serialize()
                onnx.checker.check_model(proto)  # the converter's C++ trusts its input: check it first
                proto = version_converter.convert_version(proto, self.target_opset)
                onnx.checker.check_model(proto)
                upgraded = ir.serde.deserialize_model(proto)
                del proto
                held.restore_into(upgraded)
        except Exception as exc:  # the converter raises RuntimeError/ValidationError/...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnsupportedModelError(
                f"model uses ai.onnx opset {version} (< {self.min_opset}) and cannot be upgraded to opset "
                f"{self.target_opset}: {first}"
            ) from exc
        model.graph = upgraded.graph
        model.ir_version = upgraded.ir_version
        notes.append(f"opset upgraded from {version} to {self.target_opset}")
        logger.info("normalize: opset upgraded from %d to %d", version, self.target_opset)
        return 1

    def _fold_constants(self, graph: ir.Graph, names: NameAuthority) -> int:
        count = 0
        changed = True
        while changed:
            changed = False
            for node in list(graph):
                if not is_onnx_domain(node.domain) or len(node.outputs) != 1:
                    continue
                out = node.outputs[0]
                if out.is_graph_output():
                    continue
                array = folded_value(node)
                if array is None:
                    continue
                if node.op_type == "Identity":
                    replace_all_uses(out, node.inputs[0], names)
                else:
                    name = out.name or names.value(node.op_type.lower())
                    out.name = names.value(f"{name}_folded")
                    init = ir.Value(
                        name=name,
                        shape=ir.Shape(array.shape),
                        type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                        const_value=ir.tensor(array, name=name),
                    )
                    graph.register_initializer(init)
                    replace_all_uses(out, init, names)
                remove_node(node)
                count += 1
                changed = True
        return count

    @staticmethod
    def _bypass_identities(graph: ir.Graph, names: NameAuthority, notes: list[str]) -> int:
        """Bypass ``Identity`` and ``Dropout`` (mask unused) unless they produce a graph output."""
        count = dropouts = 0
        for node in list(graph):
            if not is_op(node, "Identity", "Dropout"):
                continue
            out, extra = node.outputs[0], node.outputs[1:]
            if out.is_graph_output() or any(v.uses() or v.is_graph_output() for v in extra):
                continue
            if not node.inputs or node.inputs[0] is None:
                continue
            replace_all_uses(out, node.inputs[0], names)
            remove_node(node)
            count += 1
            dropouts += int(node.op_type == "Dropout")
        if dropouts:
            notes.append(f"{dropouts} Dropout node(s) removed: inference semantics (identity)")
        return count

    @staticmethod
    def _rewrite_sums(graph: ir.Graph, names: NameAuthority, notes: list[str]) -> int:
        count = 0
        for node in list(graph):
            if not is_op(node, "Sum"):
                continue
            if len(node.inputs) == 2:
                node.op_type = "Add"
            elif len(node.inputs) == 1 and node.outputs[0].is_graph_output():
                node.op_type = "Identity"
            elif len(node.inputs) == 1:
                replace_all_uses(node.outputs[0], node.inputs[0], names)
                remove_node(node)
            else:
                notes.append(f"Sum '{node.name}' has {len(node.inputs)} inputs: left as Sum (stays float)")
                continue
            count += 1
        return count


__all__ = ["Normalize"]
