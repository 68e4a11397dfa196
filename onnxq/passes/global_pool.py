"""Spatial ReduceMean → GlobalAveragePool, so the pooling is quantized instead of left float.

The dynamo exporter writes ``nn.AdaptiveAvgPool2d(1)`` and ``x.mean((2, 3), keepdim=...)`` as
``ReduceMean`` over the spatial axes; the TorchScript exporter writes ``GlobalAveragePool``. Both
compute, for ``x`` of rank ``r >= 3``::

    GlobalAveragePool(x)[n, c, 1, ..., 1] = mean_{i_2..i_{r-1}} x[n, c, i_2, ..., i_{r-1}]
                                          = ReduceMean(x, axes=[2, ..., r-1], keepdims=1)

so a ReduceMean whose axes are exactly ``{2, ..., r-1}`` (negative axes normalised by ``r``) is
replaced by ``GlobalAveragePool``; with ``keepdims=0`` a ``Squeeze(axes=[2, ..., r-1])`` follows
(a pass-through op for quantization). Only the summation order may differ (float rounding).
The rank must be known from shape inference; axes must be constant (attribute before opset 18,
input from 18).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, constant_array, is_op, new_initializer, remove_node, replace_all_uses
from onnxq.passes.base import GraphPass, PassResult

logger = logging.getLogger(__name__)


def spatial_axes(axes: list[int] | np.ndarray, rank: int) -> bool:
    """True when ``axes`` (possibly negative) are exactly the spatial axes ``2 .. rank-1``."""
    if rank < 3:
        return False
    norm = sorted(int(a) + rank if int(a) < 0 else int(a) for a in np.asarray(axes).reshape(-1))
    return norm == list(range(2, rank))


def _reduce_axes(node: ir.Node) -> list[int] | None:
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = constant_array(node.inputs[1])
        return None if arr is None else [int(a) for a in arr.reshape(-1)]
    attr = node.attributes.get("axes")
    return None if attr is None else [int(a) for a in attr.as_ints()]


class ReduceMeanToGlobalPool(GraphPass):
    """Rewrite every spatial ReduceMean of the main graph into GlobalAveragePool."""

    name = "reduce_mean_to_global_pool"

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        names = NameAuthority(graph)
        count = 0
        for node in [n for n in graph if is_op(n, "ReduceMean")]:
            x = node.inputs[0]
            rank = None if x is None or x.shape is None else len(x.shape)
            axes = _reduce_axes(node)
            if rank is None or axes is None or not spatial_axes(axes, rank):
                continue
            pooled = ir.Value(name=names.value(f"{node.name}_gap"))
            gap = ir.Node("", "GlobalAveragePool", [x], outputs=[pooled], name=names.node(node.name))
            graph.insert_before(node, gap)
            result = pooled
            if node.attributes.get_int("keepdims", 1) == 0:
                sq_axes = new_initializer(
                    graph, np.arange(2, rank, dtype=np.int64), names, f"{node.name}_axes"
                )
                squeezed = ir.Value(name=names.value(f"{node.name}_squeezed"))
                squeeze = ir.Node(
                    "",
                    "Squeeze",
                    [pooled, sq_axes],
                    outputs=[squeezed],
                    name=names.node(f"{node.name}_squeeze"),
                )
                graph.insert_before(node, squeeze)
                result = squeezed
            out = node.outputs[0]
            result.shape, result.type = out.shape, out.type
            replace_all_uses(out, result, names)
            remove_node(node)
            count += 1
        if count:
            logger.info("%s: rewrote %d ReduceMean node(s)", self.name, count)
        return PassResult(model, count)


__all__ = ["ReduceMeanToGlobalPool", "spatial_axes"]
