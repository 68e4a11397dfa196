"""LSTM / GRU / RNN -> ``ai.onnxq.DynamicLSTM`` / ``DynamicGRU`` / ``DynamicRNN`` (the ``onnxq`` format).

The custom ops take the standard op's inputs with W and R stored as symmetric int8 in ONNX's own
layout, each followed by its scales (one per direction and gate row, ``[D, G * hidden]``, or one
per tensor) and zero points (all 0)::

    Dynamic{op}(X, W_q, W_scale, W_zero_point, R_q, R_scale, R_zero_point,
                B?, sequence_lens?, initial_h?, initial_c? (LSTM)) -> Y, Y_h (, Y_c)

with the attributes ``direction``, ``hidden_size``, ``layout`` (and GRU's ``linear_before_reset``)
always written. Every output is written (an output the node lacked gets a fresh name that nothing
reads). The arithmetic is in docs/custom_ops.md; what the kernels cannot compute stays weight-only
(:func:`onnxq.planning.dynamic.onnxq_rnn_refusal`).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.graph import (
    NameAuthority,
    constant_array,
    int_attr,
    new_initializer,
    remove_node,
    replace_all_uses,
)
from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.passes.planned_rewrite import PlannedRewrite
from onnxq.planning.dynamic import DynamicAction, DynamicDecision
from onnxq.weights.dynamic import quantize_channels

#: Outputs of each op type.
OUTPUTS = {"LSTM": ("Y", "Y_h", "Y_c"), "GRU": ("Y", "Y_h"), "RNN": ("Y", "Y_h")}


class DynamicRecurrent(PlannedRewrite):
    """Rewrite the plan's ``dynamic_rnn`` nodes into onnxq's recurrent custom ops."""

    name = "dynamic_rnn"
    action = DynamicAction.RNN

    def rewrite(self, model: ir.Model, names: NameAuthority, node: ir.Node, decision: DynamicDecision) -> int:
        graph, op = model.graph, node.op_type
        weights: list[ir.Value] = []
        hidden = 0
        for slot in decision.weights:  # W, then R
            source = node.inputs[slot.input]
            array = constant_array(source)
            assert source is not None and array is not None
            q = quantize_channels(array, slot.spec, slot.channel_axes)
            hidden = array.shape[-1]  # R [D, G * hidden, hidden] comes last
            hint = source.name or "weight"
            weights.append(new_initializer(graph, q.values.astype(np.int8), names, f"{hint}_quantized"))
            weights.append(
                new_initializer(graph, q.scale.astype(np.float32).reshape(-1), names, f"{hint}_scale")
            )
            weights.append(
                new_initializer(graph, q.zero_point.astype(np.int8).reshape(-1), names, f"{hint}_zero_point")
            )
        extra = [*node.inputs[3:], *([None] * 5)][: 4 if op == "LSTM" else 3]  # B, sequence_lens, states
        while extra and extra[-1] is None:
            extra.pop()
        direction = node.attributes.get("direction")
        attrs = [
            ir.AttrString("direction", "forward" if direction is None else direction.as_string()),
            ir.AttrInt64("hidden_size", int(hidden)),
            ir.AttrInt64("layout", int_attr(node, "layout", 0)),
        ]
        if op == "GRU":
            attrs.append(ir.AttrInt64("linear_before_reset", int_attr(node, "linear_before_reset", 0)))
        olds = [*node.outputs, *([None] * 3)][: len(OUTPUTS[op])]
        outputs = [
            ir.Value(name=names.value(f"{(old.name if old is not None else '') or op}_{kind}_dynamic"),
                     type=None if old is None else old.type, shape=None if old is None else old.shape)
            for old, kind in zip(olds, OUTPUTS[op], strict=True)
        ]  # fmt: skip
        hint = node.name or op
        graph.append(
            ir.Node(DOMAIN, f"Dynamic{op}", [node.inputs[0], *weights, *extra], attrs, outputs=outputs,
                    version=OPSET, name=names.node(f"{hint}_Dynamic{op}"))
        )  # fmt: skip
        model.opset_imports.setdefault(DOMAIN, OPSET)
        for old, new in zip(olds, outputs, strict=True):
            if old is not None and old.name:
                replace_all_uses(old, new, names)
        remove_node(node)
        return 1


__all__ = ["DynamicRecurrent"]
