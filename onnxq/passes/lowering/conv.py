"""Conv (+Relu/Clip) between Q/DQ, and ONNX ``QLinearConv`` → ``ai.onnxq.QLinearConv`` (NHWC).

A QDQ model spells a quantized convolution as float ops between quantize/dequantize pairs::

    xq ─DQ(xs, xz)→ Conv(·, DQ(wq, ws, 0), DQ(bq, xs·ws, 0)) [→ Relu | Clip(lo, hi)] ─Q(ys, yz)→ yq

with uint8 activations (per tensor), int8 symmetric weights (per tensor or per output channel)
and an int32 bias. onnxruntime runs it as its integer ``QLinearConv``; so does
``ai.onnxq.QLinearConv`` (same inputs, NHWC activations), with ``acc = bias + Σ (x - xz)·w``
requantised by ``xs·ws[o]/ys`` in fp32 (``native/src/ort/op_conv.c``). The fused activation is a
clamp of the uint8 output (:func:`onnxq.passes.lowering.common.clamp_bounds`).

QOperator-format models (onnxruntime's quantizer with ``QuantFormat.QOperator``) spell the same
convolution as one ONNX ``QLinearConv``, with the same inputs in the same order: it is lowered
likewise (without a fused activation: QOperator models have none to fuse).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.graph import constant_array, is_op
from onnxq.passes.lowering.common import (
    Act,
    Lowering,
    State,
    activation_qparams,
    clamp_bounds,
    clip_bounds,
    dequantized,
    ints,
    qparams,
    register,
    sole_reader,
    weighted_inputs,
    weighted_lowering,
)


@register("", "Conv", noted=True)
def match_conv(conv: ir.Node, state: State) -> Lowering | str:
    """The lowering of ``conv``, or the reason it stays QDQ."""
    if len(conv.inputs) < 2:
        return "it has no weight"
    if conv.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return "auto_pad is not lowered (explicit pads only)"
    found = weighted_inputs(conv, " (the conv runs in float)")
    if isinstance(found, str):
        return found
    x_q, x, dq_w = found
    w_zp = dq_w.inputs[2] if len(dq_w.inputs) > 2 else None
    weight = _weight(
        dq_w.inputs[0],
        dq_w.inputs[1] if len(dq_w.inputs) > 1 else None,
        w_zp,
        dq_w.attributes.get_int("axis", 1),
    )
    if isinstance(weight, str):
        return weight
    w = weight
    bias_q = None
    if len(conv.inputs) > 2 and conv.inputs[2] is not None:
        dq_b = dequantized(conv.inputs[2])
        b = constant_array(dq_b.inputs[0]) if dq_b is not None else None
        if b is None or b.dtype != np.int32 or b.shape != (w.shape[0],):
            return "its bias is not a dequantized int32 constant (one per output channel)"
        bias_q = dq_b.inputs[0]  # type: ignore[union-attr]
    out = conv.outputs[0]
    activation, lo, hi = None, None, None
    nxt = sole_reader(out)
    if is_op(nxt, "Relu", "Clip"):
        assert nxt is not None
        activation = nxt.op_type
        if activation == "Clip":
            bounds = clip_bounds(nxt)
            if bounds is None:
                return f"the bounds of Clip '{nxt.name}' are not constants"
            lo, hi = bounds
        out = nxt.outputs[0]
        nxt = sole_reader(out)
    if not is_op(nxt, "QuantizeLinear"):
        return "its output is not quantized right after it"
    assert nxt is not None
    y = activation_qparams(nxt)
    if isinstance(y, str):
        return y
    qmin, qmax = clamp_bounds(activation, y.scale_value, y.zero_point_value, lo, hi)
    if qmin > qmax:
        return "its Clip bounds leave no uint8 value"
    return weighted_lowering(
        conv,
        "QLinearConv",
        Act(x_q, x),
        dq_w.inputs[0],  # type: ignore[arg-type]
        dq_w.inputs[1],  # type: ignore[arg-type]
        bias_q,
        y,
        nxt.outputs[0],
        _attributes(conv, qmin, qmax),
    )


def _attributes(conv: ir.Node, qmin: int, qmax: int) -> dict[str, int | list[int]]:
    return {
        "group": conv.attributes.get_int("group", 1),
        "strides": ints(conv, "strides", [1, 1]),
        "pads": ints(conv, "pads", [0, 0, 0, 0]),
        "dilations": ints(conv, "dilations", [1, 1]),
        "qmin": qmin,
        "qmax": qmax,
    }


def _weight(
    w_value: ir.Value | None, scale_value: ir.Value | None, zp_value: ir.Value | None, axis: int
) -> np.ndarray | str:
    """The int8 OIHW weight, if its scale and zero point are what onnxq's conv takes; else why not."""
    w = constant_array(w_value)
    if w is None or w.dtype != np.int8 or w.ndim != 4:
        return "its weight is not a constant int8 4-D tensor (2-D convolutions only)"
    w_scale = constant_array(scale_value)
    if w_scale is None or w_scale.dtype != np.float32 or w_scale.size not in (1, w.shape[0]):
        return "its weight scale is not a float32 constant per tensor or per output channel"
    if w_scale.size > 1 and axis not in (0, -4):
        return f"its weight is quantized along axis {axis}, not the output channels"
    w_zp = constant_array(zp_value) if zp_value is not None else None
    if zp_value is not None and (w_zp is None or w_zp.dtype != np.int8 or np.any(w_zp != 0)):
        return "its weight is not int8 with zero point 0 (symmetric)"
    return w


@register("", "QLinearConv", noted=True)
def match_qlinearconv(conv: ir.Node, state: State) -> Lowering | str:
    """The lowering of an ONNX ``QLinearConv`` (QOperator format, e.g. onnxruntime's quantizer
    with ``QuantFormat.QOperator``): the same inputs, NCHW; or the reason it stays."""
    if conv.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return "auto_pad is not lowered (explicit pads only)"
    ins = list(conv.inputs) + [None] * (9 - len(conv.inputs))
    x = qparams(ins[1], ins[2], f"the input of '{conv.name}'")
    if isinstance(x, str):
        return x
    y = qparams(ins[6], ins[7], f"the output of '{conv.name}'")
    if isinstance(y, str):
        return y
    w = _weight(ins[3], ins[4], ins[5], 0)
    if isinstance(w, str):
        return w
    b = constant_array(ins[8]) if ins[8] is not None else None
    if ins[8] is not None and (b is None or b.dtype != np.int32 or b.shape != (w.shape[0],)):
        return "its bias is not an int32 constant (one per output channel)"
    assert ins[0] is not None and ins[3] is not None and ins[4] is not None
    attributes = _attributes(conv, 0, 255)
    return weighted_lowering(
        conv, "QLinearConv", Act(ins[0], x), ins[3], ins[4], ins[8], y, conv.outputs[0], attributes
    )
