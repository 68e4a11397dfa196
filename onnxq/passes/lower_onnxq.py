"""QDQ (and QOperator) int8 ops → onnxq's ``ai.onnxq`` ops, kept in NHWC from one op to the next.

Lowered: Conv (+Relu/Clip) → ``QLinearConv``; Add (+Relu) → ``QLinearAdd``; MaxPool →
``MaxPool``; GlobalAveragePool → ``QLinearGlobalAveragePool``. The convolution shows the maths:

A QDQ model spells a quantized convolution as float ops between quantize/dequantize pairs::

    xq ─DQ(xs, xz)→ Conv(·, DQ(wq, ws, 0), DQ(bq, xs·ws, 0)) [→ Relu | Clip(lo, hi)] ─Q(ys, yz)→ yq

with uint8 activations (per tensor), int8 symmetric weights (per tensor or per output channel)
and an int32 bias. onnxruntime runs it as its integer ``QLinearConv``; so does
``ai.onnxq.QLinearConv`` (same inputs, NHWC activations), with ``acc = bias + Σ (x - xz)·w``
requantised by ``xs·ws[o]/ys`` in fp32 (``native/src/ort/op_conv.c``). A fused activation becomes
a clamp of the uint8 output, exact because quantisation ``q(v) = sat(round(v / ys) + yz)`` is
monotone and ``q(0)`` is ``yz``::

    q(relu(v))        = max(q(v), yz)                    → qmin = yz,          qmax = 255
    q(clip(v, lo, hi)) = min(max(q(v), q(lo)), q(hi))    → qmin = q(lo) (or 0), qmax = q(hi)

(:func:`clamp_bounds`). Activations between two lowered convs stay NHWC uint8: the first conv's
input comes from ``ai.onnxq.Quantize`` (``layout=nchw_to_nhwc``) when a QuantizeLinear made it,
else from a ``Transpose``; a consumer that is not lowered reads NCHW again, through
``ai.onnxq.Dequantize`` (``layout=nhwc_to_nchw``) where it was a DequantizeLinear, else through a
``Transpose``. Every pattern that does not match stays QDQ (onnxruntime's kernels) and is named,
with the reason, in the pass notes.

QOperator-format models (onnxruntime's quantizer with ``QuantFormat.QOperator``) spell the same
convolution as one ONNX ``QLinearConv``, with the same inputs in the same order: it is lowered
likewise (without a fused activation: QOperator models have none to fuse).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.graph import (
    NameAuthority,
    constant_array,
    is_op,
    new_initializer,
    remove_unused_initializers,
    replace_all_uses,
)
from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.passes.base import GraphPass, PassResult

logger = logging.getLogger(__name__)

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def quantize_value(v: float, scale: np.float32, zero_point: int) -> int:
    """ONNX QuantizeLinear of one value to uint8 (fp32 division, round half to even, saturate)."""
    q = np.rint(np.float32(v) / np.float32(scale)) + zero_point
    return int(np.clip(q, 0, 255))


def clamp_bounds(
    activation: str | None,
    scale: np.float32,
    zero_point: int,
    lo: float | None = None,
    hi: float | None = None,
) -> tuple[int, int]:
    """The uint8 clamp ``(qmin, qmax)`` equal to ``activation`` (None, "Relu" or "Clip" with
    bounds ``lo``/``hi``, None for an absent one) followed by quantisation (module docstring)."""
    if activation is None:
        return 0, 255
    if activation == "Relu":
        return zero_point, 255
    qmin = 0 if lo is None else quantize_value(lo, scale, zero_point)
    qmax = 255 if hi is None else quantize_value(hi, scale, zero_point)
    return qmin, qmax


@dataclass(frozen=True)
class _QParams:
    """A per-tensor 8-bit quantisation as onnxq's ops read it: uint8. An int8 tensor (``signed``)
    is held by its uint8 twin ``q + 128`` with zero point ``zp + 128``, which is exact both ways:
    ``(q + 128) - (zp + 128) = q - zp``, and saturating to [0, 255] after adding ``zp + 128`` is
    saturating to [-128, 127] after adding ``zp``, shifted. ``zero_point`` is then a new uint8
    constant (registered when a node of ours first reads it)."""

    scale: ir.Value
    zero_point: ir.Value
    scale_value: np.float32
    zero_point_value: int  # in the uint8 domain
    signed: bool = False


def _activation_qparams(node: ir.Node) -> _QParams | str:
    """The per-tensor uint8 qparams of a QuantizeLinear/DequantizeLinear, or why not."""
    if len(node.inputs) < 3:
        return f"'{node.name}' has no zero point (int8 default): onnxq's ops take uint8 activations"
    return _qparams(node.inputs[1], node.inputs[2], f"'{node.name}'")


def _qparams(scale_value: ir.Value | None, zp_value: ir.Value | None, where: str) -> _QParams | str:
    """``scale_value`` / ``zp_value`` as per-tensor uint8 qparams, or why not (``where`` names them)."""
    if scale_value is None or zp_value is None:
        return f"{where} has no zero point (int8 default): onnxq's ops take uint8 activations"
    scale, zp = constant_array(scale_value), constant_array(zp_value)
    if scale is None or zp is None:
        return f"the qparams of {where} are not constants"
    if scale.size != 1 or zp.size != 1:
        return f"{where} is per channel: activations are per tensor in onnxq's ops"
    if zp.dtype not in (np.uint8, np.int8):
        return f"{where} quantizes to {zp.dtype}: onnxq's ops take 8-bit activations"
    if scale.dtype != np.float32 or not (np.isfinite(scale).all() and float(scale.reshape(-1)[0]) > 0):
        return f"the scale of {where} is not a finite float32 > 0"
    s = np.float32(scale.reshape(-1)[0])
    if zp.dtype == np.uint8:
        return _QParams(scale_value, zp_value, s, int(zp.reshape(-1)[0]))
    shifted = int(zp.reshape(-1)[0]) + 128
    twin_zp = ir.Value(
        shape=ir.Shape([]),
        type=ir.TensorType(ir.DataType.UINT8),
        const_value=ir.tensor(np.array(shifted, np.uint8)),
    )
    return _QParams(scale_value, twin_zp, s, shifted, signed=True)


@dataclass(frozen=True)
class _Act:
    """An activation input: the uint8 NCHW tensor read, with the qparams it is read with; read
    through its NHWC twin (``nhwc``) or as it is (a matrix, say)."""

    value: ir.Value
    qp: _QParams
    nhwc: bool = True


@dataclass
class _State:
    """What the matchers may know of the ops lowered before: the qparams of each uint8 tensor
    that has an NHWC twin of ours (by ``id`` of the NCHW value), and which of them are N x 1 x 1 x C
    (a global pool's output, which Flatten may read in either layout)."""

    twins: dict[int, _QParams]
    unit_spatial: set[int]


@dataclass(frozen=True)
class _Lowering:
    """One node of ours in place of ``anchor`` (the float op or the QOperator op replaced):
    ``inputs`` are values, activations (:class:`_Act`, read through their NHWC twins) or arrays
    (new initializers); its output is the NHWC twin of ``y_q``, quantized with ``y``."""

    anchor: ir.Node
    op_type: str
    inputs: tuple[ir.Value | _Act | np.ndarray | None, ...]
    attributes: dict[str, int | list[int]]
    y_q: ir.Value
    y: _QParams
    nhwc: bool = True  # the output is y_q's NHWC twin; else y_q itself, made by our op
    domain: str = DOMAIN  # a standard op (Flatten) where it already works on our layout


def _dequantized(value: ir.Value | None) -> ir.Node | None:
    node = value.producer() if value is not None else None
    return node if is_op(node, "DequantizeLinear") else None


def _match_conv(conv: ir.Node, state: _State) -> _Lowering | str:
    """The lowering of ``conv``, or the reason it stays QDQ."""
    if len(conv.inputs) < 2:
        return "it has no weight"
    if conv.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return "auto_pad is not lowered (explicit pads only)"
    dq_x, dq_w = _dequantized(conv.inputs[0]), _dequantized(conv.inputs[1])
    if dq_x is None or dq_w is None:
        return "its input or weight is not dequantized (the conv runs in float)"
    x = _activation_qparams(dq_x)
    if isinstance(x, str):
        return x
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
        dq_b = _dequantized(conv.inputs[2])
        b = constant_array(dq_b.inputs[0]) if dq_b is not None else None
        if b is None or b.dtype != np.int32 or b.shape != (w.shape[0],):
            return "its bias is not a dequantized int32 constant (one per output channel)"
        bias_q = dq_b.inputs[0]  # type: ignore[union-attr]
    out = conv.outputs[0]
    activation, lo, hi = None, None, None
    nxt = _sole_reader(out)
    if is_op(nxt, "Relu", "Clip"):
        assert nxt is not None
        activation = nxt.op_type
        if activation == "Clip":
            bounds = _clip_bounds(nxt)
            if bounds is None:
                return f"the bounds of Clip '{nxt.name}' are not constants"
            lo, hi = bounds
        out = nxt.outputs[0]
        nxt = _sole_reader(out)
    if not is_op(nxt, "QuantizeLinear"):
        return "its output is not quantized right after it"
    assert nxt is not None
    y = _activation_qparams(nxt)
    if isinstance(y, str):
        return y
    qmin, qmax = clamp_bounds(activation, y.scale_value, y.zero_point_value, lo, hi)
    if qmin > qmax:
        return "its Clip bounds leave no uint8 value"
    return _conv_lowering(
        conv,
        _Act(dq_x.inputs[0], x),
        dq_w.inputs[0],
        dq_w.inputs[1],
        w,
        bias_q,  # type: ignore[arg-type]
        y,
        nxt.outputs[0],
        qmin,
        qmax,
    )


def _conv_lowering(
    conv: ir.Node,
    x: _Act,
    w_q: ir.Value,
    w_scale: ir.Value,
    w: np.ndarray,
    bias_q: ir.Value | None,
    y: _QParams,
    y_q: ir.Value,
    qmin: int,
    qmax: int,
) -> _Lowering:
    w_zp = np.zeros(w.shape[0] if _size(w_scale) > 1 else (), np.int8)
    attributes: dict[str, int | list[int]] = {
        "group": conv.attributes.get_int("group", 1),
        "strides": _ints(conv, "strides", [1, 1]),
        "pads": _ints(conv, "pads", [0, 0, 0, 0]),
        "dilations": _ints(conv, "dilations", [1, 1]),
        "qmin": qmin,
        "qmax": qmax,
    }
    inputs = (x, x.qp.scale, x.qp.zero_point, w_q, w_scale, w_zp, y.scale, y.zero_point, bias_q)
    return _Lowering(conv, "QLinearConv", inputs if bias_q is not None else inputs[:-1], attributes, y_q, y)


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


def _match_qlinearconv(conv: ir.Node, state: _State) -> _Lowering | str:
    """The lowering of an ONNX ``QLinearConv`` (QOperator format, e.g. onnxruntime's quantizer
    with ``QuantFormat.QOperator``): the same inputs, NCHW; or the reason it stays."""
    if conv.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return "auto_pad is not lowered (explicit pads only)"
    ins = list(conv.inputs) + [None] * (9 - len(conv.inputs))
    x = _qparams(ins[1], ins[2], f"the input of '{conv.name}'")
    if isinstance(x, str):
        return x
    y = _qparams(ins[6], ins[7], f"the output of '{conv.name}'")
    if isinstance(y, str):
        return y
    w = _weight(ins[3], ins[4], ins[5], 0)
    if isinstance(w, str):
        return w
    b = constant_array(ins[8]) if ins[8] is not None else None
    if ins[8] is not None and (b is None or b.dtype != np.int32 or b.shape != (w.shape[0],)):
        return "its bias is not an int32 constant (one per output channel)"
    assert ins[0] is not None and ins[3] is not None and ins[4] is not None
    return _conv_lowering(conv, _Act(ins[0], x), ins[3], ins[4], w, ins[8], y, conv.outputs[0], 0, 255)


def _quantized_output(node: ir.Node, fuse_relu: bool) -> tuple[ir.Node, str | None] | str:
    """The QuantizeLinear right after ``node`` (through a Relu when ``fuse_relu``), and the Relu's
    op type if one was passed, or why there is none."""
    nxt = _sole_reader(node.outputs[0])
    activation = None
    if fuse_relu and is_op(nxt, "Relu"):
        assert nxt is not None
        activation = "Relu"
        nxt = _sole_reader(nxt.outputs[0])
    if not is_op(nxt, "QuantizeLinear"):
        return "its output is not quantized right after it"
    assert nxt is not None
    return nxt, activation


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


def _match_add(node: ir.Node, state: _State) -> _Lowering | str:
    """DQ(a) + DQ(b) [-> Relu] -> Q: ``QLinearAdd``, two inputs of one 4-D shape."""
    if len(node.inputs) != 2 or not _rank4_same(node.inputs[0], node.inputs[1]):
        return "its inputs are not two 4-D tensors of one static shape"
    dq_a, dq_b = _dequantized(node.inputs[0]), _dequantized(node.inputs[1])
    if dq_a is None or dq_b is None:
        return "its inputs are not both dequantized"
    a, b = _activation_qparams(dq_a), _activation_qparams(dq_b)
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else b  # type: ignore[return-value]
    if constant_array(dq_a.inputs[0]) is not None or constant_array(dq_b.inputs[0]) is not None:
        return "one input is a constant"
    found = _quantized_output(node, fuse_relu=True)
    if isinstance(found, str):
        return found
    q, activation = found
    y = _activation_qparams(q)
    if isinstance(y, str):
        return y
    qmin, qmax = clamp_bounds(activation, y.scale_value, y.zero_point_value)
    inputs = (
        _Act(dq_a.inputs[0], a),
        a.scale,
        a.zero_point,
        _Act(dq_b.inputs[0], b),
        b.scale,
        b.zero_point,  # type: ignore[arg-type]
        y.scale,
        y.zero_point,
    )
    return _Lowering(node, "QLinearAdd", inputs, {"qmin": qmin, "qmax": qmax}, q.outputs[0], y)


def _match_qlinearadd(node: ir.Node, state: _State) -> _Lowering | str:
    """com.microsoft QLinearAdd (QOperator format): the same inputs."""
    ins = list(node.inputs) + [None] * (8 - len(node.inputs))
    if not _rank4_same(ins[0], ins[3]):
        return "its inputs are not two 4-D tensors of one static shape"
    a = _qparams(ins[1], ins[2], f"input A of '{node.name}'")
    b = _qparams(ins[4], ins[5], f"input B of '{node.name}'")
    y = _qparams(ins[6], ins[7], f"the output of '{node.name}'")
    for qp in (a, b, y):
        if isinstance(qp, str):
            return qp
    assert isinstance(a, _QParams) and isinstance(b, _QParams) and isinstance(y, _QParams)
    assert ins[0] is not None and ins[3] is not None
    inputs = (
        _Act(ins[0], a),
        a.scale,
        a.zero_point,
        _Act(ins[3], b),
        b.scale,
        b.zero_point,
        y.scale,
        y.zero_point,
    )
    return _Lowering(node, "QLinearAdd", inputs, {"qmin": 0, "qmax": 255}, node.outputs[0], y)


def _pool_attributes(node: ir.Node) -> dict[str, int | list[int]] | str:
    if node.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return "auto_pad is not lowered (explicit pads only)"
    if node.attributes.get_int("storage_order", 0) != 0 or (len(node.outputs) > 1 and node.outputs[1].uses()):
        return "its indices output is used"
    kernel = _ints(node, "kernel_shape", [])
    if len(kernel) != 2:
        return "it is not a 2-D pooling"
    return {
        "kernel_shape": kernel,
        "strides": _ints(node, "strides", [1, 1]),
        "pads": _ints(node, "pads", [0, 0, 0, 0]),
        "dilations": _ints(node, "dilations", [1, 1]),
        "ceil_mode": node.attributes.get_int("ceil_mode", 0),
    }


def _match_maxpool(node: ir.Node, state: _State) -> _Lowering | str:
    """DQ(x) -> MaxPool -> Q with the same qparams (QDQ), or a MaxPool on a uint8 tensor one of
    our ops made (QOperator): ``MaxPool`` (the maximum keeps the scale and zero point)."""
    attributes = _pool_attributes(node)
    if isinstance(attributes, str):
        return attributes
    x_value = node.inputs[0]
    if x_value is not None and id(x_value) in state.twins:  # uint8 already (QOperator)
        return _Lowering(
            node,
            "MaxPool",
            (_Act(x_value, state.twins[id(x_value)]),),
            attributes,
            node.outputs[0],
            state.twins[id(x_value)],
        )
    dq = _dequantized(x_value)
    if dq is None:
        return "its input is not dequantized"
    x = _activation_qparams(dq)
    if isinstance(x, str):
        return x
    found = _quantized_output(node, fuse_relu=False)
    if isinstance(found, str):
        return found
    y = _activation_qparams(found[0])
    if isinstance(y, str):
        return y
    if (y.scale_value, y.zero_point_value) != (x.scale_value, x.zero_point_value):
        return "its output is quantized with other qparams than its input"
    return _Lowering(node, "MaxPool", (_Act(dq.inputs[0], x),), attributes, found[0].outputs[0], y)  # type: ignore[arg-type]


def _match_global_pool(node: ir.Node, state: _State) -> _Lowering | str:
    """DQ(x) -> GlobalAveragePool -> Q: ``QLinearGlobalAveragePool`` (4-D inputs)."""
    x_value = node.inputs[0]
    if x_value is None or x_value.shape is None or len(x_value.shape) != 4:
        return "its input is not known to be 4-D"
    dq = _dequantized(x_value)
    if dq is None:
        return "its input is not dequantized"
    x = _activation_qparams(dq)
    if isinstance(x, str):
        return x
    found = _quantized_output(node, fuse_relu=False)
    if isinstance(found, str):
        return found
    y = _activation_qparams(found[0])
    if isinstance(y, str):
        return y
    inputs = (_Act(dq.inputs[0], x), x.scale, x.zero_point, y.scale, y.zero_point)  # type: ignore[arg-type]
    return _Lowering(node, "QLinearGlobalAveragePool", inputs, {}, found[0].outputs[0], y)


def _match_qlinear_global_pool(node: ir.Node, state: _State) -> _Lowering | str:
    """com.microsoft QLinearGlobalAveragePool (QOperator format), channels first, 4-D."""
    if node.attributes.get_int("channels_last", 0) != 0:
        return "it is channels-last already"
    ins = list(node.inputs) + [None] * (5 - len(node.inputs))
    known = ins[0] is not None and ins[0].shape is not None and len(ins[0].shape) == 4
    if ins[0] is None or not (known or id(ins[0]) in state.twins):  # our ops' outputs are 4-D
        return "its input is not known to be 4-D"
    x = _qparams(ins[1], ins[2], f"the input of '{node.name}'")
    y = _qparams(ins[3], ins[4], f"the output of '{node.name}'")
    if isinstance(x, str) or isinstance(y, str):
        return x if isinstance(x, str) else y  # type: ignore[return-value]
    inputs = (_Act(ins[0], x), x.scale, x.zero_point, y.scale, y.zero_point)
    return _Lowering(node, "QLinearGlobalAveragePool", inputs, {}, node.outputs[0], y)


def _match_flatten(node: ir.Node, state: _State) -> _Lowering | str:
    """Flatten(axis=1) of an N x C x 1 x 1 tensor one of our global pools made: the same bytes in
    NHWC, so a standard Flatten of the twin gives the N x C matrix (QDQ: between a DQ and a Q with
    the same qparams; QOperator: on the uint8 tensor)."""
    if node.attributes.get_int("axis", 1) != 1:
        return "its axis is not 1"
    x_value = node.inputs[0]
    if x_value is not None and id(x_value) in state.unit_spatial:
        qp = state.twins[id(x_value)]
        return _Lowering(
            node, "Flatten", (_Act(x_value, qp),), {"axis": 1}, node.outputs[0], qp, nhwc=False, domain=""
        )
    dq = _dequantized(x_value)
    if dq is None or dq.inputs[0] is None or id(dq.inputs[0]) not in state.unit_spatial:
        return "its input is not the output of a lowered global pool"
    x = state.twins[id(dq.inputs[0])]
    found = _quantized_output(node, fuse_relu=False)
    if isinstance(found, str):
        return found
    y = _activation_qparams(found[0])
    if isinstance(y, str) or (y.scale_value, y.zero_point_value) != (x.scale_value, x.zero_point_value):
        return "its output is quantized with other qparams than its input"
    return _Lowering(
        node, "Flatten", (_Act(dq.inputs[0], x),), {"axis": 1}, found[0].outputs[0], y, nhwc=False, domain=""
    )


def _gemm_form(node: ir.Node) -> str | None:
    """Why a Gemm/QGemm is not ``a @ w(.T) + b`` with a plain ``a`` (None when it is)."""
    if node.attributes.get_int("transA", 0) != 0:
        return "transA is set"
    if node.attributes.get_float("alpha", 1.0) != 1.0 or node.attributes.get_float("beta", 1.0) != 1.0:
        return "alpha or beta is not 1"
    return None


def _gemm_lowering(
    node: ir.Node,
    a: _Act,
    w_q: ir.Value,
    w_scale: ir.Value,
    w: np.ndarray,
    bias_q: ir.Value | None,
    y: _QParams,
    y_q: ir.Value,
    qmin: int,
    qmax: int,
) -> _Lowering:
    trans_b = node.attributes.get_int("transB", 0)
    n = w.shape[0] if trans_b else w.shape[1]
    w_zp = np.zeros(n if _size(w_scale) > 1 else (), np.int8)
    inputs = (a, a.qp.scale, a.qp.zero_point, w_q, w_scale, w_zp, y.scale, y.zero_point, bias_q)
    return _Lowering(
        node,
        "QGemm",
        inputs if bias_q is not None else inputs[:-1],
        {"transB": trans_b, "qmin": qmin, "qmax": qmax},
        y_q,
        y,
        nhwc=False,
    )


def _gemm_weight(
    w_value: ir.Value | None,
    scale_value: ir.Value | None,
    zp_value: ir.Value | None,
    trans_b: int,
    axis: int | None,
) -> np.ndarray | str:
    w = constant_array(w_value)
    if w is None or w.dtype != np.int8 or w.ndim != 2:
        return "its weight is not a constant int8 matrix"
    n = w.shape[0] if trans_b else w.shape[1]
    scale = constant_array(scale_value)
    if scale is None or scale.dtype != np.float32 or scale.size not in (1, n):
        return "its weight scale is not a float32 constant per tensor or per output column"
    if scale.size > 1 and axis is not None and axis % 2 != (0 if trans_b else 1):
        return f"its weight is quantized along axis {axis}, not the output columns"
    zp = constant_array(zp_value) if zp_value is not None else None
    if zp_value is not None and (zp is None or zp.dtype != np.int8 or np.any(zp != 0)):
        return "its weight is not int8 with zero point 0 (symmetric)"
    return w


def _match_gemm(node: ir.Node, state: _State) -> _Lowering | str:
    """DQ(a) -> Gemm(DQ(w), DQ(b)) [-> Relu] -> Q: ``QGemm`` with uint8 output."""
    why = _gemm_form(node)
    if why is not None:
        return why
    dq_a, dq_w = _dequantized(node.inputs[0]), _dequantized(node.inputs[1])
    if dq_a is None or dq_w is None:
        return "its input or weight is not dequantized"
    a = _activation_qparams(dq_a)
    if isinstance(a, str):
        return a
    trans_b = node.attributes.get_int("transB", 0)
    w = _gemm_weight(
        dq_w.inputs[0],
        dq_w.inputs[1] if len(dq_w.inputs) > 1 else None,
        dq_w.inputs[2] if len(dq_w.inputs) > 2 else None,
        trans_b,
        dq_w.attributes.get_int("axis", 1),
    )
    if isinstance(w, str):
        return w
    n = w.shape[0] if trans_b else w.shape[1]
    bias_q = None
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        dq_b = _dequantized(node.inputs[2])
        b = constant_array(dq_b.inputs[0]) if dq_b is not None else None
        if b is None or b.dtype != np.int32 or b.shape != (n,):
            return "its bias is not a dequantized int32 constant (one per output column)"
        bias_q = dq_b.inputs[0]  # type: ignore[union-attr]
    found = _quantized_output(node, fuse_relu=True)
    if isinstance(found, str):
        return found
    q, activation = found
    y = _activation_qparams(q)
    if isinstance(y, str):
        return y
    qmin, qmax = clamp_bounds(activation, y.scale_value, y.zero_point_value)
    return _gemm_lowering(
        node,
        _Act(dq_a.inputs[0], a, nhwc=False),
        dq_w.inputs[0],
        dq_w.inputs[1],
        w,  # type: ignore[arg-type]
        bias_q,
        y,
        q.outputs[0],
        qmin,
        qmax,
    )


def _match_qgemm(node: ir.Node, state: _State) -> _Lowering | str:
    """com.microsoft QGemm (QOperator format) with uint8 output."""
    why = _gemm_form(node)
    if why is not None:
        return why
    ins = list(node.inputs) + [None] * (9 - len(node.inputs))  # A, a_s, a_zp, B, b_s, b_zp, C, y_s, y_zp
    if ins[7] is None:
        return "its output is float (no y_scale)"
    a = _qparams(ins[1], ins[2], f"input A of '{node.name}'")
    y = _qparams(ins[7], ins[8], f"the output of '{node.name}'")
    if isinstance(a, str) or isinstance(y, str):
        return a if isinstance(a, str) else y  # type: ignore[return-value]
    trans_b = node.attributes.get_int("transB", 0)
    w = _gemm_weight(ins[3], ins[4], ins[5], trans_b, None)
    if isinstance(w, str):
        return w
    n = w.shape[0] if trans_b else w.shape[1]
    b = constant_array(ins[6]) if ins[6] is not None else None
    if ins[6] is not None and (b is None or b.dtype != np.int32 or b.shape != (n,)):
        return "its bias is not an int32 constant (one per output column)"
    assert ins[0] is not None and ins[3] is not None and ins[4] is not None
    return _gemm_lowering(
        node, _Act(ins[0], a, nhwc=False), ins[3], ins[4], w, ins[6], y, node.outputs[0], 0, 255
    )


#: (domain, op type) -> matcher, for every op that can be lowered.
_MATCHERS = {
    ("", "Conv"): _match_conv,
    ("", "QLinearConv"): _match_qlinearconv,
    ("", "Add"): _match_add,
    ("com.microsoft", "QLinearAdd"): _match_qlinearadd,
    ("", "MaxPool"): _match_maxpool,
    ("", "GlobalAveragePool"): _match_global_pool,
    ("com.microsoft", "QLinearGlobalAveragePool"): _match_qlinear_global_pool,
    ("", "Flatten"): _match_flatten,
    ("", "Gemm"): _match_gemm,
    ("com.microsoft", "QGemm"): _match_qgemm,
}
#: Ops whose refusal is worth a note (the others are ordinary float ops).
_NOTED = ("Conv", "QLinearConv", "QLinearAdd", "QLinearGlobalAveragePool", "QGemm")


def _sole_reader(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0].node


def _clip_bounds(clip: ir.Node) -> tuple[float | None, float | None] | None:
    if "min" in clip.attributes or "max" in clip.attributes:  # opset < 11
        lo, hi = clip.attributes.get_float("min", None), clip.attributes.get_float("max", None)
        return lo, hi
    bounds: list[float | None] = []
    for i in (1, 2):
        v = clip.inputs[i] if len(clip.inputs) > i else None
        if v is None:
            bounds.append(None)
            continue
        arr = constant_array(v)
        if arr is None or arr.size != 1:
            return None
        bounds.append(float(arr.reshape(-1)[0]))
    return bounds[0], bounds[1]


def _ints(node: ir.Node, name: str, default: list[int]) -> list[int]:
    attr = node.attributes.get(name)
    return list(attr.as_ints()) if attr is not None else default


class LowerToOnnxq(GraphPass):
    """Rewrite the int8 ops of the main graph that onnxq's ops cover into the ``ai.onnxq`` domain."""

    name = "lower_to_onnxq"

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        self._graph, self._names = graph, NameAuthority(graph)
        self._nhwc: dict[int, ir.Value] = {}
        self._plain: dict[int, ir.Value] = {}
        self._state = _State({}, set())
        self._replaced: set[int] = set()
        notes: list[str] = []
        lowered: list[_Lowering] = []
        for node in list(graph):
            domain = "" if node.domain in ("", "ai.onnx") else node.domain
            matcher = _MATCHERS.get((domain, node.op_type))
            if matcher is None:
                continue
            found = matcher(node, self._state)
            if isinstance(found, str):
                if node.op_type in _NOTED:
                    kept = (
                        "stays QDQ"
                        if domain == "" and node.op_type == "Conv"
                        else "stays on onnxruntime's kernels"
                    )
                    notes.append(f"{node.op_type} '{node.name}' {kept}: {found}")
                continue
            why = self._unreadable(found)
            if why is not None:
                notes.append(f"{node.op_type} '{node.name}' stays on onnxruntime's kernels: {why}")
                continue
            if not lowered:
                model.opset_imports[DOMAIN] = OPSET
            self._lower(found)
            lowered.append(found)
        if not lowered:
            return PassResult(model, 0, tuple(notes))
        for low in lowered:
            if low.nhwc:
                self._restore_nchw(low.y_q, self._nhwc[id(low.y_q)], low.y)
            else:
                self._restore_plain(low.y_q, self._plain[id(low.y_q)], low.y)
        _remove_dead(graph)
        remove_unused_initializers(graph)
        graph.sort()
        logger.info("%s: %d node(s) lowered", self.name, len(lowered))
        return PassResult(model, len(lowered), tuple(notes))

    def _lower(self, low: _Lowering) -> None:
        inputs: list[ir.Value | None] = []
        for item in low.inputs:
            if isinstance(item, _Act):
                value = item.value
                inputs.append(
                    self._to_nhwc(value, item.qp, low.anchor)
                    if item.nhwc
                    else self._plain.get(id(value), value)
                )
            elif isinstance(item, np.ndarray):
                inputs.append(new_initializer(self._graph, item, self._names, f"{low.anchor.name}_const"))
            else:
                inputs.append(self._ready(item))
        if low.nhwc:
            y_nhwc = _permuted(low.y_q, NCHW_TO_NHWC, self._names.value(f"{low.y_q.name}_nhwc"))
        else:
            y_nhwc = ir.Value(
                name=self._names.value(f"{low.y_q.name}_onnxq"),
                shape=low.y_q.shape,
                type=ir.TensorType(ir.DataType.UINT8),
            )
        node = ir.node(
            low.op_type,
            inputs,
            low.attributes,
            domain=low.domain,
            outputs=[y_nhwc],
            name=self._names.node(low.anchor.name),
        )
        self._graph.insert_before(low.anchor, node)
        self._replaced.add(id(low.anchor))
        if not low.nhwc:
            self._plain[id(low.y_q)] = y_nhwc
            return
        self._nhwc[id(low.y_q)] = y_nhwc
        self._state.twins[id(low.y_q)] = low.y
        if low.op_type == "QLinearGlobalAveragePool":
            self._state.unit_spatial.add(id(low.y_q))

    def _to_nhwc(self, x_q: ir.Value, qp: _QParams, before: ir.Node) -> ir.Value:
        """The NHWC twin of the uint8 NCHW tensor ``x_q`` (made once)."""
        if id(x_q) in self._nhwc:
            return self._nhwc[id(x_q)]
        made = x_q.producer()
        out = _permuted(x_q, NCHW_TO_NHWC, self._names.value(f"{x_q.name}_nhwc"))
        if is_op(made, "QuantizeLinear") and made is not None and made.inputs[0] is not None:
            same = _activation_qparams(made)
            if isinstance(same, _QParams) and same.scale_value == qp.scale_value:
                node = ir.node(
                    "Quantize",
                    [made.inputs[0], same.scale, self._ready(same.zero_point)],
                    {"layout": "nchw_to_nhwc"},
                    domain=DOMAIN,
                    outputs=[out],
                    name=self._names.node(f"{made.name}_nhwc"),
                )
                self._graph.insert_after(made, node)
                self._nhwc[id(x_q)] = out
                return out
        node = ir.node(
            "Transpose",
            [x_q],
            {"perm": list(NCHW_TO_NHWC)},
            outputs=[out],
            name=self._names.node(f"{x_q.name}_to_nhwc"),
        )
        if made is not None:
            self._graph.insert_after(made, node)
        else:
            self._graph.insert_before(before, node)
        self._nhwc[id(x_q)] = out
        return out

    def _restore_nchw(self, y_q: ir.Value, y_nhwc: ir.Value, qp: _QParams) -> None:
        """Readers of ``y_q`` that were not lowered read it from ``y_nhwc`` again (NCHW): a
        DequantizeLinear becomes ``ai.onnxq.Dequantize``, anything else reads a Transpose. A
        DequantizeLinear read only by lowered convs is left to die with them."""
        graph, names = self._graph, self._names
        back: ir.Value | None = None
        for reader in list({id(u.node): u.node for u in y_q.uses()}.values()):
            if id(reader) in self._replaced:  # a lowered QOperator op: its twin reads the NHWC twin
                continue
            if is_op(reader, "DequantizeLinear"):
                out = reader.outputs[0]
                readers = [u.node for u in out.uses()]
                if readers and not out.is_graph_output() and all(id(r) in self._replaced for r in readers):
                    continue
                same = _activation_qparams(reader)
                if isinstance(same, _QParams) and (same.scale_value, same.zero_point_value) == (
                    qp.scale_value,
                    qp.zero_point_value,
                ):
                    twin = ir.Value(name=names.value(f"{out.name}_nchw"), shape=out.shape, type=out.type)
                    node = ir.node(
                        "Dequantize",
                        [y_nhwc, same.scale, self._ready(same.zero_point)],
                        {"layout": "nhwc_to_nchw"},
                        domain=DOMAIN,
                        outputs=[twin],
                        name=names.node(f"{reader.name}_nchw"),
                    )
                    graph.insert_after(reader, node)
                    replace_all_uses(out, twin, names)
                    continue
            if qp.signed:  # no standard op turns the uint8 twin back into int8: keep the original
                continue
            if back is None:
                back = self._transpose_back(y_q, y_nhwc)
            for use in list(y_q.uses()):
                if use.node is reader:
                    reader.replace_input_with(use.idx, back)
        if y_q.is_graph_output() and not qp.signed:
            replace_all_uses(y_q, back if back is not None else self._transpose_back(y_q, y_nhwc), names)

    def _restore_plain(self, y_q: ir.Value, twin: ir.Value, qp: _QParams) -> None:
        """Readers of ``y_q``, made by an op of ours in its own layout, read ``twin``: directly when
        it is ``y_q``'s bytes (uint8), through ``ai.onnxq.Dequantize`` where they dequantize an
        int8 ``y_q``; other readers of an int8 ``y_q`` keep the original."""
        if not qp.signed:
            replace_all_uses(y_q, twin, self._names)
            return
        for reader in list({id(u.node): u.node for u in y_q.uses()}.values()):
            same = _activation_qparams(reader) if is_op(reader, "DequantizeLinear") else None
            if not isinstance(same, _QParams) or (same.scale_value, same.zero_point_value) != (
                qp.scale_value,
                qp.zero_point_value,
            ):
                continue
            out = reader.outputs[0]
            new = ir.Value(name=self._names.value(f"{out.name}_onnxq"), shape=out.shape, type=out.type)
            node = ir.node(
                "Dequantize",
                [twin, same.scale, self._ready(same.zero_point)],
                {"layout": "same"},
                domain=DOMAIN,
                outputs=[new],
                name=self._names.node(f"{reader.name}_onnxq"),
            )
            self._graph.insert_after(reader, node)
            replace_all_uses(out, new, self._names)

    def _unreadable(self, low: _Lowering) -> str | None:
        """Why an int8 input of ``low`` cannot reach an op of ours (None when all can): its uint8
        twin exists only where one of our ops or a QuantizeLinear of a float tensor makes it."""
        for item in low.inputs:
            if not isinstance(item, _Act) or not item.qp.signed:
                continue
            value = item.value
            ours = id(value) in (self._nhwc if item.nhwc else self._plain)
            made = value.producer()
            quantized = (
                item.nhwc
                and is_op(made, "QuantizeLinear")
                and made is not None
                and made.inputs[0] is not None
            )
            if not (ours or quantized):
                return f"its int8 input '{value.name}' comes from an op that is not lowered"
        return None

    def _ready(self, value: ir.Value | None) -> ir.Value | None:
        """``value``, registered as an initializer first if it is a new constant (a shifted zero point)."""
        if value is None or value.const_value is None or value.graph is not None or value.is_initializer():
            return value
        value.name = self._names.value("onnxq_zero_point")
        self._graph.register_initializer(value)
        return value

    def _transpose_back(self, y_q: ir.Value, y_nhwc: ir.Value) -> ir.Value:
        back = ir.Value(name=self._names.value(f"{y_q.name}_nchw"), shape=y_q.shape, type=y_q.type)
        node = ir.node(
            "Transpose",
            [y_nhwc],
            {"perm": list(NHWC_TO_NCHW)},
            outputs=[back],
            name=self._names.node(f"{y_q.name}_to_nchw"),
        )
        self._graph.insert_after(y_nhwc.producer(), node)  # type: ignore[arg-type]
        return back


def _permuted(value: ir.Value, perm: tuple[int, ...], name: str) -> ir.Value:
    """A new uint8 value named ``name`` whose shape is ``value``'s permuted by ``perm`` (type and
    shape left unset when the rank is not known: a value_info needs a shape)."""
    shape = value.shape
    if shape is None or len(shape) != len(perm):
        return ir.Value(name=name)
    return ir.Value(
        name=name, shape=ir.Shape([shape[i] for i in perm]), type=ir.TensorType(ir.DataType.UINT8)
    )


def _size(value: ir.Value) -> int:
    arr = constant_array(value)
    return 0 if arr is None else int(arr.size)


def _remove_dead(graph: ir.Graph) -> int:
    """Remove nodes none of whose outputs is read or a graph output (repeatedly); return how many."""
    removed = 0
    changed = True
    while changed:
        changed = False
        for node in reversed(list(graph)):
            if all(not o.uses() and not o.is_graph_output() for o in node.outputs):
                graph.remove(node, safe=True)
                removed += 1
                changed = True
    return removed


__all__ = ["LowerToOnnxq", "clamp_bounds", "quantize_value"]
