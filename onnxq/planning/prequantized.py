"""Models that are already quantized: what in them is quantized, so it is refused or left alone.

A node is part of the input model's quantization when it is a quantization op (QuantizeLinear,
DequantizeLinear, DynamicQuantizeLinear), an integer op (QLinearConv, ConvInteger, MatMulInteger,
the ``com.microsoft`` QGemm / QLinear* / DynamicQuantize* / MatMulNBits / QAttention ...), or a
float op computing between them: every input it reads (but integer constants: shapes, axes) comes
from a DequantizeLinear, or its outputs go to QuantizeLinear nodes only. Quantizing such a node
again would put Q/DQ on Q/DQ. A float op that reads a DequantizeLinear output beside float
tensors, and does not feed a QuantizeLinear, is float and may be quantized.

:func:`quantized_nodes` finds them; ``prepare`` refuses a model that has any (naming the ops)
unless asked to quantize only what is still float, and the plan then leaves them as they are.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx_ir as ir

from onnxq.graph import constant_array, is_onnx_domain, iter_graphs

#: Default-domain ops that only a quantized model holds.
QUANTIZATION_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
INTEGER_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})
#: onnxruntime's contrib integer ops (``com.microsoft``).
CONTRIB_INTEGER_OPS = frozenset({
    "QGemm", "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearSoftmax", "QLinearConv",
    "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "MatMulIntegerToFloat", "MatMulNBits", "QAttention",
    "QOrderedMatMul", "GatherBlockQuantized",
})  # fmt: skip


#: The domain of onnxq's custom ops (onnxq.kernels.custom_ops.DOMAIN; not imported here, so that
#: planning does not load the native module).
ONNXQ_DOMAIN = "ai.onnxq"


def is_quantization_node(node: ir.Node) -> bool:
    """A quantization or integer op, in the default domain, onnxruntime's or onnxq's own."""
    if is_onnx_domain(node.domain):
        return node.op_type in QUANTIZATION_OPS or node.op_type in INTEGER_OPS
    if node.domain == ONNXQ_DOMAIN:  # every op of onnxq's kernels works on integers
        return True
    return node.domain == "com.microsoft" and node.op_type in CONTRIB_INTEGER_OPS


def quantized_nodes(graph: ir.Graph) -> frozenset[int]:
    """The ids of the nodes of ``graph`` and its subgraphs that are part of its quantization."""
    found: set[int] = set()
    for g in iter_graphs(graph):
        for node in g:
            if is_quantization_node(node) or _between_quantization(node):
                found.add(id(node))
    return frozenset(found)


def _from_dequantize(value: ir.Value | None) -> bool:
    producer = None if value is None else value.producer()
    return producer is not None and is_onnx_domain(producer.domain) and producer.op_type == "DequantizeLinear"


def _between_quantization(node: ir.Node) -> bool:
    inputs = [v for v in node.inputs if v is not None and not _integer_constant(v)]
    reads_only_dq = bool(inputs) and all(_from_dequantize(v) for v in inputs)
    users = [use.node for out in node.outputs for use in out.uses()]
    feeds_q = bool(users) and all(is_onnx_domain(u.domain) and u.op_type == "QuantizeLinear" for u in users)
    return reads_only_dq or feeds_q


def _integer_constant(value: ir.Value) -> bool:
    array = constant_array(value)
    return array is not None and not np.issubdtype(array.dtype, np.floating)


def describe(graph: ir.Graph) -> str:
    """The quantization ops of ``graph`` as "3 QuantizeLinear, 3 DequantizeLinear" (most first)."""
    counts = Counter(node.op_type for g in iter_graphs(graph) for node in g if is_quantization_node(node))
    return ", ".join(f"{n} {op}" for op, n in counts.most_common())


__all__ = [
    "CONTRIB_INTEGER_OPS",
    "INTEGER_OPS",
    "QUANTIZATION_OPS",
    "describe",
    "is_quantization_node",
    "quantized_nodes",
]
