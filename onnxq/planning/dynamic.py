"""The plan of a dynamic quantization: what each node of the main graph becomes, or why it stays float.

Dynamic quantization stores weights as 8-bit integers ahead of time and quantizes activations at
run time (``DynamicQuantizeLinear``: uint8, per tensor, from each input's own range), so it needs
no calibration. :func:`build_dynamic_plan` decides per node, for a :class:`DynamicFormat`:

* MatMul / Gemm with a constant 2-D float weight and a dynamic qconfig: ``dynamic_matmul``
  (``qdq``: DynamicQuantizeLinear + MatMulInteger + scale; ``onnxruntime``: DynamicQuantizeMatMul;
  ``onnxq``: ``ai.onnxq.DynamicMatMul`` for symmetric int8 weights, else the ``qdq`` form, noted),
  a MatMul with the Add of a constant bias vector that alone reads it (the Add's decision names
  the MatMul as its ``anchor``);
* LSTM in the ``onnxruntime`` format: ``dynamic_lstm`` (``com.microsoft.DynamicQuantizeLSTM``),
  unless its ``layout`` is 1, which that op lacks;
* LSTM / GRU / RNN in the ``onnxq`` format under a dynamic qconfig with symmetric int8 weights:
  ``dynamic_rnn`` (``ai.onnxq.DynamicLSTM`` / ``DynamicGRU`` / ``DynamicRNN``), unless it uses
  what those kernels lack (:func:`onnxq_rnn_refusal`: other activations, ``clip``, peepholes,
  ``input_forget``), noted;
* LSTM / GRU / RNN otherwise, Conv / ConvTranspose / Gather (embedding tables), and MatMul / Gemm
  under a weight-only qconfig (``activation=None``): ``weight_only`` — 8-bit weights behind a
  ``DequantizeLinear``, the op itself in float (onnxruntime has no quantized GRU or RNN);
* everything else stays float with the reason.

Weights are quantized per channel (each output row; a recurrent op's rows per direction and gate)
or per tensor, as the node's weight spec says. A node's channels are named by ``channel_axes``: the
axes whose product is the channel index (``(0, 1)`` for a recurrent weight ``[directions, gates *
hidden, inputs]``; ``(1,)`` for a Gemm's weight as the ``[K, N]`` matmul weight it becomes).
``reduce_range`` (True or False; None: as the specs say) sets the weight specs' ``reduce_range``
of the nodes an integer matmul computes (``dynamic_matmul``, ``dynamic_lstm``, ``dynamic_rnn``):
7-bit weights (``[-63, 63]`` symmetric), whose pairs of u8 x s8 products fit int16, so x86 CPUs
without VNNI compute them exactly on ``vpmaddubsw`` (stock onnxruntime's u8 x s8 kernels, which
otherwise saturate, and onnxq's AVX2 GEMM, which otherwise widens to int16). Weight-only nodes
keep their spec: their weights are dequantized to float.
Nodes inside If/Loop/Scan bodies are not planned (the report lists the main graph's nodes).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import onnx_ir as ir

from onnxq.errors import ConfigError
from onnxq.graph import constant_array, int_attr, is_onnx_domain
from onnxq.planning.ops import rule_of
from onnxq.qconfig import QConfig, QConfigMapping, QSpec
from onnxq.scheme import PerBlock, PerChannel


class DynamicFormat(enum.Enum):
    """Which ops the dynamic model is written with."""

    QDQ = "qdq"  # standard ops only
    ONNXRUNTIME = "onnxruntime"  # onnxruntime's com.microsoft contrib ops
    ONNXQ = "onnxq"  # onnxq's kernels as custom ops (ai.onnxq), the rest as qdq


class DynamicAction(enum.Enum):
    """What a planned node becomes (the report's ``kind``)."""

    MATMUL = "dynamic_matmul"
    LSTM = "dynamic_lstm"
    RNN = "dynamic_rnn"  # ai.onnxq.DynamicLSTM / DynamicGRU / DynamicRNN (the onnxq format)
    WEIGHT_ONLY = "weight_only"


#: The op types quantize_dynamic knows, and the weight inputs it stores quantized.
MATMUL_OPS = ("MatMul", "Gemm")
RECURRENT_OPS = ("LSTM", "GRU", "RNN")
WEIGHT_ONLY_OPS = ("Conv", "ConvTranspose", "Gather")
DYNAMIC_OP_TYPES = (*MATMUL_OPS, *RECURRENT_OPS, *WEIGHT_ONLY_OPS)
#: Why a GRU / RNN keeps a float op in the onnxruntime format.
NO_CONTRIB_RNN = "onnxruntime has no dynamically quantized {op}: weight-only (int8 behind DequantizeLinear)"
#: Why a recurrent op keeps a float op in the onnxq format ({why}: what onnxq's kernels lack).
NO_ONNXQ_RNN = "{why}, which onnxq's Dynamic{op} lacks: weight-only (int8 behind DequantizeLinear)"
#: ONNX's default activations of one direction.
DEFAULT_ACTIVATIONS = {"LSTM": ("sigmoid", "tanh", "tanh"), "GRU": ("sigmoid", "tanh"), "RNN": ("tanh",)}


def onnxq_rnn_refusal(node: ir.Node) -> str | None:
    """What of a recurrent ``node`` the kernels of ``ai.onnxq.Dynamic{LSTM,GRU,RNN}`` cannot
    compute (None when they can): activations other than ONNX's defaults (with or without
    alpha/beta), ``clip``, LSTM peepholes and ``input_forget``."""
    op = node.op_type
    dirs = 2 if _str_attr(node, "direction", "forward") == "bidirectional" else 1
    acts = node.attributes.get("activations")
    if acts is not None:
        names = tuple(a.lower() for a in acts.as_strings())
        if names != DEFAULT_ACTIVATIONS[op] * dirs:
            return f"activations {list(acts.as_strings())}"
    for name in ("activation_alpha", "activation_beta", "clip"):
        if name in node.attributes:
            return f"attribute {name}"
    if op == "LSTM":
        if int_attr(node, "input_forget", 0):
            return "input_forget=1"
        if len(node.inputs) > 7 and node.inputs[7] is not None:
            return "peepholes (input P)"
    return None


def _str_attr(node: ir.Node, name: str, default: str) -> str:
    attr = node.attributes.get(name)
    return default if attr is None else attr.as_string()


def onnxq_matmul_refusal(spec: QSpec) -> str | None:
    """Why a weight of ``spec`` cannot go to ``ai.onnxq.DynamicMatMul`` (None when it can): its
    kernel takes int8 weights with zero point 0."""
    if spec.dtype != "int8" or not spec.symmetric:
        return (
            f"its weights are {'symmetric' if spec.symmetric else 'asymmetric'} {spec.dtype}, and "
            "onnxq's DynamicMatMul takes symmetric int8 weights: DynamicQuantizeLinear + MatMulInteger"
        )
    return None


@dataclass(frozen=True)
class WeightSlot:
    """One weight input of a planned node, stored quantized.

    ``channel_axes``: the axes whose product indexes the channels (empty: per tensor).
    """

    input: int
    value: str
    spec: QSpec
    channel_axes: tuple[int, ...]


@dataclass(frozen=True)
class DynamicDecision:
    """One node: ``action`` and ``weights`` when it is planned, else the ``reason`` it stays float.

    ``bias_add`` names the Add of a constant bias vector a MatMul absorbs (the Add's ``anchor``
    then names the MatMul).
    """

    name: str
    op_type: str
    action: DynamicAction | None
    reason: str | None
    weights: tuple[WeightSlot, ...] = ()
    bias_add: str | None = None
    anchor: str | None = None

    @property
    def quantized(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class DynamicPlan:
    """Every main-graph node's decision, in graph order, and notes for the report."""

    decisions: tuple[DynamicDecision, ...]
    format: DynamicFormat
    notes: tuple[str, ...] = ()

    def planned(self, *actions: DynamicAction) -> tuple[DynamicDecision, ...]:
        return tuple(d for d in self.decisions if d.quantized and d.action in actions)


def check_op_types(op_types: Iterable[str] | None) -> frozenset[str]:
    """``op_types`` as a set (None: all of :data:`DYNAMIC_OP_TYPES`); an unknown name is a ConfigError."""
    if op_types is None:
        return frozenset(DYNAMIC_OP_TYPES)
    if isinstance(op_types, str):
        op_types = [op_types]
    chosen = frozenset(op_types)
    unknown = sorted(chosen - set(DYNAMIC_OP_TYPES))
    if unknown:
        raise ConfigError(
            f"unknown op type(s) for dynamic quantization: {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(DYNAMIC_OP_TYPES)})"
        )
    return chosen


def build_dynamic_plan(
    graph: ir.Graph,
    mapping: QConfigMapping,
    op_types: frozenset[str],
    fmt: DynamicFormat,
    source_op_types: Mapping[str, str] | None = None,
    reduce_range: bool | None = None,
) -> DynamicPlan:
    """Decide what each node of ``graph`` (prepared: every node named) becomes (module docstring,
    which says what ``reduce_range`` does).

    ``source_op_types`` gives the op type a node had in the user's model when a structural pass
    changed it (MatMul + Add fused into a Gemm): the mapping and ``op_types`` see that one.
    """
    decisions: dict[str, DynamicDecision] = {}
    notes = []
    for node in graph:
        if (node.name or "") in decisions:  # a bias Add its MatMul absorbed
            continue
        op_type = (source_op_types or {}).get(node.name or "", node.op_type)
        decision = _with_reduce_range(_decide(node, op_type, mapping, op_types, fmt), reduce_range)
        decisions[decision.name] = decision
        if (
            decision.quantized
            and decision.action is DynamicAction.MATMUL
            and fmt is DynamicFormat.ONNXQ
            and (why := onnxq_matmul_refusal(decision.weights[0].spec)) is not None
        ):
            notes.append(f"{node.name}: {why}")
        if decision.action is DynamicAction.MATMUL and (add := _bias_add(node)) is not None:
            decisions[decision.name] = replace(decision, bias_add=add.name)
            decisions[add.name or ""] = DynamicDecision(
                add.name or "", "Add", None, None, anchor=decision.name
            )
            continue
        if decision.quantized and fmt is DynamicFormat.ONNXRUNTIME and node.op_type in ("GRU", "RNN"):
            notes.append(f"{node.name}: " + NO_CONTRIB_RNN.format(op=node.op_type))
        elif (
            decision.quantized
            and fmt is DynamicFormat.ONNXQ
            and node.op_type in RECURRENT_OPS
            and decision.action is DynamicAction.WEIGHT_ONLY
            and (why := _onnxq_rnn_why(node, decision)) is not None
        ):
            notes.append(f"{node.name}: " + NO_ONNXQ_RNN.format(why=why, op=node.op_type))

        elif (
            decision.quantized
            and fmt is DynamicFormat.ONNXRUNTIME
            and node.op_type == "LSTM"
            and decision.action is DynamicAction.WEIGHT_ONLY
        ):
            notes.append(f"{node.name}: layout=1, which DynamicQuantizeLSTM lacks: weight-only")
    return DynamicPlan(tuple(decisions.values()), fmt, tuple(notes))


#: The actions whose weights an integer matmul reads (``reduce_range`` applies to them).
INTEGER_ACTIONS = frozenset({DynamicAction.MATMUL, DynamicAction.LSTM, DynamicAction.RNN})


def _with_reduce_range(decision: DynamicDecision, reduce_range: bool | None) -> DynamicDecision:
    """``decision`` with its weight specs' ``reduce_range`` set, if an integer matmul reads them."""
    if reduce_range is None or decision.action not in INTEGER_ACTIONS:
        return decision
    weights = tuple(replace(w, spec=replace(w.spec, reduce_range=reduce_range)) for w in decision.weights)
    return replace(decision, weights=weights)


def _onnxq_rnn_why(node: ir.Node, decision: DynamicDecision) -> str | None:
    """Why a recurrent node planned weight-only in the onnxq format is not a custom op (None: its
    qconfig asked for weight-only)."""
    why = onnxq_rnn_refusal(node)
    if why is None and decision.weights:
        spec = decision.weights[0].spec
        if spec.dtype != "int8" or not spec.symmetric:
            why = f"{'symmetric' if spec.symmetric else 'asymmetric'} {spec.dtype} weights"
    return why


def _bias_add(node: ir.Node) -> ir.Node | None:
    """The Add of a constant float bias vector ``[N]`` that alone reads a MatMul's output (the
    matmul absorbs it: DynamicQuantizeMatMul's bias input), or None."""
    out = node.outputs[0]
    uses = list(out.uses())
    if node.op_type != "MatMul" or out.is_graph_output() or len(uses) != 1:
        return None
    add, index = uses[0].node, uses[0].idx
    if add.op_type != "Add" or not is_onnx_domain(add.domain) or add.graph is not node.graph or not add.name:
        return None
    bias, weight = constant_array(add.inputs[1 - index]), constant_array(node.inputs[1])
    if bias is None or weight is None or bias.dtype != np.float32 or bias.shape != weight.shape[-1:]:
        return None
    return add if bool(np.all(np.isfinite(bias))) else None


def _decide(
    node: ir.Node, op_type: str, mapping: QConfigMapping, op_types: frozenset[str], fmt: DynamicFormat
) -> DynamicDecision:
    name = node.name or ""

    def refuse(reason: str) -> DynamicDecision:
        return DynamicDecision(name, node.op_type, None, reason)

    if not is_onnx_domain(node.domain):
        return refuse(f"op domain {node.domain!r} is passed through untouched")
    if node.op_type not in DYNAMIC_OP_TYPES:
        return refuse(f"op type {node.op_type} is not quantized dynamically")
    if op_type not in op_types:
        return refuse(f"op type {op_type} is not among the op types asked for")
    qconfig = mapping.qconfig_for(name, op_type)
    if qconfig is None:
        return refuse("its qconfig is None (left in float by the QConfigMapping)")
    why = _spec_refusal(qconfig.weight)
    if why is not None:
        return refuse(why)
    slots = _weight_slots(node)
    if isinstance(slots, str):
        return refuse(slots)
    weights = []
    for index, axes in slots:
        value = node.inputs[index]
        assert value is not None
        why = weight_refusal(value)
        if why is not None:
            return refuse(why)
        granular = isinstance(qconfig.weight.granularity, PerChannel)
        weights.append(WeightSlot(index, value.name or "", qconfig.weight, axes if granular else ()))
    action = _action(node, qconfig, fmt)
    if isinstance(action, str):
        return refuse(action)
    return DynamicDecision(name, node.op_type, action, None, tuple(weights))


def _spec_refusal(spec: QSpec) -> str | None:
    if spec.dtype not in ("int8", "uint8"):
        return f"its weight dtype is {spec.dtype}; quantize_dynamic stores 8-bit weights"
    if isinstance(spec.granularity, PerBlock):
        return "its weight spec is per block; quantize_dynamic stores weights per channel or per tensor"
    if isinstance(spec.granularity, PerChannel) and spec.granularity.axis is not None:
        return "its weight spec names a channel axis; quantize_dynamic uses each op's output channels"
    return None


def _weight_slots(node: ir.Node) -> list[tuple[int, tuple[int, ...]]] | str:
    """``(input index, channel axes)`` of each weight of ``node``, or why it has none to store."""
    op = node.op_type
    if op in RECURRENT_OPS:
        return [(1, (0, 1)), (2, (0, 1))]  # W and R: [directions, gates * hidden, inputs]
    if op == "Gemm":
        if int_attr(node, "transA", 0):
            return "Gemm with transA=1: its input is not the matrix MatMulInteger reads"
        if len(node.inputs) > 2 and node.inputs[2] is not None and constant_array(node.inputs[2]) is None:
            return f"Gemm bias '{node.inputs[2].name}' is not a constant"
        return [(1, (1,))]  # channels of the [K, N] matmul weight (transB undone, alpha folded)
    if op == "MatMul":
        weight = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
        if weight is not None and weight.ndim != 2:
            return f"MatMul weight '{node.inputs[1].name}' has rank {weight.ndim}, not 2"  # type: ignore[union-attr]
        return [(1, (1,))]
    rule = rule_of(node)
    assert rule is not None and rule.weight_input is not None and rule.weight_axis is not None
    weight = constant_array(node.inputs[rule.weight_input]) if rule.weight_input < len(node.inputs) else None
    rank = 2 if weight is None else max(weight.ndim, 1)
    return [(rule.weight_input, (rule.weight_axis(node, rank),))]


def weight_refusal(value: ir.Value) -> str | None:
    """Why ``value`` cannot be stored quantized (not a constant, not float32, NaN/Inf), or None."""
    array = constant_array(value)
    if array is None:
        return f"weight '{value.name}' is not a constant"
    if array.dtype != np.float32:
        return f"weight '{value.name}' is {array.dtype}, only float32 is quantized"
    if not np.all(np.isfinite(array)):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        return f"weight '{value.name}' holds {bad} NaN/Inf value(s), which no int8 value stands for"
    return None


def _action(node: ir.Node, qconfig: QConfig, fmt: DynamicFormat) -> DynamicAction | str:
    if node.op_type not in MATMUL_OPS:
        if node.op_type == "LSTM" and fmt is DynamicFormat.ONNXRUNTIME and not int_attr(node, "layout", 0):
            return DynamicAction.LSTM
        if (
            node.op_type in RECURRENT_OPS
            and fmt is DynamicFormat.ONNXQ
            and qconfig.activation is not None
            and qconfig.activation.dynamic
            and onnxq_rnn_refusal(node) is None
            and onnxq_matmul_refusal(qconfig.weight) is None
        ):
            return DynamicAction.RNN
        return DynamicAction.WEIGHT_ONLY
    act = qconfig.activation
    if act is None:
        return DynamicAction.WEIGHT_ONLY
    if not act.dynamic:
        return "its qconfig has static activations, which quantize_dynamic does not calibrate"
    return DynamicAction.MATMUL


__all__ = [
    "DYNAMIC_OP_TYPES",
    "DynamicAction",
    "DynamicDecision",
    "DynamicFormat",
    "DynamicPlan",
    "WeightSlot",
    "build_dynamic_plan",
    "check_op_types",
    "onnxq_matmul_refusal",
    "onnxq_rnn_refusal",
    "weight_refusal",
]
