"""MaxPool and GlobalAveragePool → ``ai.onnxq.MaxPool`` / ``ai.onnxq.QLinearGlobalAveragePool`` (NHWC).

MaxPool commutes with a monotone quantisation, so with the same qparams on both sides::

    DQ(xq, s, z) → MaxPool → Q(s, z)   ==   MaxPool(xq)          (on the uint8 bytes)

and a MaxPool that reads a uint8 tensor one of our ops made (QOperator models pool the integers
directly) is lowered the same way. The global average pool requantises the mean::

    DQ(xq, xs, xz) → GlobalAveragePool → Q(ys, yz)
        acc = Σ_hw x[n, h, w, c] - H·W·xz  (int32),   m = xs / (ys · H·W)  (fp32)
        y[n, c] = round_half_even(clamp(acc · m, -yz, 255 - yz)) + yz

as onnxruntime's com.microsoft ``QLinearGlobalAveragePool`` computes it (``native/include/onnxq/
pool.h``); the QOperator op itself is lowered too when it is channels-first.
"""

from __future__ import annotations

import onnx_ir as ir

from onnxq.passes.lowering.common import (
    Act,
    Lowering,
    State,
    between_qdq,
    ints,
    qparams,
    register,
    same_qparams_io,
)


def _pool_attributes(node: ir.Node) -> dict[str, int | list[int]] | str:
    if node.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return "auto_pad is not lowered (explicit pads only)"
    if node.attributes.get_int("storage_order", 0) != 0 or (len(node.outputs) > 1 and node.outputs[1].uses()):
        return "its indices output is used"
    kernel = ints(node, "kernel_shape", [])
    if len(kernel) != 2:
        return "it is not a 2-D pooling"
    return {
        "kernel_shape": kernel,
        "strides": ints(node, "strides", [1, 1]),
        "pads": ints(node, "pads", [0, 0, 0, 0]),
        "dilations": ints(node, "dilations", [1, 1]),
        "ceil_mode": node.attributes.get_int("ceil_mode", 0),
    }


@register("", "MaxPool")
def match_maxpool(node: ir.Node, state: State) -> Lowering | str:
    """DQ(x) -> MaxPool -> Q with the same qparams (QDQ), or a MaxPool on a uint8 tensor one of
    our ops made (QOperator): ``MaxPool`` (the maximum keeps the scale and zero point)."""
    attributes = _pool_attributes(node)
    if isinstance(attributes, str):
        return attributes
    io = same_qparams_io(node, state)
    if isinstance(io, str):
        return io
    x, y, y_q = io
    return Lowering(node, "MaxPool", (x,), attributes, y_q, y)


@register("", "GlobalAveragePool")
def match_global_pool(node: ir.Node, state: State) -> Lowering | str:
    """DQ(x) -> GlobalAveragePool -> Q: ``QLinearGlobalAveragePool`` (4-D inputs)."""
    x_value = node.inputs[0]
    if x_value is None or x_value.shape is None or len(x_value.shape) != 4:
        return "its input is not known to be 4-D"
    io = between_qdq(node)
    if isinstance(io, str):
        return io
    x, y, y_q = io
    inputs = (x, x.qp.scale, x.qp.zero_point, y.scale, y.zero_point)
    return Lowering(node, "QLinearGlobalAveragePool", inputs, {}, y_q, y)


@register("com.microsoft", "QLinearGlobalAveragePool", noted=True)
def match_qlinear_global_pool(node: ir.Node, state: State) -> Lowering | str:
    """com.microsoft QLinearGlobalAveragePool (QOperator format), channels first, 4-D."""
    if node.attributes.get_int("channels_last", 0) != 0:
        return "it is channels-last already"
    ins = list(node.inputs) + [None] * (5 - len(node.inputs))
    known = ins[0] is not None and ins[0].shape is not None and len(ins[0].shape) == 4
    if ins[0] is None or not (known or id(ins[0]) in state.twins):  # our ops' outputs are 4-D
        return "its input is not known to be 4-D"
    x = qparams(ins[1], ins[2], f"the input of '{node.name}'")
    y = qparams(ins[3], ins[4], f"the output of '{node.name}'")
    if isinstance(x, str) or isinstance(y, str):
        return x if isinstance(x, str) else y  # type: ignore[return-value]
    inputs = (Act(ins[0], x), x.scale, x.zero_point, y.scale, y.zero_point)
    return Lowering(node, "QLinearGlobalAveragePool", inputs, {}, node.outputs[0], y)
