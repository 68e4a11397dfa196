"""MatMul / Gemm with a 4-bit constant weight -> ``com.microsoft.MatMulNBits`` (onnxruntime's contrib op)
or, in the ``onnxq`` format, ``ai.onnxq.DynamicMatMulNBits`` (onnxq's int4 kernel).

For the weight-only plan's ``matmul_nbits`` nodes, the node's matmul ``y = x W + b`` (``W [K,
N]``; a Gemm's through :func:`onnxq.weights.dynamic.gemm_as_matmul`: ``transB`` undone,
``alpha`` folded into ``W``, ``beta * C`` the bias) becomes::

    MatMulNBits(x, B, scales[, zero_points]; K, N, bits=4, block_size) [-> Add(., b)]

where ``W^T [N, K]`` is rounded by the weight method per block of ``block_size`` along K and laid
out by :func:`onnxq.weights.weight_only.matmul_nbits_layout`: MatMulNBits dequantizes the same
integers with the same scales as the qdq form's ``DequantizeLinear``, so the two agree to float
rounding (their sums run in another order). A weight read by several nodes is stored once.

The ``onnxq`` format writes ``DynamicMatMulNBits(x, B, scales, zero_points?, b?; K, N, bits=4,
block_size)`` with the same weight inputs and attributes, the bias an input of the op (one fp32
add, as the Add); it quantizes ``x`` to int8 per row at run time (docs/custom_ops.md).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, float_attr, int_attr, new_initializer, remove_node, replace_all_uses
from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.passes.dynamic_matmul import MS_DOMAIN, matmul_weight
from onnxq.passes.planned_rewrite import PlannedRewrite
from onnxq.planning.weight_only import WeightOnlyAction, WeightOnlyDecision, WeightOnlyFormat
from onnxq.scheme import PerBlock
from onnxq.weights.weight_only import NBitsWeight, matmul_nbits_layout, quantize_weight_only


class MatMulNBits(PlannedRewrite):
    """Rewrite the plan's ``matmul_nbits`` nodes (see the module docstring)."""

    name = "matmul_nbits"
    action = WeightOnlyAction.MATMUL_NBITS

    def rewrite(
        self, model: ir.Model, names: NameAuthority, node: ir.Node, decision: WeightOnlyDecision
    ) -> int:
        graph = model.graph
        weight, bias = matmul_weight(node)
        source = node.inputs[1]
        assert source is not None and decision.spec is not None and decision.granularity is not None
        key = (id(source), node.op_type, float_attr(node, "alpha", 1.0), int_attr(node, "transB", 0))
        if key not in self.cache:
            block = PerBlock(1, decision.granularity.block_size)  # type: ignore[union-attr]
            hessian = self.hessians.get(decision.name)
            q = quantize_weight_only(weight.T, decision.spec, block, self.method, node=decision.name,
                                     op_type=node.op_type, hessian=hessian,
                                     mse_scales=self.mse_scales)  # fmt: skip
            self.cache[key] = self._stored(graph, names, source.name or "weight", matmul_nbits_layout(q))
        inputs, nbits = self.cache[key]
        hint = node.name or node.op_type
        result = node.outputs[0]
        y = ir.Value(name=names.value(f"{hint}_out"))
        attrs = [ir.AttrInt64("K", nbits.k), ir.AttrInt64("N", int(weight.shape[1])), ir.AttrInt64("bits", 4),
                 ir.AttrInt64("block_size", nbits.block_size)]  # fmt: skip
        b = None if bias is None else new_initializer(graph, bias, names, f"{hint}_bias")
        if self.plan.format is WeightOnlyFormat.ONNXQ:
            model.opset_imports.setdefault(DOMAIN, OPSET)
            args = [node.inputs[0], *inputs[:2], inputs[2] if len(inputs) > 2 else None, b]
            while args[-1] is None:
                args.pop()
            graph.append(ir.Node(DOMAIN, "DynamicMatMulNBits", args, attrs, outputs=[y],
                                 name=names.node(f"{hint}_DynamicMatMulNBits")))  # fmt: skip
        else:
            model.opset_imports.setdefault(MS_DOMAIN, 1)
            graph.append(ir.Node(MS_DOMAIN, "MatMulNBits", [node.inputs[0], *inputs], attrs, outputs=[y],
                                 name=names.node(f"{hint}_MatMulNBits")))  # fmt: skip
            if b is not None:
                biased = ir.Value(name=names.value(f"{hint}_biased"))
                add = ir.Node("", "Add", [y, b], outputs=[biased], name=names.node(f"{hint}_bias_Add"))
                graph.append(add)
                y = biased
        y.type, y.shape = result.type, result.shape  # the same tensor
        replace_all_uses(result, y, names)
        remove_node(node)
        return 1

    @staticmethod
    def _stored(
        graph: ir.Graph, names: NameAuthority, hint: str, nbits: NBitsWeight
    ) -> tuple[list[ir.Value], NBitsWeight]:
        inputs = [
            new_initializer(graph, nbits.packed, names, f"{hint}_nbits"),
            new_initializer(graph, nbits.scales.astype(np.float32), names, f"{hint}_scales"),
        ]
        if nbits.zero_points is not None:
            inputs.append(new_initializer(graph, nbits.zero_points, names, f"{hint}_zero_points"))
        return inputs, nbits


__all__ = ["MatMulNBits"]
