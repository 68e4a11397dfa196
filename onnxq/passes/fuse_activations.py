"""Fuse activations: a linear op, its bias Add and one activation are one quantization unit.

A fusion group is ``anchor -> [Add(constant bias)] -> [activation]`` where

* the anchor is ``Conv``, ``ConvTranspose``, ``Gemm`` or ``MatMul``;
* the bias ``Add`` (MatMul only) adds a constant ``b`` of shape ``[N]`` or ``[1, ..., 1, N]``:
  ``y = x @ W + b``;
* the activation is ``Relu``, ``LeakyRelu`` or ``Clip`` with constant (or absent) bounds
  (``Clip(0, 6)`` is ReLU6): ``z = act(y)``;
* every intermediate value has exactly one reader and is not a graph output.

The quantizer inserts no Q/DQ inside a group and observes the range of the group's output
(after the activation): ``q(z)`` with ``z = act(x @ W + b)``, which is what onnxruntime's QDQ
fusion and onnxq's kernels compute in one step.

The pass itself rewrites ``MatMul(x, W) + b`` into ``Gemm(x, W, b)`` when that is legal — ``x``
known to be 2-D, ``W`` a constant 2-D matrix, ``b`` constant of shape ``[N]`` or ``[1, N]`` — since
``Gemm(x, W, b) = x @ W + b`` exactly and onnxruntime fuses a quantized Gemm but not MatMul+Add.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, constant_array, remove_node, replace_all_uses, sole_consumer
from onnxq.passes.base import PassResult

logger = logging.getLogger(__name__)

ANCHOR_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
ACTIVATION_OPS = frozenset({"Relu", "LeakyRelu", "Clip"})


@dataclass(frozen=True, eq=False)
class FusionGroup:
    """One quantization unit: ``anchor`` followed by ``absorbed`` nodes, producing ``output``.

    Attributes:
        anchor: The Conv / ConvTranspose / Gemm / MatMul node.
        absorbed: The nodes fused after it, in graph order: at most a bias ``Add`` (MatMul only),
            then at most one activation.
        output: The value the group produces (the last absorbed node's output, or the anchor's).
    """

    anchor: ir.Node
    absorbed: tuple[ir.Node, ...]
    output: ir.Value

    @property
    def nodes(self) -> tuple[ir.Node, ...]:
        """The anchor and the absorbed nodes, in order."""
        return (self.anchor, *self.absorbed)

    @property
    def bias_add(self) -> ir.Node | None:
        """The absorbed bias ``Add``, if any."""
        return next((n for n in self.absorbed if n.op_type == "Add"), None)

    @property
    def activation(self) -> ir.Node | None:
        """The absorbed activation node, if any."""
        return next((n for n in self.absorbed if n.op_type in ACTIVATION_OPS), None)

    @property
    def internal_values(self) -> tuple[ir.Value, ...]:
        """Values inside the group: no Q/DQ may be inserted on them."""
        return tuple(n.outputs[0] for n in self.nodes[:-1])


def _is_onnx(node: ir.Node) -> bool:
    return node.domain in ("", "ai.onnx")


def _bias_of(add: ir.Node, x: ir.Value) -> ir.Value | None:
    """The constant operand of ``add`` (the other being ``x``), if it is a bias vector."""
    if len(add.inputs) != 2:
        return None
    other = add.inputs[1] if add.inputs[0] is x else add.inputs[0]
    if other is x:
        return None
    bias = constant_array(other)
    if bias is None or bias.ndim == 0 or any(d != 1 for d in bias.shape[:-1]):
        return None
    return other


def _clip_bounds_constant(node: ir.Node) -> bool:
    return all(v is None or constant_array(v) is not None for v in node.inputs[1:3])


def _activation_ok(node: ir.Node, x: ir.Value) -> bool:
    if not _is_onnx(node) or node.op_type not in ACTIVATION_OPS or node.inputs[0] is not x:
        return False
    return node.op_type != "Clip" or _clip_bounds_constant(node)


def find_fusion_groups(graph: ir.Graph) -> list[FusionGroup]:
    """Every fusion group of ``graph`` (not its subgraphs), in graph order; one per anchor node."""
    groups: list[FusionGroup] = []
    for node in graph:
        if not _is_onnx(node) or node.op_type not in ANCHOR_OPS or len(node.outputs) != 1:
            continue
        absorbed: list[ir.Node] = []
        out = node.outputs[0]
        nxt = sole_consumer(out)
        if (
            node.op_type == "MatMul"
            and nxt is not None
            and nxt.op_type == "Add"
            and _is_onnx(nxt)
            and _bias_of(nxt, out) is not None
        ):
            absorbed.append(nxt)
            out = nxt.outputs[0]
            nxt = sole_consumer(out)
        if nxt is not None and _activation_ok(nxt, out):
            absorbed.append(nxt)
            out = nxt.outputs[0]
        groups.append(FusionGroup(anchor=node, absorbed=tuple(absorbed), output=out))
    return groups


def _rank(value: ir.Value) -> int | None:
    if value.shape is not None:
        return len(value.shape)
    array = constant_array(value)
    return None if array is None else array.ndim


class FuseActivations:
    """Rewrite legal ``MatMul + Add(bias)`` pairs into ``Gemm``.

    The fusion groups themselves are computed on demand by :func:`find_fusion_groups`.
    """

    name = "fuse_activations"

    def __call__(self, model: ir.Model) -> PassResult:
        graph = model.graph
        names = NameAuthority(graph)
        notes: list[str] = []
        count = 0
        for group in find_fusion_groups(graph):
            add = group.bias_add
            if add is None:
                continue
            reason = self._refusal(group.anchor, add)
            if reason is not None:
                notes.append(f"MatMul '{group.anchor.name}' + Add '{add.name}' kept (not Gemm): {reason}")
                continue
            self._rewrite(graph, group.anchor, add, names)
            count += 1
        if count:
            logger.info("fuse_activations: %d MatMul+Add rewritten to Gemm", count)
        return PassResult(model, count, tuple(notes))

    @staticmethod
    def _refusal(matmul: ir.Node, add: ir.Node) -> str | None:
        x, w = matmul.inputs[0], matmul.inputs[1]
        if x is None or w is None:
            return "missing input"
        if _rank(x) != 2:
            return f"input '{x.name}' is not known to be 2-D (rank {_rank(x)})"
        weight = constant_array(w)
        if weight is None or weight.ndim != 2:
            return f"weight '{w.name}' is not a constant 2-D matrix"
        bias_value = _bias_of(add, matmul.outputs[0])
        bias = constant_array(bias_value)
        if bias is None or bias.ndim > 2 or bias.shape[-1] != weight.shape[1]:
            return f"bias is not a constant of shape [{weight.shape[1]}] or [1, {weight.shape[1]}]"
        if not np.issubdtype(weight.dtype, np.floating) or bias.dtype != weight.dtype:
            return f"weight/bias dtypes {weight.dtype}/{bias.dtype} are not one float type"
        return None

    @staticmethod
    def _rewrite(graph: ir.Graph, matmul: ir.Node, add: ir.Node, names: NameAuthority) -> None:
        x, w = matmul.inputs[0], matmul.inputs[1]
        bias = _bias_of(add, matmul.outputs[0])
        old_out = add.outputs[0]
        out = ir.Value(name=names.value(f"{old_out.name}_gemm"), shape=old_out.shape, type=old_out.type)
        gemm = ir.Node(
            "",
            "Gemm",
            [x, w, bias],
            outputs=[out],
            name=matmul.name or names.node("Gemm"),  # keep the name: qconfigs may refer to it
        )
        graph.insert_before(add, gemm)
        replace_all_uses(old_out, out, names)
        remove_node(add)
        remove_node(matmul)


__all__ = ["ACTIVATION_OPS", "ANCHOR_OPS", "FuseActivations", "FusionGroup", "find_fusion_groups"]
