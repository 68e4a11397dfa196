"""MatMul / Gemm with a constant weight -> integer matmul on activations quantized at run time.

With ``x`` quantized per tensor at run time (``DynamicQuantizeLinear``: ``s_x = (max(x, 0) -
min(x, 0)) / 255``, ``z_x = round(-min(x, 0) / s_x)``, ``x_q = saturate(round(x / s_x) + z_x)``)
and the weight ``W [K, N]`` ahead of time (``W_q``, ``s_w`` per column or per tensor, ``z_w``)::

    y[m, n] = sum_k x[m, k] W[k, n] + b[n]
           ~= s_x * s_w[n] * sum_k (x_q[m, k] - z_x) (W_q[k, n] - z_w[n]) + b[n]

The sum is ``MatMulInteger``'s int32 result; the rest is float. Format ``qdq`` writes it with
standard ops, in the shape onnxruntime fuses into ``MatMulIntegerToFloat`` (and, when the
DynamicQuantizeLinear feeds one matmul only, ``DynamicQuantizeMatMul``)::

    x -> DynamicQuantizeLinear -> (x_q, s_x, z_x)          (one per activation tensor, shared)
    MatMulInteger(x_q, W_q, z_x, z_w) -> Cast(float) -> Mul(., Mul(s_x, s_w)) [-> Add(., b)]

Format ``onnxruntime`` writes ``com.microsoft.DynamicQuantizeMatMul(x, W_q, s_w, z_w, b)``, one
node computing the same; format ``onnxq`` writes ``ai.onnxq.DynamicMatMul(x, W_q, s_w, z_w, b)``,
the same on onnxq's kernels (symmetric int8 weights only: other weights get the ``qdq`` form,
as the plan notes). A Gemm becomes the matmul of
:func:`onnxq.weights.dynamic.gemm_as_matmul` (``alpha`` folded into ``W``, ``beta * C`` the
bias); a MatMul takes the bias of the Add the plan gives it (``bias_add``). A weight read by
several nodes is stored once.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnxq.graph import (
    NameAuthority,
    constant_array,
    float_attr,
    int_attr,
    new_initializer,
    remove_node,
    replace_all_uses,
)
from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.passes.planned_rewrite import PlannedRewrite
from onnxq.planning.dynamic import (
    DynamicAction,
    DynamicDecision,
    DynamicFormat,
    WeightSlot,
    onnxq_matmul_refusal,
)
from onnxq.weights.dynamic import ChannelWeight, gemm_as_matmul, quantize_channels

logger = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"


def matmul_weight(node: ir.Node, bias_add: ir.Node | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The node's ``(W [K, N], bias or None)`` as the matmul ``x W + bias`` it computes (a MatMul's
    bias from the ``bias_add`` it absorbs)."""
    b = constant_array(node.inputs[1])
    assert b is not None
    if node.op_type == "MatMul":
        bias = None
        if bias_add is not None:
            bias = next(a for a in map(constant_array, bias_add.inputs) if a is not None)
        return np.asarray(b, np.float32), bias
    c = constant_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    alpha, beta = float_attr(node, "alpha", 1.0), float_attr(node, "beta", 1.0)
    return gemm_as_matmul(b, c, alpha, beta, bool(int_attr(node, "transB", 0)))


def compact_zero_point(weight: ChannelWeight) -> np.ndarray:
    """The weight's zero point as one value when every channel has the same (symmetric weights)."""
    zp = weight.zero_point
    return zp.reshape(-1)[:1].reshape(()) if zp.size and np.all(zp == zp.reshape(-1)[0]) else zp


class DynamicMatMul(PlannedRewrite):
    """Rewrite the plan's ``dynamic_matmul`` nodes (see the module docstring)."""

    name = "dynamic_matmul"
    action = DynamicAction.MATMUL

    def rewrite(self, model: ir.Model, names: NameAuthority, node: ir.Node, decision: DynamicDecision) -> int:
        graph = model.graph
        (slot,) = decision.weights
        # the plan's bias Add alone reads the MatMul's output: the Add's output is the result
        bias_add = next(u.node for u in node.outputs[0].uses()) if decision.bias_add else None
        result = node.outputs[0] if bias_add is None else bias_add.outputs[0]
        w_q, w_scale, w_zp, bias = self._weight(graph, names, node, slot, bias_add)
        x = node.inputs[0]
        assert x is not None
        hint = node.name or node.op_type
        fused = _fused_op(self.plan.format, slot)
        if fused is not None:
            domain, op_type, opset = fused
            model.opset_imports.setdefault(domain, opset)
            inputs = [x, w_q, w_scale, w_zp, *([bias] if bias is not None else [])]
            y = _value(names, f"{hint}_out", ir.DataType.FLOAT)
            graph.append(
                ir.Node(domain, op_type, inputs, outputs=[y], name=names.node(f"{hint}_{op_type}"))
            )
        else:
            key = ("input", id(x))  # one DynamicQuantizeLinear per activation tensor
            if key not in self.cache:
                self.cache[key] = _dynamic_quantize(graph, names, x)
            y = _integer_matmul(graph, names, hint, self.cache[key], w_q, w_scale, w_zp, bias)
        y.type, y.shape = result.type, result.shape  # the same tensor
        replace_all_uses(result, y, names)
        if bias_add is not None:
            remove_node(bias_add)
        remove_node(node)
        return 1

    def _weight(
        self, graph: ir.Graph, names: NameAuthority, node: ir.Node, slot: WeightSlot, bias_add: ir.Node | None
    ) -> tuple[ir.Value, ir.Value, ir.Value, ir.Value | None]:
        """The stored ``(W_q, s_w, z_w)`` of the node (quantized once per weight and Gemm form)
        and its bias initializer."""
        weight, bias = matmul_weight(node, bias_add)
        source = node.inputs[slot.input]
        assert source is not None
        key = (id(source), node.op_type, float_attr(node, "alpha", 1.0), int_attr(node, "transB", 0),
               repr(slot.spec), slot.channel_axes)  # fmt: skip
        if key not in self.cache:
            cw = quantize_channels(weight, slot.spec, slot.channel_axes)
            hint = source.name or "weight"
            self.cache[key] = (
                new_initializer(graph, cw.values, names, f"{hint}_quantized"),
                new_initializer(graph, cw.scale.astype(np.float32), names, f"{hint}_scale"),
                new_initializer(graph, compact_zero_point(cw), names, f"{hint}_zero_point"),
            )
        bias_value = None
        if bias is not None:
            bias_value = new_initializer(graph, bias, names, f"{node.name or 'matmul'}_bias")
        return (*self.cache[key], bias_value)


def _fused_op(fmt: DynamicFormat, slot: WeightSlot) -> tuple[str, str, int] | None:
    """``(domain, op type, opset)`` of the one op computing the matmul in ``fmt``, or None for
    the ``qdq`` form (format qdq, or an onnxq weight its op does not take)."""
    if fmt is DynamicFormat.ONNXRUNTIME:
        return MS_DOMAIN, "DynamicQuantizeMatMul", 1
    if fmt is DynamicFormat.ONNXQ and onnxq_matmul_refusal(slot.spec) is None:
        return DOMAIN, "DynamicMatMul", OPSET
    return None


def _value(names: NameAuthority, hint: str, dtype: ir.DataType, shape: ir.Shape | None = None) -> ir.Value:
    """A new value; typed only with a known shape (the file's value_info needs both)."""
    return ir.Value(name=names.value(hint), type=None if shape is None else ir.TensorType(dtype), shape=shape)


def _dynamic_quantize(
    graph: ir.Graph, names: NameAuthority, x: ir.Value
) -> tuple[ir.Value, ir.Value, ir.Value]:
    hint = x.name or "x"
    outs = [
        _value(names, f"{hint}_quantized", ir.DataType.UINT8, x.shape),
        _value(names, f"{hint}_scale", ir.DataType.FLOAT, ir.Shape([])),
        _value(names, f"{hint}_zero_point", ir.DataType.UINT8, ir.Shape([])),
    ]
    graph.append(
        ir.Node("", "DynamicQuantizeLinear", [x], outputs=outs, name=names.node(f"{hint}_DynamicQuantize"))
    )
    return outs[0], outs[1], outs[2]


def _integer_matmul(
    graph: ir.Graph,
    names: NameAuthority,
    hint: str,
    x: tuple[ir.Value, ir.Value, ir.Value],
    w_q: ir.Value,
    w_scale: ir.Value,
    w_zp: ir.Value,
    bias: ir.Value | None,
) -> ir.Value:
    """MatMulInteger -> Cast -> Mul by ``s_x * s_w`` [-> Add bias]; returns the float result."""
    x_q, x_scale, x_zp = x
    acc = _value(names, f"{hint}_int32", ir.DataType.INT32)
    as_float = _value(names, f"{hint}_int32_float", ir.DataType.FLOAT)
    scale = _value(names, f"{hint}_output_scale", ir.DataType.FLOAT)
    y = _value(names, f"{hint}_scaled", ir.DataType.FLOAT)
    nodes = [
        ir.Node("", "MatMulInteger", [x_q, w_q, x_zp, w_zp], outputs=[acc],
                name=names.node(f"{hint}_MatMulInteger")),
        ir.Node("", "Cast", [acc], [ir.AttrInt64("to", ir.DataType.FLOAT)], outputs=[as_float],
                name=names.node(f"{hint}_Cast")),
        ir.Node("", "Mul", [x_scale, w_scale], outputs=[scale], name=names.node(f"{hint}_scale_Mul")),
        ir.Node("", "Mul", [as_float, scale], outputs=[y], name=names.node(f"{hint}_Mul")),
    ]  # fmt: skip
    if bias is not None:
        out = _value(names, f"{hint}_biased", ir.DataType.FLOAT)
        nodes.append(ir.Node("", "Add", [y, bias], outputs=[out], name=names.node(f"{hint}_bias_Add")))
        y = out
    graph.extend(nodes)
    return y


__all__ = ["MS_DOMAIN", "DynamicMatMul", "compact_zero_point", "matmul_weight"]
