"""Resize with an ``axes`` attribute (opset 18+) → the same Resize with one scale or size per axis.

Opset 18 lets a Resize list the axes it resizes and give scales or sizes for those only. For an
input of rank ``r`` and constant ``axes = [a_0, ..., a_{k-1}]`` (negative ones normalised by
``r``) the full-rank form computes the same tensor::

    scales_full[a] = scales[i]  where a = a_i,   1          elsewhere
    sizes_full[a]  = sizes[i]   where a = a_i,   x.shape[a] elsewhere   (static dims only)

(an axis resized by 1, or to its own size, is an identity in every mode). Why rewrite what already
works: onnxruntime 1.32 fails at run time on a quantized model whose Resize has ``axes`` between
two QLinearConvs (its NHWC layout transformer gathers the short scales with four indices:
"indices element out of data bounds"), so onnxq's QDQ output of such a model would not run on
stock onnxruntime at its default optimisation level. The full-rank form runs everywhere.

Not rewritten: axes or scales/sizes that are not constants, an unknown rank, sizes where another
axis's dimension is not static, and sizes under a ``keep_aspect_ratio_policy`` other than
``stretch`` (the policy takes its scale over the listed axes only).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, constant_array, is_op, new_initializer
from onnxq.passes.base import GraphPass, PassResult

logger = logging.getLogger(__name__)


def full_rank(values: np.ndarray, axes: list[int], fill: list[int] | list[float]) -> np.ndarray:
    """``values`` given for ``axes`` spread over every axis, ``fill[a]`` on the others."""
    out = np.array(fill, dtype=values.dtype)
    out[axes] = values
    return out


class ExpandResizeAxes(GraphPass):
    """Rewrite every Resize of the main graph that has constant ``axes`` into its full-rank form."""

    name = "expand_resize_axes"

    def call(self, model: ir.Model) -> PassResult:
        names = NameAuthority(model.graph)
        count = 0
        notes: list[str] = []
        for node in [n for n in model.graph if is_op(n, "Resize") and "axes" in n.attributes]:
            why = self._rewrite(model.graph, node, names)
            if why is None:
                count += 1
            else:
                notes.append(f"Resize '{node.name}' keeps its axes attribute: {why}")
        logger.info("%s: %d Resize(s) given full-rank scales or sizes", self.name, count)
        return PassResult(model, count, tuple(notes))

    @staticmethod
    def _rewrite(graph: ir.Graph, node: ir.Node, names: NameAuthority) -> str | None:
        x = node.inputs[0]
        if x is None or x.shape is None:
            return "the rank of its input is unknown"
        rank = len(x.shape)
        axes = [int(a) % rank for a in node.attributes["axes"].as_ints()]
        if len(set(axes)) != len(axes):
            return "an axis is listed twice"
        inputs = list(node.inputs) + [None] * (4 - len(node.inputs))
        scales, sizes = constant_array(inputs[2]), constant_array(inputs[3])
        if inputs[3] is not None:
            if sizes is None:
                return "its sizes are not a constant"
            if node.attributes.get_string("keep_aspect_ratio_policy", "stretch") != "stretch":
                return "keep_aspect_ratio_policy is not stretch"
            dims = [d if isinstance(d, int) else None for d in x.shape]
            if any(dims[a] is None for a in range(rank) if a not in axes):
                return "a dimension it does not resize is not static"
            full = full_rank(sizes.reshape(-1), axes, [int(d or 0) for d in dims])
            node.replace_input_with(3, new_initializer(graph, full, names, f"{node.name}_sizes"))
        elif scales is None:
            return "its scales are not a constant"
        else:
            full = full_rank(scales.reshape(-1), axes, [1.0] * rank)
            node.replace_input_with(2, new_initializer(graph, full, names, f"{node.name}_scales"))
        del node.attributes["axes"]
        return None
