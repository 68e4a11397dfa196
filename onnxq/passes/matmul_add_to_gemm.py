"""Rewrite ``MatMul(x, W) + b`` into ``Gemm(x, W, b)`` where that is legal.

``Gemm(x, W, b) = x @ W + b`` exactly when ``x`` is known to be 2-D, ``W`` is a constant 2-D
matrix and ``b`` a constant of shape ``[N]`` or ``[1, N]``. onnxruntime fuses a quantized Gemm
(with its bias and a following activation) into one integer kernel but not MatMul + Add, so the
pair is rewritten before planning. The pairs considered are the bias Adds of the MatMul fusion
groups (:func:`onnxq.planning.fusion.find_fusion_groups`); a pair that cannot be rewritten is kept
and reported with the reason. The Gemm keeps the MatMul's name, which qconfigs may refer to.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, constant_array, remove_node, replace_all_uses
from onnxq.passes.base import GraphPass, PassResult
from onnxq.planning.fusion import bias_of, find_fusion_groups

logger = logging.getLogger(__name__)


def _rank(value: ir.Value) -> int | None:
    if value.shape is not None:
        return len(value.shape)
    array = constant_array(value)
    return None if array is None else array.ndim


class MatMulAddToGemm(GraphPass):
    """Rewrite legal ``MatMul + Add(bias)`` pairs into ``Gemm`` (see the module docstring)."""

    name = "matmul_add_to_gemm"

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        names = NameAuthority(graph)
        notes: list[str] = []
        count = 0
        for group in find_fusion_groups(graph):
            add = group.bias_add
            if add is None:
                continue
            reason = self._refusal(group.anchor, add)
            if reason is not None:
                notes.append(f"MatMul '{group.anchor.name}' + Add '{add.name}' kept (not Gemm): {reason}")
                continue
            self._rewrite(graph, group.anchor, add, names)
            count += 1
        if count:
            logger.info("matmul_add_to_gemm: %d MatMul+Add rewritten to Gemm", count)
        return PassResult(model, count, tuple(notes))

    @staticmethod
    def _refusal(matmul: ir.Node, add: ir.Node) -> str | None:
        x, w = matmul.inputs[0], matmul.inputs[1]
        if x is None or w is None:
            return "missing input"
        if _rank(x) != 2:
            return f"input '{x.name}' is not known to be 2-D (rank {_rank(x)})"
        weight = constant_array(w)
        if weight is None or weight.ndim != 2:
            return f"weight '{w.name}' is not a constant 2-D matrix"
        bias_value = bias_of(add, matmul.outputs[0])
        bias = constant_array(bias_value)
        if bias is None or bias.ndim > 2 or bias.shape[-1] != weight.shape[1]:
            return f"bias is not a constant of shape [{weight.shape[1]}] or [1, {weight.shape[1]}]"
        if not np.issubdtype(weight.dtype, np.floating) or bias.dtype != weight.dtype:
            return f"weight/bias dtypes {weight.dtype}/{bias.dtype} are not one float type"
        return None

    @staticmethod
    def _rewrite(graph: ir.Graph, matmul: ir.Node, add: ir.Node, names: NameAuthority) -> None:
        x, w = matmul.inputs[0], matmul.inputs[1]
        bias = bias_of(add, matmul.outputs[0])
        old_out = add.outputs[0]
        out = ir.Value(name=names.value(f"{old_out.name}_gemm"), shape=old_out.shape, type=old_out.type)
        gemm = ir.Node(
            "",
            "Gemm",
            [x, w, bias],
            outputs=[out],
            name=matmul.name or names.node("Gemm"),  # keep the name: qconfigs may refer to it
        )
        graph.insert_before(add, gemm)
        replace_all_uses(old_out, out, names)
        remove_node(add)
        remove_node(matmul)


__all__ = ["MatMulAddToGemm"]
