"""Add (+Relu) between Q/DQ, and com.microsoft ``QLinearAdd`` → ``ai.onnxq.QLinearAdd``.

The pattern::

    DQ(aq, as, az) + DQ(bq, bs, bz) [→ Relu] ─Q(ys, yz)→ yq

on two 4-D tensors of one shape (no broadcast) is onnxruntime's QLinearAdd, computed in fp32::

    y = clamp(round((as·(a - az) + bs·(b - bz)) / ys) + yz, qmin, qmax)

with the ReLU as ``qmin = yz`` (:func:`onnxq.passes.lowering.common.clamp_bounds`). Elementwise,
so it runs on the NHWC twins of both inputs and its output is NHWC too. onnxruntime's quantizer
in QOperator format writes the same inputs as one com.microsoft ``QLinearAdd``.
"""

from __future__ import annotations

import onnx_ir as ir

from onnxq.graph import constant_array
from onnxq.passes.lowering.common import (
    Act,
    Lowering,
    QParams,
    State,
    activation_qparams,
    dequantized,
    qparams,
    register,
    relu_output,
)


def _rank4_same(a: ir.Value | None, b: ir.Value | None) -> bool:
    """Both values 4-D of one shape: the same batch (a number, or one named dimension) and the same
    static channels and spatial sizes (an elementwise op of ours takes no broadcast)."""
    if a is None or b is None or a.shape is None or b.shape is None or len(a.shape) != 4 or len(b.shape) != 4:
        return False
    da, db = list(a.shape.dims), list(b.shape.dims)
    if not all(isinstance(d, int) for d in da[1:]) or da[1:] != db[1:]:
        return False
    batch_a, batch_b = da[0], db[0]
    if isinstance(batch_a, int) or isinstance(batch_b, int):
        return batch_a == batch_b
    return batch_a.value is not None and batch_a.value == batch_b.value


def _add_lowering(node: ir.Node, a: Act, b: Act, y: QParams, y_q: ir.Value, qmin: int, qmax: int) -> Lowering:
    inputs = (a, a.qp.scale, a.qp.zero_point, b, b.qp.scale, b.qp.zero_point, y.scale, y.zero_point)
    return Lowering(node, "QLinearAdd", inputs, {"qmin": qmin, "qmax": qmax}, y_q, y)


@register("", "Add")
def match_add(node: ir.Node, state: State) -> Lowering | str:
    """DQ(a) + DQ(b) [-> Relu] -> Q: ``QLinearAdd``, two inputs of one 4-D shape."""
    if len(node.inputs) != 2 or not _rank4_same(node.inputs[0], node.inputs[1]):
        return "its inputs are not two 4-D tensors of one static shape"
    dq_a, dq_b = dequantized(node.inputs[0]), dequantized(node.inputs[1])
    if dq_a is None or dq_b is None:
        return "its inputs are not both dequantized"
    a, b = activation_qparams(dq_a), activation_qparams(dq_b)
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else b  # type: ignore[return-value]
    if constant_array(dq_a.inputs[0]) is not None or constant_array(dq_b.inputs[0]) is not None:
        return "one input is a constant"
    out = relu_output(node)
    if isinstance(out, str):
        return out
    a_act, b_act = Act(dq_a.inputs[0], a), Act(dq_b.inputs[0], b)  # type: ignore[arg-type]
    return _add_lowering(node, a_act, b_act, *out)


@register("com.microsoft", "QLinearAdd", noted=True)
def match_qlinearadd(node: ir.Node, state: State) -> Lowering | str:
    """com.microsoft QLinearAdd (QOperator format): the same inputs."""
    ins = list(node.inputs) + [None] * (8 - len(node.inputs))
    if not _rank4_same(ins[0], ins[3]):
        return "its inputs are not two 4-D tensors of one static shape"
    a = qparams(ins[1], ins[2], f"input A of '{node.name}'")
    b = qparams(ins[4], ins[5], f"input B of '{node.name}'")
    y = qparams(ins[6], ins[7], f"the output of '{node.name}'")
    for qp in (a, b, y):
        if isinstance(qp, str):
            return qp
    assert isinstance(a, QParams) and isinstance(b, QParams) and isinstance(y, QParams)
    assert ins[0] is not None and ins[3] is not None
    return _add_lowering(node, Act(ins[0], a), Act(ins[3], b), y, node.outputs[0], 0, 255)
