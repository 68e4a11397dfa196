"""Concat between Q/DQ, and com.microsoft ``QLinearConcat`` → ``ai.onnxq.QLinearConcat``.

The pattern::

    DQ(x_0, s_0, z_0), ..., DQ(x_{n-1}, s_{n-1}, z_{n-1}) → Concat(axis) ─Q(ys, yz)→ yq

(per-tensor 8-bit qparams, constants) is onnxruntime's QLinearConcat. Each part lands in the
output unchanged where its qparams are the output's (onnxq's quantizer gives every Concat input
the output's, so the op only copies bytes) and requantised elsewhere, in fp32::

    y = round_half_even(clamp(s_i · (x - z_i) / ys, -yz, 255 - yz)) + yz

A concat moves no values between elements, so it runs in either layout. When every input is the
NHWC twin of one of our ops' outputs it runs on the twins, its axis mapped through the
permutation (``NCHW_TO_NHWC.index(axis)``: channels 1 → 3), and its output is an NHWC twin too:
no Transpose between our convs and the concat. Otherwise it reads the NCHW tensors as they are
and its output stays NCHW (our op's, in place of the QuantizeLinear's). A Concat with a float
input stays QDQ; one without any dequantized input (shape arithmetic, say) is not a candidate.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.passes.lowering.common import (
    NCHW_TO_NHWC,
    Act,
    Lowering,
    QParams,
    State,
    activation_qparams,
    dequantized,
    output_qparams,
    qparams,
    register,
)


def _ranks(values: list[ir.Value]) -> set[int]:
    """The ranks the values are known to have (one when they agree, none when no shape is known)."""
    return {len(v.shape) for v in values if v.shape is not None}


def _concat_lowering(
    node: ir.Node,
    parts: list[tuple[ir.Value, QParams]],
    y: QParams,
    y_q: ir.Value,
    state: State,
    floats: tuple[ir.Value, ...] = (),
) -> Lowering | str:
    """Our QLinearConcat of ``parts`` (each tensor with its qparams), in NHWC when every tensor
    has an NHWC twin of ours, else on the tensors as they are (``floats``: the float Concat's
    inputs and output, whose shapes may be known where the integers' are not)."""
    axis = node.attributes.get_int("axis", None)
    if axis is None:
        return "it has no axis"
    ranks = _ranks([v for v, _ in parts] + [y_q, *floats])
    if len(ranks) > 1:
        return f"its tensors have different ranks ({sorted(ranks)})"
    rank = ranks.pop() if ranks else None
    if rank is not None and not -rank <= axis < rank:
        return f"its axis {axis} is out of range for rank {rank}"
    nhwc = all(id(v) in state.twins for v, _ in parts)  # our twins are 4-D
    if nhwc:
        axis = NCHW_TO_NHWC.index(axis % 4)
    scales = np.array([qp.scale_value for _, qp in parts], np.float32)
    zero_points = np.array([qp.zero_point_value for _, qp in parts], np.uint8)
    tensors = tuple(Act(v, qp, nhwc=nhwc) for v, qp in parts)
    inputs = (y.scale, y.zero_point, scales, zero_points, *tensors)
    return Lowering(node, "QLinearConcat", inputs, {"axis": axis}, y_q, y, nhwc=nhwc)


@register("", "Concat", noted=True)
def match_concat(node: ir.Node, state: State) -> Lowering | str:
    """DQ(x_0), ..., DQ(x_{n-1}) -> Concat -> Q: ``QLinearConcat``; "" (no note) when no input
    is dequantized."""
    dqs = [dequantized(v) for v in node.inputs]
    if not any(dqs):
        return ""
    parts: list[tuple[ir.Value, QParams]] = []
    for i, dq in enumerate(dqs):
        if dq is None or dq.inputs[0] is None:
            return f"its input {i} is not dequantized (a float tensor)"
        qp = activation_qparams(dq)
        if isinstance(qp, str):
            return qp
        parts.append((dq.inputs[0], qp))
    out = output_qparams(node)
    if isinstance(out, str):
        return out
    floats = (*node.inputs, node.outputs[0])
    return _concat_lowering(node, parts, *out, state, floats)  # type: ignore[arg-type]


@register("com.microsoft", "QLinearConcat", noted=True)
def match_qlinearconcat(node: ir.Node, state: State) -> Lowering | str:
    """com.microsoft QLinearConcat (QOperator format): ``y_scale, y_zero_point`` then a
    ``(x, x_scale, x_zero_point)`` triple per tensor."""
    ins = list(node.inputs)
    if len(ins) < 5 or (len(ins) - 2) % 3 != 0:
        return f"it has {len(ins)} inputs, not y's qparams and a triple per tensor"
    y = qparams(ins[0], ins[1], f"the output of '{node.name}'")
    if isinstance(y, str):
        return y
    parts: list[tuple[ir.Value, QParams]] = []
    for i in range(2, len(ins), 3):
        x = ins[i]
        qp = qparams(ins[i + 1], ins[i + 2], f"input {(i - 2) // 3} of '{node.name}'")
        if isinstance(qp, str):
            return qp
        if x is None:
            return f"its input {(i - 2) // 3} is missing"
        parts.append((x, qp))
    return _concat_lowering(node, parts, y, node.outputs[0], state)
