"""The quantization plan: which nodes are quantized, which tensors get observers, what shares qparams.

:func:`build_plan` walks the prepared fp32 graph once and decides, for every node, whether it is
quantized (its op is in :mod:`onnxq.planning.ops`, its QConfigMapping entry is not None, its
inputs are float) or stays float and why. A pass-through op (Transpose, Reshape, MaxPool, ...)
with no quantized compute node around it stays float (:mod:`onnxq.planning.pass_through`), and
nodes inside If/Loop/Scan bodies are listed as float, "inside a subgraph" (Q/DQ is inserted in the
main graph only). A fusion group (Conv/Gemm/MatMul [+ bias Add] [+ activation]) is one unit: the
anchor decides, the absorbed nodes follow, and only the group's output is quantized.

With ``float_outputs=True`` a quantized node's output that is a graph output and read by no node
gets no Q/DQ (``QuantPlan.float_outputs`` lists them per node): the node still reads quantized
inputs and weights, only the rounding of the model's final values is skipped. That rounding is
noise the model's user sees directly (a classifier's logits, a regressor's values) and nothing
downstream benefits from: on the test zoo's LSTM + Linear head it costs 12 to 25 dB of output
SQNR. A graph output that another node also reads keeps its Q/DQ: its readers expect it quantized.

A weighted node's :class:`~onnxq.planning.weight_plan.WeightPlan` says what its weight and bias
become. A weight-only qconfig (``activation=None``) plans the weight and nothing else: the node's
activations and bias stay float.

Tensors that must share one scale/zero point form a
:class:`~onnxq.planning.tensor_groups.TensorGroup`: a pass-through op's outputs join its input's
group, a Concat's inputs and output form one group. Which members are observed during
calibration is decided there; the parameters of a group come from merging its members'
observers (:mod:`onnxq.calibration.resolve`).

Values and nodes are referred to by name: ONNX names are unique in a graph, and the plan is made on
the prepared model but applied to a copy of it at each ``convert``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import onnx_ir as ir

from onnxq.graph import constant_array, is_onnx_domain, node_subgraphs
from onnxq.planning.element_types import ElementTypes
from onnxq.planning.fusion import FusionGroup
from onnxq.planning.ops import OpRule, QuantKind, rule_of
from onnxq.planning.pass_through import ISOLATED_REASON, isolated_pass_through
from onnxq.planning.prequantized import quantized_nodes
from onnxq.planning.tensor_groups import GroupBuilder, TensorGroup
from onnxq.planning.weight_plan import WeightPlan, weight_plan
from onnxq.qconfig import QConfig, QConfigMapping, QSpec

logger = logging.getLogger(__name__)

#: Why a node inside an If/Loop/Scan body that could not be planned stays float.
SUBGRAPH_REASON = "inside a subgraph that repeats a value name from outside it"
#: Why a node of a model quantized already is left as it is.
PREQUANTIZED_REASON = "already quantized in the input model"


@dataclass(frozen=True)
class NodeDecision:
    """What happens to one node: ``reason`` is None when it is quantized, else why it stays float.

    ``anchor`` names the fusion-group anchor an absorbed node (bias Add, activation) belongs to.
    """

    name: str
    op_type: str
    kind: QuantKind | None
    reason: str | None
    anchor: str | None = None

    @property
    def quantized(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class QuantPlan:
    """Every decision :mod:`onnxq.passes.insert_qdq` needs, keyed by node and value names.

    Attributes:
        decisions: One entry per node of the graph, in graph order.
        inputs: For each quantized node, ``(input slot, value name)`` of its quantized activations.
        outputs: For each quantized node (group anchor), the values it produces quantized.
        weights: For each weighted node with a constant weight, its weight plan.
        groups: The tensor groups; ``group_of`` maps each planned value to its group index.
        float_outputs: For each quantized node, the graph outputs it produces that stay float
            (``build_plan(..., float_outputs=True)``); they are not in ``outputs``.
    """

    decisions: tuple[NodeDecision, ...]
    inputs: Mapping[str, tuple[tuple[int, str], ...]]
    outputs: Mapping[str, tuple[str, ...]]
    weights: Mapping[str, WeightPlan]
    groups: tuple[TensorGroup, ...]
    group_of: Mapping[str, int] = field(default_factory=dict)
    float_outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def quantized_nodes(self) -> tuple[str, ...]:
        """Names of the quantized nodes (anchors and standalone nodes, not absorbed ones)."""
        return tuple(d.name for d in self.decisions if d.quantized and d.anchor is None)

    def observed_values(self) -> dict[str, QSpec]:
        """The values that need a calibration observer, with the activation spec to use."""
        return {v: g.spec for g in self.groups for v in g.observed}

    def leave_float(self, reasons: Mapping[str, str]) -> QuantPlan:
        """The same plan with the nodes in ``reasons`` (and their absorbed nodes) left in float."""
        decisions = tuple(
            replace(d, reason=reasons[d.anchor or d.name])
            if d.quantized and (d.anchor or d.name) in reasons
            else d
            for d in self.decisions
        )
        return replace(
            self,
            decisions=decisions,
            inputs={k: v for k, v in self.inputs.items() if k not in reasons},
            outputs={k: v for k, v in self.outputs.items() if k not in reasons},
            weights={k: v for k, v in self.weights.items() if k not in reasons},
            float_outputs={k: v for k, v in self.float_outputs.items() if k not in reasons},
        )


def build_plan(
    model: ir.Model,
    mapping: QConfigMapping,
    fusion_groups: Sequence[FusionGroup] = (),
    source_op_types: Mapping[str, str] | None = None,
    *,
    float_outputs: bool = False,
) -> QuantPlan:
    """Decide what is quantized in ``model`` (see the module docstring). Nodes must be named.

    ``source_op_types`` gives the op type a node had in the user's model when a structural pass
    changed it (MatMul + Add rewritten to a Gemm keeps the MatMul's name): the QConfigMapping is
    looked up with the type the user knows. ``float_outputs``: leave the graph outputs no node
    reads float (the module docstring).
    """
    graph = model.graph
    absorbed = {n.name: g for g in fusion_groups for n in g.absorbed}
    by_anchor = {g.anchor.name: g for g in fusion_groups}
    decisions: dict[str, NodeDecision] = {}
    inputs: dict[str, tuple[tuple[int, str], ...]] = {}
    outputs: dict[str, tuple[str, ...]] = {}
    weights: dict[str, WeightPlan] = {}
    kept_float: dict[str, tuple[str, ...]] = {}
    loose = {v.name for v in graph.outputs if not v.uses()} if float_outputs else set()
    tensors = GroupBuilder()
    dtypes = ElementTypes(model)
    kept = quantized_nodes(graph)  # a model quantized already: its quantized part stays as it is

    def qconfig_of(node: ir.Node) -> QConfig | None:
        op_type = (source_op_types or {}).get(node.name or "", node.op_type)
        known = rule_of(node) is not None
        return mapping.qconfig_for(node.name or "", op_type) if known else None

    def quantizable(node: ir.Node) -> bool:
        """Whether the node's activations would be quantized on its own merits."""
        node = absorbed[node.name].anchor if node.name in absorbed else node
        qconfig, rule = qconfig_of(node), rule_of(node)
        if qconfig is None or qconfig.activation is None or id(node) in kept:
            return False
        if rule is not None and not rule.output_indices(node):  # weights only (Gather): no int8 output
            return False
        return _refusal(node, rule_of(node), qconfig, dtypes) is None

    planned = plannable_graphs(graph)
    isolated = {n for g in planned for n in isolated_pass_through(g, quantizable)}
    labels = _labels(graph)
    for node in (n for g in planned for n in g):
        name = labels[id(node)]
        if not node.name:  # plans refer to nodes by name (prepare names every node)
            decisions[name] = NodeDecision(name, node.op_type, None, "the node has no name")
            continue
        if name in absorbed:
            anchor = absorbed[name].anchor.name or ""
            why = decisions[anchor].reason if anchor in decisions else "it was not planned"
            reason = None if why is None else f"fused with '{anchor}', which stays float: {why}"
            anchor_qconfig = qconfig_of(absorbed[name].anchor)
            if reason is None and anchor_qconfig is not None and anchor_qconfig.activation is None:
                reason = f"fused with '{anchor}', whose qconfig is weight-only (activations stay float)"
            decisions[name] = NodeDecision(name, node.op_type, None, reason, anchor)
            continue
        rule = rule_of(node)
        qconfig = qconfig_of(node)
        reason = ISOLATED_REASON if name in isolated else _refusal(node, rule, qconfig, dtypes)
        if id(node) in kept:
            reason = PREQUANTIZED_REASON
        if reason is not None or rule is None or qconfig is None:
            decisions[name] = NodeDecision(name, node.op_type, rule and rule.kind, reason)
            continue
        weight = weight_plan(node, rule, qconfig)
        if isinstance(weight, str):
            decisions[name] = NodeDecision(name, node.op_type, rule.kind, weight)
            continue
        decisions[name] = NodeDecision(name, node.op_type, rule.kind, None)
        if weight is not None:
            weights[name] = weight
        if qconfig.activation is None:  # weight-only: the activations stay float
            continue
        slots = list(rule.activation_indices(node))
        if weight is None and rule.weight_input is not None and rule.weight_input < len(node.inputs):
            slots.append(rule.weight_input)
        group = by_anchor.get(name)
        outs = [group.output] if group is not None else [node.outputs[i] for i in rule.output_indices(node)]
        ins = tuple((i, node.inputs[i].name or "") for i in slots)  # type: ignore[union-attr]
        if floating := tuple(v.name or "" for v in outs if v.name in loose):
            kept_float[name] = floating
        inputs[name], outputs[name] = ins, tuple(v.name or "" for v in outs if v.name not in loose)
        _relate(tensors, rule, qconfig, [v for _, v in ins], outputs[name])
    groups, group_of = tensors.build(graph)
    ordered = tuple(_ordered(graph, decisions, labels))
    return QuantPlan(ordered, inputs, outputs, weights, groups, group_of, kept_float)


def plannable_graphs(graph: ir.Graph) -> list[ir.Graph]:
    """``graph`` and the bodies under it whose value names are their own.

    Plans, tensor groups and the Q/DQ map refer to values by name, so a body that reuses a name
    from outside it (ONNX lets a body shadow an outer name) is left out, with everything under it.
    """
    planned: list[ir.Graph] = []
    seen: set[str] = set()

    def visit(g: ir.Graph) -> None:
        names = {
            v.name or "" for v in (*g.inputs, *g.initializers.values(), *(o for n in g for o in n.outputs))
        }
        if names & seen:
            return
        seen.update(names)
        planned.append(g)
        for node in g:
            for sub in node_subgraphs(node):
                visit(sub)

    visit(graph)
    return planned


def _labels(graph: ir.Graph, owner: str = "") -> dict[int, str]:
    """How the plan calls each node: its name, or ``<owner>/<op type>_<index>`` for an unnamed one."""
    labels: dict[int, str] = {}
    for index, node in enumerate(graph):
        labels[id(node)] = node.name or f"{owner or graph.name or 'graph'}/{node.op_type}_{index}"
        for sub in node_subgraphs(node):
            labels.update(_labels(sub, labels[id(node)]))
    return labels


def _ordered(
    graph: ir.Graph, decisions: Mapping[str, NodeDecision], labels: Mapping[int, str]
) -> list[NodeDecision]:
    """Every node's decision in graph order, each body's nodes right after the node that holds it;
    a node of a body left out of planning stays float (``SUBGRAPH_REASON``)."""
    found: list[NodeDecision] = []
    for node in graph:
        name = labels[id(node)]
        rule = rule_of(node)
        found.append(
            decisions.get(name) or NodeDecision(name, node.op_type, rule and rule.kind, SUBGRAPH_REASON)
        )
        for sub in node_subgraphs(node):
            found.extend(_ordered(sub, decisions, labels))
    return found


def _relate(
    tensors: GroupBuilder, rule: OpRule, qconfig: QConfig, ins: list[str], outs: tuple[str, ...]
) -> None:
    """Record a quantized node's tensors and what its kind says about their parameters."""
    assert qconfig.activation is not None
    for v in (*ins, *outs):
        tensors.add(v, qconfig.activation)
    if rule.kind is QuantKind.PASS_THROUGH:  # outputs keep the (first) input's parameters
        for o in outs:
            tensors.derive(o, ins[:1])
    elif rule.kind is QuantKind.SHARED_SCALE and outs:  # inputs and output share one set
        tensors.derive(outs[0], ins)
    elif rule.kind is QuantKind.FIXED_RANGE and rule.fixed_range is not None:
        for o in outs:
            tensors.fix(o, rule.fixed_range, when_filled=qconfig.fixed_ranges == "when_filled")


def _refusal(node: ir.Node, rule: OpRule | None, qconfig: QConfig | None, dtypes: ElementTypes) -> str | None:
    """Why ``node`` stays float, or None when it can be quantized."""
    if not is_onnx_domain(node.domain):
        return f"op domain {node.domain!r} is passed through untouched"
    if rule is None:
        return f"op type {node.op_type} is not quantized by onnxq"
    if qconfig is None:
        return "its qconfig is None (left in float by the QConfigMapping)"
    if qconfig.activation is None and rule.kind is not QuantKind.WEIGHTED:
        return f"its qconfig is weight-only and {node.op_type} has no weight"
    if qconfig.activation is not None and qconfig.activation.dynamic:
        return "its qconfig has dynamic activations, which static conversion does not insert"
    if rule.check is not None and (why := rule.check(node)) is not None:
        return why
    slots = list(rule.activation_indices(node))
    if rule.weight_input is not None:
        w = node.inputs[rule.weight_input] if rule.weight_input < len(node.inputs) else None
        if w is None:
            return f"{node.op_type} has no weight input"
        w_array = constant_array(w)
        if w_array is None and (rule.constant_weight_required or qconfig.activation is None):
            return f"weight '{w.name}' is not a constant"
        if w_array is None:
            slots.append(rule.weight_input)
        elif w_array.dtype != np.float32:
            return f"weight '{w.name}' is {w_array.dtype}, only float32 is quantized"
    for i in slots:
        why = _not_float(node.inputs[i], "input", dtypes)  # type: ignore[arg-type]
        if why is not None:
            return why
    for i in rule.output_indices(node):
        why = _not_float(node.outputs[i], "output", dtypes)
        if why is not None:
            return why
    return None


def _not_float(value: ir.Value, role: str, dtypes: ElementTypes) -> str | None:
    array = constant_array(value)
    if array is not None:
        if array.dtype != np.float32:
            return f"{role} '{value.name}' is {array.dtype}, not float32"
        if not np.all(np.isfinite(array)):  # quantized with the activation's qparams: NaN has no int8 value
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            return (
                f"constant {role} '{value.name}' holds {bad} NaN/Inf value(s), which no int8 value stands for"
            )
        return None
    dtype = dtypes(value)
    if dtype is None:
        return f"{role} '{value.name}' has an unknown element type"
    if dtype != ir.DataType.FLOAT:
        return f"{role} '{value.name}' is {dtype.name.lower()}, not float32"
    return None


__all__ = [
    "PREQUANTIZED_REASON",
    "SUBGRAPH_REASON",
    "NodeDecision",
    "QuantPlan",
    "WeightPlan",
    "build_plan",
]
