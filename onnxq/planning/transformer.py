"""Whether a model is a transformer: attention, found by its shape in the graph.

An attention block computes ``softmax(Q K^T / sqrt(d) + mask) V``: a ``Softmax`` whose input comes,
through the scaling and masking ops (``Div``, ``Mul``, ``Add``, ``Sub``, ``Where``, ``Cast``), from
a ``MatMul`` of two tensors that are both computed at run time. Static int8 quantization of such a
model loses most of its signal (the scores, the probabilities and the residual stream around
``LayerNormalization`` carry outliers a per-tensor scale cannot hold): dynamic quantization is
the mode for it. :func:`attention_softmaxes` finds the blocks; the API keeps their activations in
float by default and says why.
"""

from __future__ import annotations

import onnx_ir as ir

from onnxq.graph import constant_array, is_op, iter_graphs

_BETWEEN = ("Div", "Mul", "Add", "Sub", "Where", "Cast", "Reshape", "Transpose")
_MAX_STEPS = 6


def _score_matmul(value: ir.Value | None, steps: int = 0) -> bool:
    node = None if value is None else value.producer()
    if node is None or steps > _MAX_STEPS:
        return False
    if is_op(node, "MatMul"):
        return all(v is not None and constant_array(v) is None for v in node.inputs[:2])
    if is_op(node, *_BETWEEN):
        return any(
            _score_matmul(v, steps + 1) for v in node.inputs if v is not None and constant_array(v) is None
        )
    return False


def attention_softmaxes(graph: ir.Graph) -> list[ir.Node]:
    """The ``Softmax`` nodes of attention blocks in ``graph`` and its subgraphs."""
    return [n for g in iter_graphs(graph) for n in g if is_op(n, "Softmax") and _score_matmul(n.inputs[0])]


__all__ = ["attention_softmaxes"]
