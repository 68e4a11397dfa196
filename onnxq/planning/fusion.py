"""Fusion groups: an op, its bias Add and one activation are one quantization unit.

A fusion group is ``anchor -> [Add(constant bias)] -> [activation]`` where

* the anchor is an op whose rule lists fusable activations (:mod:`onnxq.planning.ops`): the
  weighted ops (Conv, ConvTranspose, Gemm, MatMul) and the elementwise Add and Mul;
* the bias ``Add`` (ops whose rule says ``fuses_bias_add``: MatMul) adds a constant ``b`` of shape
  ``[N]`` or ``[1, ..., 1, N]``: ``y = x @ W + b``;
* the activation is one the anchor's rule fuses (``Relu``, ``LeakyRelu``, ``Clip`` with constant
  or absent bounds; ``Clip(0, 6)`` is ReLU6): ``z = act(y)``;
* every intermediate value has exactly one reader and is not a graph output.

The quantizer inserts no Q/DQ inside a group and observes the range of the group's output
(after the activation): ``q(z)`` with ``z = act(x @ W + b)``, which is what onnxruntime's QDQ
fusion and onnxq's kernels compute in one step. For ``relu(a + b)`` (ResNet's residual) the Q
after the activation starts at 0, so onnxruntime drops the activation and fuses the Add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx_ir as ir

from onnxq.graph import constant_array, is_op, sole_consumer
from onnxq.planning.ops import FUSABLE_ACTIVATIONS, QuantKind, rule_of


@dataclass(frozen=True, eq=False)
class FusionGroup:
    """One quantization unit: ``anchor`` followed by ``absorbed`` nodes, producing ``output``.

    Attributes:
        anchor: The Conv / ConvTranspose / Gemm / MatMul (or Add / Mul) node.
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
        return next((n for n in self.absorbed if n.op_type in FUSABLE_ACTIVATIONS), None)

    @property
    def internal_values(self) -> tuple[ir.Value, ...]:
        """Values inside the group: no Q/DQ may be inserted on them."""
        return tuple(n.outputs[0] for n in self.nodes[:-1])


def bias_of(add: ir.Node, x: ir.Value) -> ir.Value | None:
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


def _fused_activation(anchor: ir.Node, x: ir.Value) -> ir.Node | None:
    """The sole reader of ``x`` when ``anchor``'s rule fuses it (a Clip needs constant bounds)."""
    rule = rule_of(anchor)
    node = sole_consumer(x)
    if rule is None or node is None or not is_op(node, *rule.fusable_activations) or node.inputs[0] is not x:
        return None
    if not all(v is None or constant_array(v) is not None for v in node.inputs[1:]):
        return None  # a Clip with bounds computed at run time
    return node


def _groups_of_kind(graph: ir.Graph, kind: QuantKind, taken: set[int]) -> list[FusionGroup]:
    groups: list[FusionGroup] = []
    for node in graph:
        rule = rule_of(node)
        if rule is None or rule.kind is not kind or id(node) in taken or len(node.outputs) != 1:
            continue
        absorbed: list[ir.Node] = []
        out = node.outputs[0]
        nxt = sole_consumer(out)
        if (
            nxt is not None
            and rule.fuses_bias_add
            and is_op(nxt, "Add")
            and id(nxt) not in taken
            and (bias_of(nxt, out) is not None)
        ):
            absorbed.append(nxt)
            out = nxt.outputs[0]
        activation = _fused_activation(node, out)
        if activation is not None and id(activation) not in taken:
            absorbed.append(activation)
            out = activation.outputs[0]
        if kind is QuantKind.WEIGHTED or absorbed:
            groups.append(FusionGroup(anchor=node, absorbed=tuple(absorbed), output=out))
            taken.update(id(n) for n in (node, *absorbed))
    return groups


def find_fusion_groups(graph: ir.Graph) -> list[FusionGroup]:
    """The group of every weighted op of ``graph`` (not its subgraphs), in graph order."""
    return _groups_of_kind(graph, QuantKind.WEIGHTED, set())


def elementwise_fusion_groups(graph: ir.Graph, taken: Sequence[FusionGroup] = ()) -> list[FusionGroup]:
    """``Add``/``Mul`` followed by their only reader, an activation (ResNet's ``relu(x + identity)``).

    Nodes already in ``taken`` (e.g. a MatMul's bias Add) are skipped.
    """
    return _groups_of_kind(graph, QuantKind.ELEMENTWISE, {id(n) for g in taken for n in g.nodes})


def fusion_groups(graph: ir.Graph) -> list[FusionGroup]:
    """Every fusion group of ``graph``: the weighted ops' groups, then the elementwise ones."""
    weighted = find_fusion_groups(graph)
    return weighted + elementwise_fusion_groups(graph, weighted)


__all__ = ["FusionGroup", "bias_of", "elementwise_fusion_groups", "find_fusion_groups", "fusion_groups"]
