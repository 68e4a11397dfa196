"""Insert QuantizeLinear/DequantizeLinear pairs as a :class:`~onnxq.planning.plan.QuantPlan` says.

The result is the QDQ format onnxruntime fuses into integer kernels::

    x -> Q(s_x, z_x) -> DQ -> Conv -> [Relu] -> Q(s_y, z_y) -> DQ -> consumers
    Wq (int8 initializer) -> DQ(s_w, 0, axis) -^ ^- DQ(s_x * s_w, axis 0) <- bq (int32)

* A tensor produced by a quantized node gets one Q/DQ pair, read by *all* its consumers (so the
  producer can be fused); a graph output keeps its name and float type (the DQ produces it).
* A graph input or the output of a float node gets one pair read by its quantized consumers only.
* A constant read as an activation is stored quantized behind a DQ (no Q).
* Each tensor group shares one pair of scale / zero-point initializers.
* A weight read by several nodes is quantized once. Zero points that are 0 are left out where
  onnxruntime fuses without them (int32 biases; Conv/ConvTranspose weights), since DequantizeLinear
  defaults to 0; Gemm/MatMul weights keep theirs (their op rules' ``keep_weight_zero_point``).

``Q(x) = saturate(round_half_even(x / s) + z)``, ``DQ(q) = (q - z) * s``; weights and biases are
quantized by :mod:`onnxq.weights.rtn`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import onnx_ir as ir

from onnxq.errors import UnsupportedModelError
from onnxq.graph import (
    NameAuthority,
    constant_array,
    new_initializer,
    opset_version,
    remove_unused_initializers,
)
from onnxq.opsets import MIN_OPSET
from onnxq.passes.base import GraphPass, PassResult
from onnxq.planning.ops import rule_of
from onnxq.planning.plan import QuantPlan, WeightPlan
from onnxq.planning.tensor_groups import values_by_name
from onnxq.qparams import QParams, quantize
from onnxq.weights.rtn import bias_qparams, quantize_weight

logger = logging.getLogger(__name__)



class InsertQDQ(GraphPass):
    """Rewrite the fp32 model into QDQ form from a plan and each tensor group's parameters."""

    name = "insert_qdq"

    def __init__(self, plan: QuantPlan, qparams: Mapping[int, QParams]) -> None:
        self.plan = plan
        self.qparams = qparams

    def call(self, model: ir.Model) -> PassResult:
        opset = opset_version(model)
        if opset < MIN_OPSET:
            raise UnsupportedModelError(
                f"model opset {opset} < {MIN_OPSET}: normalise it before inserting Q/DQ"
            )
        return _Rewriter(model, self.plan, self.qparams).run()


class _Rewriter:
    """One application of a plan to one model (holds the lookups and the name authority)."""

    def __init__(self, model: ir.Model, plan: QuantPlan, qparams: Mapping[int, QParams]) -> None:
        self.model, self.graph, self.plan, self.qparams = model, model.graph, plan, qparams
        self.names = NameAuthority(self.graph)
        self.values = values_by_name(self.graph)
        self.nodes = {node.name or "": node for node in self.graph}
        self.group_params: dict[int, tuple[ir.Value, ir.Value]] = {}
        self.weight_dq: dict[tuple[str, int | None, str, bool, bool], tuple[ir.Value, QParams]] = {}
        self.dequantized: dict[str, ir.Value] = {}
        self.count = 0

    def run(self) -> PassResult:
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
        for wp in self.plan.weights.values():
            self._quantize_weight(wp)
        removed = remove_unused_initializers(self.graph)
        self.graph.sort()
        logger.info("insert_qdq: %d Q/DQ nodes added, %d float initializers dropped", self.count, removed)
        return PassResult(self.model, self.count)

    # -- activations ----------------------------------------------------------------------------
    def _params(self, value_name: str) -> tuple[QParams, ir.Value, ir.Value]:
        index = self.plan.group_of[value_name]
        qp = self.qparams[index]
        if index not in self.group_params:
            hint = value_name
            scale = new_initializer(self.graph, np.asarray(qp.scale, np.float32), self.names, f"{hint}_scale")
            zp = new_initializer(self.graph, np.asarray(qp.zero_point), self.names, f"{hint}_zp")
            self.group_params[index] = (scale, zp)
        return (qp, *self.group_params[index])

    def _q_dq(self, value: ir.Value, name: str) -> tuple[ir.Node, ir.Value]:
        """A new Q and DQ pair on ``value`` (name it by the plan's ``name``); return (Q, DQ output)."""
        qp, scale, zp = self._params(name)
        q_type = ir.TensorType(ir.DataType.from_numpy(qp.zero_point.dtype))
        q_out = ir.Value(name=self.names.value(f"{name}_q"), type=q_type, shape=value.shape)
        q = ir.Node("", "QuantizeLinear", [value, scale, zp], outputs=[q_out],
                    name=self.names.node(f"{name}_Q"))
        dq_out = ir.Value(name=self.names.value(f"{name}_dq"),
                          type=ir.TensorType(ir.DataType.FLOAT), shape=value.shape)
        dq = ir.Node("", "DequantizeLinear", [q_out, scale, zp], outputs=[dq_out],
                     name=self.names.node(f"{name}_DQ"))
        self.graph.extend([q, dq])
        self.count += 2
        return q, dq_out

    def _qdq_at_source(self, value: ir.Value) -> ir.Value:
        name = value.name or ""
        q, dq_out = self._q_dq(value, name)
        for use in list(value.uses()):
            if use.node is not q:
                use.node.replace_input_with(use.idx, dq_out)
        if value.is_graph_output():  # the DQ takes over the output's name and place
            value.name = self.names.value(f"{name}_float")
            dq_out.name = name
            for i, out in enumerate(self.graph.outputs):
                if out is value:
                    self.graph.outputs[i] = dq_out
        return dq_out

    def _qdq_for_consumers(self, value: ir.Value) -> ir.Value:
        name = value.name or ""
        array = constant_array(value)
        if array is None:
            return self._q_dq(value, name)[1]
        qp, scale, zp = self._params(name)
        q_init = new_initializer(self.graph, quantize(array, qp), self.names, f"{name}_q")
        return self._dequantize(q_init, scale, zp, None, name, value.shape)

    def _dequantize(
        self, q: ir.Value, scale: ir.Value, zp: ir.Value | None, axis: int | None, hint: str,
        shape: ir.Shape | None,
    ) -> ir.Value:
        """A DequantizeLinear of ``q``; without ``zp`` the zero point is 0 (int32 biases)."""
        out = ir.Value(name=self.names.value(f"{hint}_dq"), type=ir.TensorType(ir.DataType.FLOAT),
                       shape=shape)
        attrs = [] if axis is None else [ir.AttrInt64("axis", axis)]
        inputs = [q, scale] if zp is None else [q, scale, zp]
        name = self.names.node(f"{hint}_DQ")
        node = ir.Node("", "DequantizeLinear", inputs, attrs, outputs=[out], name=name)
        self.graph.append(node)
        self.count += 1
        return out

    # -- weights and biases ---------------------------------------------------------------------
    def _quantize_weight(self, wp: WeightPlan) -> None:
        node = self.nodes[wp.node]
        rule = rule_of(node)
        assert rule is not None and rule.weight_input is not None
        keep_zp = rule.keep_weight_zero_point
        key = (wp.weight, wp.axis, wp.spec.observer, wp.spec.reduce_range, keep_zp)  # shared: one DQ
        if key not in self.weight_dq:
            w = constant_array(self.values[wp.weight])
            assert w is not None
            wq, w_qp = quantize_weight(w, wp.spec, wp.axis)
            hint = wp.weight
            zp = new_initializer(self.graph, w_qp.zero_point, self.names, f"{hint}_zp") if keep_zp else None
            dq = self._dequantize(
                new_initializer(self.graph, wq, self.names, f"{hint}_q"),
                new_initializer(self.graph, w_qp.scale, self.names, f"{hint}_scale"),
                zp,
                wp.axis,
                hint,
                ir.Shape(w.shape),
            )
            self.weight_dq[key] = (dq, w_qp)
        dq, w_qp = self.weight_dq[key]
        node.replace_input_with(rule.weight_input, dq)
        if wp.bias is None or rule.bias_input is None:
            return
        b = constant_array(self.values[wp.bias])
        assert b is not None
        in_qp = self.qparams[self.plan.group_of[wp.activation]]
        bq, b_scale = bias_qparams(b, in_qp.scale, w_qp.scale, wp.bias_repeats)
        dq_b = self._dequantize(
            new_initializer(self.graph, bq, self.names, f"{wp.bias}_q"),
            new_initializer(self.graph, b_scale, self.names, f"{wp.bias}_scale"),
            None,
            None if wp.axis is None else 0,
            wp.bias,
            ir.Shape(bq.shape),
        )
        node.replace_input_with(rule.bias_input, dq_b)


__all__ = ["InsertQDQ"]
