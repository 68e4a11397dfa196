"""LSTM -> onnxruntime's ``com.microsoft.DynamicQuantizeLSTM`` (the ``onnxruntime`` format).

The contrib op computes the standard LSTM (same gates ``i, o, f, c``, biases, peepholes, initial
states, ``sequence_lens``, ``direction``, activations, ``clip``, ``input_forget``) with both
matmuls of every step, ``X_t W^T`` and ``H_{t-1} R^T``, on activations quantized at run time (uint8)
and 8-bit weights. Its weights are laid out transposed::

    W_q [directions, inputs, 4 * hidden] = transpose(quantize(W [directions, 4 * hidden, inputs]))
    R_q [directions, hidden, 4 * hidden] = transpose(quantize(R [directions, 4 * hidden, hidden]))

with scales and zero points ``[directions, 4 * hidden]`` per channel (one per direction and gate
row: :func:`onnxq.weights.dynamic.quantize_channels` on axes ``(0, 1)``) or ``[directions]`` per
tensor (the one scale repeated). The op has no ``layout`` attribute: the plan keeps an LSTM with
``layout=1`` weight-only.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, constant_array, new_initializer, remove_node, replace_all_uses
from onnxq.passes.dynamic_matmul import MS_DOMAIN
from onnxq.passes.planned_rewrite import PlannedRewrite
from onnxq.planning.dynamic import DynamicAction, DynamicDecision
from onnxq.weights.dynamic import ChannelWeight, quantize_channels

logger = logging.getLogger(__name__)

#: The standard LSTM's inputs, which DynamicQuantizeLSTM takes first, in the same order.
LSTM_INPUTS = 8


def contrib_lstm_weight(weight: ChannelWeight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W_q transposed to [D, K, 4H], scale, zero point)`` as DynamicQuantizeLSTM takes them."""
    directions = weight.values.shape[0]
    values = np.ascontiguousarray(np.transpose(weight.values, (0, 2, 1)))
    if weight.channel_axes:
        return values, weight.scale.astype(np.float32), weight.zero_point
    scale = np.full(directions, weight.scale, np.float32)
    return values, scale, np.full(directions, weight.zero_point, weight.zero_point.dtype)


class DynamicLSTM(PlannedRewrite):
    """Rewrite the plan's ``dynamic_lstm`` nodes into DynamicQuantizeLSTM."""

    name = "dynamic_lstm"
    action = DynamicAction.LSTM

    def rewrite(self, model: ir.Model, names: NameAuthority, node: ir.Node, decision: DynamicDecision) -> int:
        graph = model.graph
        extra: list[ir.Value] = []
        for slot in decision.weights:  # W, then R
            source = node.inputs[slot.input]
            array = constant_array(source)
            assert source is not None and array is not None
            values, scale, zp = contrib_lstm_weight(quantize_channels(array, slot.spec, slot.channel_axes))
            hint = source.name or "weight"
            extra.append(new_initializer(graph, values, names, f"{hint}_quantized"))
            extra.append(new_initializer(graph, scale, names, f"{hint}_scale"))
            extra.append(new_initializer(graph, zp, names, f"{hint}_zero_point"))
        w_q, w_scale, w_zp, r_q, r_scale, r_zp = extra
        inputs: list[ir.Value | None] = [*node.inputs, *([None] * (LSTM_INPUTS - len(node.inputs)))]
        inputs[1], inputs[2] = w_q, r_q
        attrs = [a for name, a in node.attributes.items() if name != "layout"]
        outputs = [
            ir.Value(name=names.value(f"{v.name or 'lstm'}_dynamic"), type=v.type, shape=v.shape)
            for v in node.outputs
        ]
        hint = node.name or "LSTM"
        graph.append(
            ir.Node(MS_DOMAIN, "DynamicQuantizeLSTM", [*inputs, w_scale, w_zp, r_scale, r_zp], attrs,
                    outputs=outputs, name=names.node(f"{hint}_DynamicQuantizeLSTM"))
        )  # fmt: skip
        model.opset_imports.setdefault(MS_DOMAIN, 1)
        for old, new in zip(node.outputs, outputs, strict=True):
            replace_all_uses(old, new, names)
        remove_node(node)
        return 1


__all__ = ["DynamicLSTM", "contrib_lstm_weight"]
