"""Weight-only storage: a planned weight becomes int8 or 4-bit integers behind a ``DequantizeLinear``.

For the weight-only plan's ``weight_only`` nodes (:mod:`onnxq.planning.weight_only`) the weight
input ``W`` is replaced by::

    W_q (initializer) -> DequantizeLinear(s, z, axis[, block_size]) [-> Reshape] -> W' = (W_q - z) * s

with ``W_q``, ``s``, ``z`` from the weight method (:func:`onnxq.weights.weight_only.quantize_weight_only`):
int8 per output channel (``axis``), int4/uint4 per block along the reduction axis (``axis`` and
``block_size``, opset 21; the scale has ``ceil(K / block_size)`` entries there). A Conv's weight is
blocked along its input-channel x kernel axis: stored as ``[M, C/g * k...]`` and reshaped back
after the DequantizeLinear. The op itself runs in float on ``W'``. A zero point of all zeros is
left out (DequantizeLinear's default). A weight read by several nodes is stored once.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, constant_array
from onnxq.passes.dequantize_weights import dequantized_initializer
from onnxq.passes.planned_rewrite import PlannedRewrite
from onnxq.planning.weight_only import WeightOnlyAction, WeightOnlyDecision
from onnxq.scheme import PerBlock
from onnxq.weights.registry import QuantizedTensor
from onnxq.weights.weight_only import quantize_weight_only


def stored_zero_point(q: QuantizedTensor) -> np.ndarray | None:
    """The zero point to store: None when every one is 0 (DequantizeLinear's default)."""
    zp = np.asarray(q.qparams.zero_point)
    return None if bool(np.all(zp.astype(np.int32) == 0)) else zp


class DequantizeBlocks(PlannedRewrite):
    """Store the plan's ``weight_only`` weights as integers behind DequantizeLinear."""

    name = "dequantize_blocks"
    action = WeightOnlyAction.DEQUANTIZE

    def rewrite(
        self, model: ir.Model, names: NameAuthority, node: ir.Node, decision: WeightOnlyDecision
    ) -> int:
        source = node.inputs[decision.weight_input]
        assert source is not None
        key = (id(source), repr(decision.granularity), decision.flatten)
        stored = key not in self.cache
        if stored:
            array = constant_array(source)
            assert array is not None and decision.spec is not None and decision.granularity is not None
            q = quantize_weight_only(
                array, decision.spec, decision.granularity, self.method,
                flatten=decision.flatten, node=decision.name, op_type=node.op_type,
                hessian=self.hessians.get(decision.name), mse_scales=self.mse_scales,
            )  # fmt: skip
            g = decision.granularity
            self.cache[key] = dequantized_initializer(
                model.graph, names, source.name or "weight", q.values, q.qparams.scale, stored_zero_point(q),
                array.shape, axis=g.axis, block_size=g.block_size if isinstance(g, PerBlock) else None,
            )  # fmt: skip
        node.replace_input_with(decision.weight_input, self.cache[key])
        return int(stored)


__all__ = ["DequantizeBlocks", "stored_zero_point"]
