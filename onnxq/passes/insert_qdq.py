"""Insert QuantizeLinear/DequantizeLinear pairs as a :class:`~onnxq.planning.plan.QuantPlan` says.

The result is the QDQ format onnxruntime fuses into integer kernels::

    x -> Q(s_x, z_x) -> DQ -> Conv -> [Relu] -> Q(s_y, z_y) -> DQ -> consumers
    Wq (integer initializer) -> DQ(s_w, 0, axis) -^ ^- DQ(s_x * s_w, axis 0) <- bq (int32)

* A tensor produced by a quantized node gets one Q/DQ pair, read by *all* its consumers (so the
  producer can be fused); a graph output keeps its name and float type (the DQ produces it).
* A graph input or the output of a float node gets one pair read by its quantized consumers only.
* A constant read as an activation is stored quantized behind a DQ (no Q).
* Each tensor group shares one pair of scale / zero-point initializers.
* Weights and biases come already quantized (:func:`onnxq.weights.quantize_weights`); a weight
  read by several nodes is stored once. Zero points that are 0 are left out where onnxruntime
  fuses without them (int32 biases; Conv/ConvTranspose weights), since DequantizeLinear defaults
  to 0; Gemm/MatMul weights keep theirs (their op rules' ``keep_weight_zero_point``). Per-block
  weights get DequantizeLinear's ``axis`` and ``block_size``.

``Q(x) = saturate(round_half_even(x / s) + z)``, ``DQ(q) = (q - z) * s``. Besides the model, the
pass returns the Q/DQ map: for every tensor it quantized, the names of its integer value, the
DequantizeLinear output its readers now see, and the nodes and initializers involved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import onnx_ir as ir

from onnxq.errors import UnsupportedModelError
from onnxq.graph import (
    NameAuthority,
    constant_array,
    iter_graphs,
    new_initializer,
    opset_version,
    remove_unused_initializers,
)
from onnxq.opsets import qdq_opset
from onnxq.passes.base import GraphPass, PassResult
from onnxq.planning.ops import rule_of
from onnxq.planning.plan import QuantPlan
from onnxq.planning.tensor_groups import values_by_name
from onnxq.qparams import QParams, quantize
from onnxq.weights import QuantizedBias, QuantizedTensor, QuantizedWeights

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QDQEntry:
    """Where one quantized float tensor went.

    Attributes:
        tensor: Its name in the prepared fp32 model (the key of the map).
        kind: "activation" (quantized at run time), "constant" (an activation constant stored
            quantized), "weight" or "bias".
        source: The float value's name in the converted model (a graph output's float value is
            renamed: the DequantizeLinear output takes over its name).
        quantized: The integer value: the QuantizeLinear output, or the stored initializer.
        dequantized: The DequantizeLinear output its readers see.
        quantize_node: The QuantizeLinear node (None for stored constants).
        dequantize_node: The DequantizeLinear node.
        scale, zero_point: The initializers holding them (zero_point None when left out as 0).
        qparams: The parameters (None for an int32 bias, whose scale is ``scale``).
    """

    tensor: str
    kind: str
    source: str
    quantized: str
    dequantized: str
    quantize_node: str | None
    dequantize_node: str
    scale: str
    zero_point: str | None
    qparams: QParams | None


class InsertQDQResult(PassResult):
    """The rewritten model, the number of Q/DQ nodes added, and the Q/DQ map."""

    def __init__(self, model: ir.Model, count: int, qdq_map: Mapping[str, QDQEntry]) -> None:
        super().__init__(model, count)
        self.qdq_map = dict(qdq_map)


class InsertQDQ(GraphPass):
    """Rewrite the fp32 model into QDQ form from a plan, each tensor group's parameters and the
    quantized weights."""

    name = "insert_qdq"

    def __init__(self, plan: QuantPlan, qparams: Mapping[int, QParams], weights: QuantizedWeights) -> None:
        self.plan = plan
        self.qparams = qparams
        self.weights = weights

    def call(self, model: ir.Model) -> InsertQDQResult:
        opset = opset_version(model)
        needed = self._needed_opset()
        if opset < needed:
            raise UnsupportedModelError(
                f"model opset {opset} < {needed}, which its Q/DQ types need: normalise it with "
                f"Normalize(min_opset={needed}) before inserting Q/DQ"
            )
        return _Rewriter(model, self.plan, self.qparams, self.weights).run()

    def _needed_opset(self) -> int:
        params = [*self.qparams.values(), *(w.weight.qparams for w in self.weights.nodes.values())]
        return max(
            [qdq_opset(qp.dtype, qp.block_size is not None) for qp in params], default=qdq_opset("int8")
        )


class _Rewriter:
    """One application of a plan to one model (holds the lookups and the name authority).

    Everything a Q/DQ pair needs goes into the graph of the value it quantizes (a body's own
    tensors get their pairs, scales and zero points in that body), so onnxruntime's QDQ fusion
    sees constants next to the node it fuses, in every body.
    """

    def __init__(
        self, model: ir.Model, plan: QuantPlan, qparams: Mapping[int, QParams], weights: QuantizedWeights
    ) -> None:
        self.model, self.graph, self.plan = model, model.graph, plan
        self.qparams, self.weights = qparams, weights
        self.names = NameAuthority(self.graph)
        self.values = values_by_name(self.graph)
        self.nodes = {node.name or "": node for g in iter_graphs(self.graph) for node in g}
        self.group_params: dict[tuple[int, int], tuple[ir.Value, ir.Value]] = {}
        self.weight_dq: dict[tuple[int, bool, int], tuple[ir.Value, QDQEntry]] = {}
        self.dequantized: dict[str, ir.Value] = {}
        self.entries: dict[str, QDQEntry] = {}
        self.count = 0

    def run(self) -> InsertQDQResult:
        for node in self.plan.quantized_nodes():
            for name in self.plan.outputs.get(node, ()):
                if name not in self.dequantized:
                    self.dequantized[name] = self._qdq_at_source(self.values[name])
        for node_name, slots in self.plan.inputs.items():
            node = self.nodes[node_name]
            for slot, name in slots:
                if name not in self.dequantized:
                    self.dequantized[name] = self._qdq_for_consumers(self.values[name])
                node.replace_input_with(slot, self.dequantized[name])
        for node_name, node_weights in self.weights.nodes.items():
            if node_name in self.plan.weights:
                self._store_weights(node_name, node_weights.weight, node_weights.bias)
        removed = 0
        for graph in iter_graphs(self.graph):
            removed += remove_unused_initializers(graph)
            graph.sort()
        logger.info("insert_qdq: %d Q/DQ nodes added, %d float initializers dropped", self.count, removed)
        return InsertQDQResult(self.model, self.count, self.entries)

    def _graph_of(self, value: ir.Value) -> ir.Graph:
        return value.graph if value.graph is not None else self.graph

    def _initializer(self, graph: ir.Graph, array: np.ndarray, hint: str) -> ir.Value:
        return new_initializer(graph, np.asarray(array), self.names, hint)

    # -- activations ----------------------------------------------------------------------------
    def _params(self, value_name: str, graph: ir.Graph) -> tuple[QParams, ir.Value, ir.Value]:
        index = self.plan.group_of[value_name]
        qp = self.qparams[index]
        key = (index, id(graph))
        if key not in self.group_params:
            scale = self._initializer(graph, np.asarray(qp.scale, np.float32), f"{value_name}_scale")
            zp = self._initializer(graph, qp.zero_point, f"{value_name}_zp")
            self.group_params[key] = (scale, zp)
        return (qp, *self.group_params[key])

    def _q_dq(self, value: ir.Value, name: str) -> tuple[ir.Node, ir.Value]:
        """A new Q and DQ pair on ``value`` (name it by the plan's ``name``); return (Q, DQ output)."""
        graph = self._graph_of(value)
        qp, scale, zp = self._params(name, graph)
        q_type = ir.TensorType(ir.DataType.from_numpy(qp.zero_point.dtype))
        q_out = ir.Value(name=self.names.value(f"{name}_q"), type=q_type, shape=value.shape)
        q = ir.Node(
            "", "QuantizeLinear", [value, scale, zp], outputs=[q_out], name=self.names.node(f"{name}_Q")
        )
        dq_out = ir.Value(
            name=self.names.value(f"{name}_dq"), type=ir.TensorType(ir.DataType.FLOAT), shape=value.shape
        )
        dq = ir.Node(
            "", "DequantizeLinear", [q_out, scale, zp], outputs=[dq_out], name=self.names.node(f"{name}_DQ")
        )
        graph.extend([q, dq])
        self.count += 2
        self.entries[name] = QDQEntry(
            name, "activation", value.name or "", q_out.name or "", dq_out.name or "", q.name,
            dq.name or "", scale.name or "", zp.name, qp,
        )  # fmt: skip
        return q, dq_out

    def _qdq_at_source(self, value: ir.Value) -> ir.Value:
        name = value.name or ""
        graph = self._graph_of(value)
        q, dq_out = self._q_dq(value, name)
        for use in list(value.uses()):
            if use.node is not q:
                use.node.replace_input_with(use.idx, dq_out)
        if value.is_graph_output():  # the DQ takes over the output's name and place
            value.name = self.names.value(f"{name}_float")
            dq_out.name = name
            for i, out in enumerate(graph.outputs):
                if out is value:
                    graph.outputs[i] = dq_out
            self.entries[name] = replace(self.entries[name], source=value.name, dequantized=name)
        return dq_out

    def _qdq_for_consumers(self, value: ir.Value) -> ir.Value:
        name = value.name or ""
        array = constant_array(value)
        if array is None:
            return self._q_dq(value, name)[1]
        graph = self._graph_of(value)
        qp, scale, zp = self._params(name, graph)
        q_init = self._initializer(graph, quantize(array, qp), f"{name}_q")
        return self._dequantize(graph, name, "constant", q_init, scale, zp, qp, ir.Shape(array.shape))

    def _dequantize(
        self,
        graph: ir.Graph,
        tensor: str,
        kind: str,
        q: ir.Value,
        scale: ir.Value,
        zp: ir.Value | None,
        qp: QParams | None,
        shape: ir.Shape | None,
        axis: int | None = None,
        block_size: int | None = None,
    ) -> ir.Value:
        """A DequantizeLinear of ``q`` in ``graph``; without ``zp`` the zero point is 0 (int32 biases)."""
        out = ir.Value(
            name=self.names.value(f"{tensor}_dq"), type=ir.TensorType(ir.DataType.FLOAT), shape=shape
        )
        attrs = [] if axis is None else [ir.AttrInt64("axis", axis)]
        if block_size is not None:
            attrs.append(ir.AttrInt64("block_size", block_size))
        inputs = [q, scale] if zp is None else [q, scale, zp]
        node = ir.Node(
            "", "DequantizeLinear", inputs, attrs, outputs=[out], name=self.names.node(f"{tensor}_DQ")
        )
        graph.append(node)
        self.count += 1
        self.entries[tensor] = QDQEntry(
            tensor, kind, tensor, q.name or "", out.name or "", None, node.name or "", scale.name or "",
            None if zp is None else zp.name, qp,
        )  # fmt: skip
        return out

    # -- weights and biases ---------------------------------------------------------------------
    def _store_weights(self, node_name: str, weight: QuantizedTensor, bias: QuantizedBias | None) -> None:
        wp = self.plan.weights[node_name]
        node = self.nodes[node_name]
        graph = node.graph or self.graph  # next to the node that reads it, for the QDQ fusion
        rule = rule_of(node)
        assert rule is not None and rule.weight_input is not None
        keep_zp = rule.keep_weight_zero_point or not bool(
            np.all(weight.qparams.zero_point.astype(np.int32) == 0)
        )
        key = (id(weight), keep_zp, id(graph))  # a weight shared by several nodes: one DQ per graph
        if key not in self.weight_dq:
            qp, hint = weight.qparams, wp.weight
            zp = self._initializer(graph, qp.zero_point, f"{hint}_zp") if keep_zp else None
            dq = self._dequantize(
                graph, hint, "weight",
                self._initializer(graph, weight.values, f"{hint}_q"),
                self._initializer(graph, qp.scale, f"{hint}_scale"),
                zp, qp, ir.Shape(weight.values.shape), qp.axis, qp.block_size,
            )  # fmt: skip
            self.weight_dq[key] = (dq, self.entries[hint])
        dq, entry = self.weight_dq[key]
        self.entries[wp.weight] = entry
        node.replace_input_with(rule.weight_input, dq)
        if bias is None or wp.bias is None or rule.bias_input is None:
            return
        dq_b = self._dequantize(
            graph, wp.bias, "bias",
            self._initializer(graph, bias.values, f"{wp.bias}_q"),
            self._initializer(graph, bias.scale, f"{wp.bias}_scale"),
            None, None, ir.Shape(bias.values.shape), bias.axis,
        )  # fmt: skip
        node.replace_input_with(rule.bias_input, dq_b)


__all__ = ["InsertQDQ", "InsertQDQResult", "QDQEntry"]
