"""What every lowering matcher shares: the qparams of our uint8 ops, the shape of a match, the
registry of matchers, and the clamp maths of a fused activation.

A matcher reads one node of a QDQ (or QOperator) model and returns a :class:`Lowering` (one node
of ours in its place) or the reason it stays; :class:`onnxq.passes.lower_onnxq.LowerToOnnxq`
applies the lowerings. Matchers are registered by ``(domain, op type)`` with :func:`register`
and live one op family per module (``conv.py``, ``add.py``, ...), each imported by name in
``onnxq/passes/lowering/__init__.py``.

A fused activation becomes a clamp of the uint8 output, exact because quantisation
``q(v) = sat(round(v / ys) + yz)`` is monotone and ``q(0)`` is ``yz``::

    q(relu(v))         = max(q(v), yz)                   → qmin = yz,          qmax = 255
    q(clip(v, lo, hi)) = min(max(q(v), q(lo)), q(hi))    → qmin = q(lo) (or 0), qmax = q(hi)

(:func:`clamp_bounds`). An int8 tensor runs on our uint8 ops as its twin ``q + 128`` with zero
point ``zp + 128`` (:class:`QParams`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.graph import constant_array, is_op
from onnxq.kernels.custom_ops import DOMAIN

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
class QParams:
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


def activation_qparams(node: ir.Node) -> QParams | str:
    """The per-tensor uint8 qparams of a QuantizeLinear/DequantizeLinear, or why not."""
    if len(node.inputs) < 3:
        return f"'{node.name}' has no zero point (int8 default): onnxq's ops take uint8 activations"
    return qparams(node.inputs[1], node.inputs[2], f"'{node.name}'")


def qparams(scale_value: ir.Value | None, zp_value: ir.Value | None, where: str) -> QParams | str:
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
        return QParams(scale_value, zp_value, s, int(zp.reshape(-1)[0]))
    shifted = int(zp.reshape(-1)[0]) + 128
    twin_zp = ir.Value(
        shape=ir.Shape([]),
        type=ir.TensorType(ir.DataType.UINT8),
        const_value=ir.tensor(np.array(shifted, np.uint8)),
    )
    return QParams(scale_value, twin_zp, s, shifted, signed=True)


@dataclass(frozen=True)
class Act:
    """An activation input: the uint8 NCHW tensor read, with the qparams it is read with; read
    through its NHWC twin (``nhwc``) or as it is (a matrix, say)."""

    value: ir.Value
    qp: QParams
    nhwc: bool = True


@dataclass
class State:
    """What the matchers may know of the ops lowered before: the qparams of each uint8 tensor
    that has an NHWC twin of ours (by ``id`` of the NCHW value), and which of them are N x 1 x 1 x C
    (a global pool's output, which Flatten may read in either layout)."""

    twins: dict[int, QParams]
    unit_spatial: set[int]


@dataclass(frozen=True)
class Lowering:
    """One node of ours in place of ``anchor`` (the float op or the QOperator op replaced):
    ``inputs`` are values, activations (:class:`Act`, read through their NHWC twins) or arrays
    (new initializers); its output is the NHWC twin of ``y_q``, quantized with ``y``."""

    anchor: ir.Node
    op_type: str
    inputs: tuple[ir.Value | Act | np.ndarray | None, ...]
    attributes: dict[str, int | float | str | list[int]]
    y_q: ir.Value
    y: QParams
    nhwc: bool = True  # the output is y_q's NHWC twin; else y_q itself, made by our op
    domain: str = DOMAIN  # a standard op (Flatten) where it already works on our layout


Matcher = Callable[[ir.Node, State], Lowering | str]


@dataclass(frozen=True)
class Registered:
    """A matcher and whether its refusals are worth a note (the ops that are quantized for sure;
    a refused MaxPool or Flatten is an ordinary float op)."""

    match: Matcher
    noted: bool


#: (domain, op type) -> matcher, for every op that can be lowered ("" is the ONNX domain).
MATCHERS: dict[tuple[str, str], Registered] = {}


def register(domain: str, op_type: str, *, noted: bool = False) -> Callable[[Matcher], Matcher]:
    """Register the decorated function as the matcher of ``domain``'s ``op_type`` (once)."""

    def add(match: Matcher) -> Matcher:
        key = (domain, op_type)
        if key in MATCHERS:
            raise ValueError(f"a matcher of {domain or 'ai.onnx'} {op_type} is registered already")
        MATCHERS[key] = Registered(match, noted)
        return match

    return add


def weighted_lowering(
    anchor: ir.Node,
    op_type: str,
    x: Act,
    w_q: ir.Value,
    w_scale: ir.Value,
    bias_q: ir.Value | None,
    y: QParams,
    y_q: ir.Value,
    attributes: dict[str, int | list[int]],
) -> Lowering:
    """Our ``op_type`` (QLinearConv or QGemm) with its inputs in ONNX QLinearConv's order: ``x``
    and its qparams, the int8 weight, its scale, zero points of 0 (one per scale value), ``y``'s
    qparams and the bias when there is one. ``x.nhwc`` says the layout of the input and output."""
    n = size(w_scale)
    w_zp = np.zeros(n if n > 1 else (), np.int8)
    inputs = (x, x.qp.scale, x.qp.zero_point, w_q, w_scale, w_zp, y.scale, y.zero_point, bias_q)
    return Lowering(
        anchor, op_type, inputs if bias_q is not None else inputs[:-1], attributes, y_q, y, nhwc=x.nhwc
    )


def dequantized(value: ir.Value | None) -> ir.Node | None:
    """The DequantizeLinear that makes ``value``, if one does."""
    node = value.producer() if value is not None else None
    return node if is_op(node, "DequantizeLinear") else None


def sole_reader(value: ir.Value) -> ir.Node | None:
    """The one node reading ``value`` (None when it has several readers or is a graph output)."""
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0].node


def quantized_output(node: ir.Node, fuse_relu: bool) -> tuple[ir.Node, str | None] | str:
    """The QuantizeLinear right after ``node`` (through a Relu when ``fuse_relu``), and the Relu's
    op type if one was passed, or why there is none."""
    last = node.outputs[0]
    nxt = sole_reader(last)
    activation = None
    if fuse_relu and is_op(nxt, "Relu"):
        assert nxt is not None
        activation = "Relu"
        last = nxt.outputs[0]
        nxt = sole_reader(last)
    if not is_op(nxt, "QuantizeLinear"):
        if last.is_graph_output() and not list(last.uses()):
            return "its output is a float graph output (no QuantizeLinear after it)"
        return "its output is not quantized right after it"
    assert nxt is not None
    return nxt, activation


def between_qdq(node: ir.Node) -> tuple[Act, QParams, ir.Value] | str:
    """``node``'s dequantized input (input 0) with its qparams, the qparams of the
    QuantizeLinear right after ``node`` and that Q's output; or why ``node`` is not between a DQ
    and a Q."""
    dq = dequantized(node.inputs[0])
    if dq is None or dq.inputs[0] is None:
        return "its input is not dequantized"
    x = activation_qparams(dq)
    if isinstance(x, str):
        return x
    out = output_qparams(node)
    if isinstance(out, str):
        return out
    return Act(dq.inputs[0], x), *out


def output_qparams(node: ir.Node) -> tuple[QParams, ir.Value] | str:
    """The qparams of the QuantizeLinear right after ``node`` and that Q's output, or why not."""
    found = quantized_output(node, fuse_relu=False)
    if isinstance(found, str):
        return found
    y = activation_qparams(found[0])
    if isinstance(y, str):
        return y
    return y, found[0].outputs[0]


def same_qparams_io(node: ir.Node, state: State) -> tuple[Act, QParams, ir.Value] | str:
    """The input and output of a ``node`` that moves uint8 values without computing new ones
    (MaxPool, nearest Resize): a uint8 tensor one of our ops made (QOperator models run such ops
    on the integers; its qparams pass through), or a DequantizeLinear before it and a
    QuantizeLinear with the same qparams right after it (QDQ). Returns the activation read, the
    output's qparams and the value our op's output replaces; or why not."""
    x_value = node.inputs[0]
    if x_value is not None and id(x_value) in state.twins:  # uint8 already (QOperator)
        qp = state.twins[id(x_value)]
        return Act(x_value, qp), qp, node.outputs[0]
    io = between_qdq(node)
    if isinstance(io, str):
        return io
    x, y, _ = io
    if (y.scale_value, y.zero_point_value) != (x.qp.scale_value, x.qp.zero_point_value):
        return "its output is quantized with other qparams than its input"
    return io


def relu_output(node: ir.Node) -> tuple[QParams, ir.Value, int, int] | str:
    """The QuantizeLinear right after ``node`` (through a Relu, fused): its qparams, its output,
    and the uint8 clamp ``(qmin, qmax)`` of the Relu (0, 255 without one); or why not."""
    found = quantized_output(node, fuse_relu=True)
    if isinstance(found, str):
        return found
    q, activation = found
    y = activation_qparams(q)
    if isinstance(y, str):
        return y
    qmin, qmax = clamp_bounds(activation, y.scale_value, y.zero_point_value)
    return y, q.outputs[0], qmin, qmax


def weighted_inputs(node: ir.Node, what: str) -> tuple[ir.Value, QParams, ir.Node] | str:
    """The dequantized activation of a conv or gemm ``node`` (input 0) with its qparams, and the
    DequantizeLinear of its weight (input 1); or why not (``what`` is added to the reason)."""
    dq_x, dq_w = dequantized(node.inputs[0]), dequantized(node.inputs[1])
    if dq_x is None or dq_w is None or dq_x.inputs[0] is None:
        return f"its input or weight is not dequantized{what}"
    x = activation_qparams(dq_x)
    if isinstance(x, str):
        return x
    return dq_x.inputs[0], x, dq_w


def clip_bounds(clip: ir.Node) -> tuple[float | None, float | None] | None:
    """A Clip's constant bounds (None for an absent one), or None when one is not a constant."""
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


def ints(node: ir.Node, name: str, default: list[int]) -> list[int]:
    """An ints attribute of ``node``, or ``default``."""
    attr = node.attributes.get(name)
    return list(attr.as_ints()) if attr is not None else default


def size(value: ir.Value) -> int:
    """The element count of a constant (0 when ``value`` is not one)."""
    arr = constant_array(value)
    return 0 if arr is None else int(arr.size)


__all__ = [
    "MATCHERS",
    "NCHW_TO_NHWC",
    "NHWC_TO_NCHW",
    "Act",
    "Lowering",
    "Matcher",
    "QParams",
    "Registered",
    "State",
    "activation_qparams",
    "between_qdq",
    "clamp_bounds",
    "clip_bounds",
    "dequantized",
    "ints",
    "output_qparams",
    "qparams",
    "quantize_value",
    "quantized_output",
    "register",
    "relu_output",
    "same_qparams_io",
    "size",
    "sole_reader",
    "weighted_inputs",
    "weighted_lowering",
]
