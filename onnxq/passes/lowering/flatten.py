"""Flatten(axis=1) of a lowered global pool's output → a standard Flatten of its NHWC twin.

A global pool's output is N x C x 1 x 1; in NHWC it is N x 1 x 1 x C, the same bytes in the same
order, so::

    Flatten(axis=1)(y_nchw) == Flatten(axis=1)(y_nhwc)        (an N x C matrix)

and between a DQ and a Q with the same qparams (QDQ), or on the uint8 tensor (QOperator), the
Flatten reads our twin directly: no Transpose back to NCHW before the classifier's Gemm.
"""

from __future__ import annotations

import onnx_ir as ir

from onnxq.passes.lowering.common import (
    Act,
    Lowering,
    State,
    activation_qparams,
    dequantized,
    quantized_output,
    register,
)


@register("", "Flatten")
def match_flatten(node: ir.Node, state: State) -> Lowering | str:
    """Flatten(axis=1) of an N x C x 1 x 1 tensor one of our global pools made: the same bytes in
    NHWC, so a standard Flatten of the twin gives the N x C matrix (QDQ: between a DQ and a Q with
    the same qparams; QOperator: on the uint8 tensor)."""
    if node.attributes.get_int("axis", 1) != 1:
        return "its axis is not 1"
    x_value = node.inputs[0]
    if x_value is not None and id(x_value) in state.unit_spatial:
        qp = state.twins[id(x_value)]
        return Lowering(
            node, "Flatten", (Act(x_value, qp),), {"axis": 1}, node.outputs[0], qp, nhwc=False, domain=""
        )
    dq = dequantized(x_value)
    if dq is None or dq.inputs[0] is None or id(dq.inputs[0]) not in state.unit_spatial:
        return "its input is not the output of a lowered global pool"
    x = state.twins[id(dq.inputs[0])]
    found = quantized_output(node, fuse_relu=False)
    if isinstance(found, str):
        return found
    y = activation_qparams(found[0])
    if isinstance(y, str) or (y.scale_value, y.zero_point_value) != (x.scale_value, x.zero_point_value):
        return "its output is quantized with other qparams than its input"
    return Lowering(
        node, "Flatten", (Act(dq.inputs[0], x),), {"axis": 1}, found[0].outputs[0], y, nhwc=False, domain=""
    )
