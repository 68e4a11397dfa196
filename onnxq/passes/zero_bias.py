"""Give every Conv and Gemm without a bias a zero one (for bias correction).

``Conv(x, W) = Conv(x, W, 0)`` and ``Gemm(A, B) = Gemm(A, B, 0)`` (with any ``beta``): the model
computes the same. Bias correction (:mod:`onnxq.weights.bias_correction`) then has a bias to
correct in every layer, quantized to int32 like any other. The bias has one zero per output
channel: ``W.shape[0]`` for Conv, ``B``'s ``N`` for Gemm (axis 0 when ``transB``, else 1). Only
layers with a constant weight get one; the pass runs only when bias correction is asked for.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, constant_array, int_attr, is_op, new_initializer
from onnxq.passes.base import GraphPass, PassResult

logger = logging.getLogger(__name__)


def zero_bias_length(op_type: str, weight_shape: tuple[int, ...], trans_b: bool = False) -> int:
    """The number of output channels of a Conv or Gemm weight."""
    if op_type == "Gemm":
        return int(weight_shape[0 if trans_b else 1])
    return int(weight_shape[0])


class GiveZeroBias(GraphPass):
    """Add a zero bias to every Conv / Gemm that has none and a constant float weight."""

    name = "zero_bias"

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        names = NameAuthority(graph)
        count = 0
        for node in list(graph):
            if not is_op(node, "Conv", "Gemm") or (len(node.inputs) > 2 and node.inputs[2] is not None):
                continue
            w = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
            if w is None or w.dtype.kind != "f" or (node.op_type == "Gemm" and w.ndim != 2):
                continue
            n = zero_bias_length(node.op_type, w.shape, bool(int_attr(node, "transB", 0)))
            if len(node.inputs) < 3:
                node.resize_inputs(3)
            node.replace_input_with(
                2, new_initializer(graph, np.zeros(n, w.dtype), names, f"{node.name}_bias")
            )
            count += 1
        if count:
            logger.info("zero_bias: %d layer(s) given a zero bias", count)
        return PassResult(model, count)


__all__ = ["GiveZeroBias", "zero_bias_length"]
