"""Weight-only storage: a planned weight becomes integers behind a ``DequantizeLinear``.

For the plan's ``weight_only`` nodes (LSTM / GRU / RNN, Conv, ConvTranspose, Gather, and MatMul /
Gemm under a weight-only qconfig) each weight input ``W`` is replaced by::

    W_q (int8 initializer) -> DequantizeLinear(s_w, z_w, axis) -> W' = (W_q - z_w) * s_w

with ``W_q``, ``s_w``, ``z_w`` from :func:`onnxq.weights.dynamic.quantize_channels`; the op itself
runs in float on ``W'``, so it computes exactly what the fp32 op computes on the rounded weight.
A file holds one byte per weight instead of four. ``DequantizeLinear`` takes one channel axis: a
weight whose channels span two axes (a bidirectional recurrent weight, ``[2, gates * hidden,
inputs]``, per direction and gate row) is stored with those axes merged and reshaped back after
the DequantizeLinear; with one direction the channel axis is axis 1 as it is. A weight read by
several nodes is stored once.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, constant_array, new_initializer
from onnxq.passes.planned_rewrite import PlannedRewrite
from onnxq.planning.dynamic import DynamicAction, DynamicDecision, WeightSlot
from onnxq.weights.dynamic import ChannelWeight, quantize_channels

logger = logging.getLogger(__name__)


def dequantize_layout(weight: ChannelWeight) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """``(stored integers, scale, zero point, axis)`` for one ``DequantizeLinear`` whose output,
    reshaped to the weight's shape, is the dequantized weight (one channel axis at most)."""
    axes = weight.channel_axes
    values, scale, zp = weight.values, weight.scale, weight.zero_point
    if not axes:
        return values, scale, zp, None
    kept = [a for a, n in zip(axes, scale.shape, strict=True) if n > 1] or [axes[-1]]
    if len(kept) == 1:
        return values, scale.reshape(-1), zp.reshape(-1), kept[0]
    first, last = axes[0], axes[-1]
    merged = values.reshape(*values.shape[:first], -1, *values.shape[last + 1 :])
    return merged, scale.reshape(-1), zp.reshape(-1), first


class DequantizeWeights(PlannedRewrite):
    """Store the plan's ``weight_only`` weights as integers behind DequantizeLinear."""

    name = "dequantize_weights"
    action = DynamicAction.WEIGHT_ONLY

    def rewrite(self, model: ir.Model, names: NameAuthority, node: ir.Node, decision: DynamicDecision) -> int:
        """Store each weight of ``node`` (once per weight and spec); returns how many were new."""
        stored = 0
        for slot in decision.weights:
            source = node.inputs[slot.input]
            assert source is not None
            key = (id(source), repr(slot.spec), slot.channel_axes)
            if key not in self.cache:
                self.cache[key] = self._dequantized(model.graph, names, source, slot)
                stored += 1
            node.replace_input_with(slot.input, self.cache[key])
        return stored

    @staticmethod
    def _dequantized(graph: ir.Graph, names: NameAuthority, source: ir.Value, slot: WeightSlot) -> ir.Value:
        array = constant_array(source)
        assert array is not None
        values, scale, zp, axis = dequantize_layout(quantize_channels(array, slot.spec, slot.channel_axes))
        return dequantized_initializer(graph, names, source.name or "weight", values, scale, zp,
                                       array.shape, axis=axis)  # fmt: skip


def dequantized_initializer(
    graph: ir.Graph,
    names: NameAuthority,
    hint: str,
    values: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray | None,
    shape: tuple[int, ...],
    *,
    axis: int | None = None,
    block_size: int | None = None,
) -> ir.Value:
    """``values`` (and ``scale``, ``zero_point``: None leaves it out, 0) stored as initializers
    behind a new ``DequantizeLinear`` (``axis``, ``block_size`` when given), reshaped to ``shape``
    when the stored integers have another; returns the float value."""
    inputs = [
        new_initializer(graph, values, names, f"{hint}_quantized"),
        new_initializer(graph, np.asarray(scale, np.float32), names, f"{hint}_scale"),
    ]
    if zero_point is not None:
        inputs.append(new_initializer(graph, zero_point, names, f"{hint}_zero_point"))
    out = ir.Value(name=names.value(f"{hint}_dequantized"), type=ir.TensorType(ir.DataType.FLOAT),
                   shape=ir.Shape(values.shape))  # fmt: skip
    attrs = [] if axis is None else [ir.AttrInt64("axis", axis)]
    if block_size is not None:
        attrs.append(ir.AttrInt64("block_size", block_size))
    graph.append(ir.Node("", "DequantizeLinear", inputs, attrs, outputs=[out], name=names.node(f"{hint}_DQ")))
    if tuple(values.shape) == tuple(shape):
        return out
    target = new_initializer(graph, np.asarray(shape, np.int64), names, f"{hint}_shape")
    reshaped = ir.Value(name=names.value(f"{hint}_dequantized"), type=ir.TensorType(ir.DataType.FLOAT),
                        shape=ir.Shape(shape))  # fmt: skip
    reshape = ir.Node("", "Reshape", [out, target], outputs=[reshaped], name=names.node(f"{hint}_Reshape"))
    graph.append(reshape)
    return reshaped


__all__ = ["DequantizeWeights", "dequantize_layout", "dequantized_initializer"]
