"""QDQ convolutions → onnxq's ``ai.onnxq.QLinearConv``, kept in NHWC from one conv to the next.

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


def clamp_bounds(activation: str | None, scale: np.float32, zero_point: int,
                 lo: float | None = None, hi: float | None = None) -> tuple[int, int]:  # fmt: skip
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
    """A per-tensor uint8 quantisation (the constants a Q/DQ node reads)."""

    scale: ir.Value
    zero_point: ir.Value
    scale_value: np.float32
    zero_point_value: int


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
    if zp.dtype != np.uint8:
        return f"{where} quantizes to {zp.dtype}: onnxq's ops take uint8 activations"
    if scale.dtype != np.float32 or not (np.isfinite(scale).all() and float(scale.reshape(-1)[0]) > 0):
        return f"the scale of {where} is not a finite float32 > 0"
    return _QParams(scale_value, zp_value, np.float32(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]))


@dataclass(frozen=True)
class _Match:
    conv: ir.Node
    x_q: ir.Value  # the uint8 NCHW tensor the conv's input dequantizes
    x: _QParams
    w_q: ir.Value
    w_scale: ir.Value
    w_channels: int
    bias_q: ir.Value | None
    y: _QParams
    y_q: ir.Value  # the uint8 NCHW tensor the conv's output quantizes to
    qmin: int
    qmax: int


def _dequantized(value: ir.Value | None) -> ir.Node | None:
    node = value.producer() if value is not None else None
    return node if is_op(node, "DequantizeLinear") else None


def _match(conv: ir.Node) -> _Match | str:
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
    weight = _weight(dq_w.inputs[0], dq_w.inputs[1] if len(dq_w.inputs) > 1 else None, w_zp,
                     dq_w.attributes.get_int("axis", 1))  # fmt: skip
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
    return _Match(conv, dq_x.inputs[0], x, dq_w.inputs[0], dq_w.inputs[1], int(w.shape[0]), bias_q, y,  # type: ignore[arg-type]
                  nxt.outputs[0], qmin, qmax)  # fmt: skip


def _weight(w_value: ir.Value | None, scale_value: ir.Value | None, zp_value: ir.Value | None,
            axis: int) -> np.ndarray | str:  # fmt: skip
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


def _match_qoperator(conv: ir.Node) -> _Match | str:
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
    return _Match(conv, ins[0], x, ins[3], ins[4], int(w.shape[0]), ins[8], y, conv.outputs[0], 0, 255)


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


class LowerConvToOnnxq(GraphPass):
    """Rewrite the QDQ convolutions of the main graph into ``ai.onnxq.QLinearConv``."""

    name = "lower_conv_to_onnxq"

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        names = NameAuthority(graph)
        notes: list[str] = []
        matches: list[_Match] = []
        for node in [n for n in graph if is_op(n, "Conv", "QLinearConv")]:
            found = _match(node) if node.op_type == "Conv" else _match_qoperator(node)
            if isinstance(found, str):
                kept = "stays QDQ" if node.op_type == "Conv" else "stays on onnxruntime's kernels"
                notes.append(f"{node.op_type} '{node.name}' {kept}: {found}")
            else:
                matches.append(found)
        if not matches:
            return PassResult(model, 0, tuple(notes))
        model.opset_imports[DOMAIN] = OPSET
        self._graph, self._names = graph, names
        self._nhwc: dict[int, ir.Value] = {}
        self._replaced = {id(m.conv) for m in matches}
        lowered: list[tuple[ir.Value, ir.Value, _QParams]] = []
        for m in matches:
            y_nhwc = self._lower(m)
            self._nhwc[id(m.y_q)] = y_nhwc
            lowered.append((m.y_q, y_nhwc, m.y))
        for y_q, y_nhwc, qp in lowered:
            self._restore_nchw(y_q, y_nhwc, qp)
        _remove_dead(graph)
        remove_unused_initializers(graph)
        graph.sort()
        logger.info("%s: %d conv(s) lowered", self.name, len(matches))
        return PassResult(model, len(matches), tuple(notes))

    def _lower(self, m: _Match) -> ir.Value:
        conv = m.conv
        w_zp = new_initializer(self._graph, np.zeros(m.w_channels if _size(m.w_scale) > 1 else (), np.int8),
                               self._names, f"{conv.name}_w_zero_point")  # fmt: skip
        inputs = [self._to_nhwc(m.x_q, m.x, conv), m.x.scale, m.x.zero_point, m.w_q, m.w_scale, w_zp,
                  m.y.scale, m.y.zero_point]  # fmt: skip
        if m.bias_q is not None:
            inputs.append(m.bias_q)
        y_nhwc = _permuted(m.y_q, NCHW_TO_NHWC, self._names.value(f"{m.y_q.name}_nhwc"))
        attributes = {
            "group": conv.attributes.get_int("group", 1),
            "strides": _ints(conv, "strides", [1, 1]),
            "pads": _ints(conv, "pads", [0, 0, 0, 0]),
            "dilations": _ints(conv, "dilations", [1, 1]),
            "qmin": m.qmin,
            "qmax": m.qmax,
        }
        node = ir.node("QLinearConv", inputs, attributes, domain=DOMAIN, outputs=[y_nhwc],
                       name=self._names.node(conv.name))  # fmt: skip
        self._graph.insert_before(conv, node)
        return y_nhwc

    def _to_nhwc(self, x_q: ir.Value, qp: _QParams, before: ir.Node) -> ir.Value:
        """The NHWC twin of the uint8 NCHW tensor ``x_q`` (made once)."""
        if id(x_q) in self._nhwc:
            return self._nhwc[id(x_q)]
        made = x_q.producer()
        out = _permuted(x_q, NCHW_TO_NHWC, self._names.value(f"{x_q.name}_nhwc"))
        if is_op(made, "QuantizeLinear") and made is not None and made.inputs[0] is not None:
            same = _activation_qparams(made)
            if isinstance(same, _QParams) and same.scale_value == qp.scale_value:
                node = ir.node("Quantize", [made.inputs[0], same.scale, same.zero_point],
                               {"layout": "nchw_to_nhwc"}, domain=DOMAIN, outputs=[out],
                               name=self._names.node(f"{made.name}_nhwc"))  # fmt: skip
                self._graph.insert_after(made, node)
                self._nhwc[id(x_q)] = out
                return out
        node = ir.node("Transpose", [x_q], {"perm": list(NCHW_TO_NHWC)}, outputs=[out],
                       name=self._names.node(f"{x_q.name}_to_nhwc"))  # fmt: skip
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
            if id(reader) in self._replaced:  # a lowered QLinearConv: it reads the NHWC twin
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
                    node = ir.node("Dequantize", [y_nhwc, same.scale, same.zero_point],
                                   {"layout": "nhwc_to_nchw"}, domain=DOMAIN, outputs=[twin],
                                   name=names.node(f"{reader.name}_nchw"))  # fmt: skip
                    graph.insert_after(reader, node)
                    replace_all_uses(out, twin, names)
                    continue
            if back is None:
                back = self._transpose_back(y_q, y_nhwc)
            for use in list(y_q.uses()):
                if use.node is reader:
                    reader.replace_input_with(use.idx, back)
        if y_q.is_graph_output():
            replace_all_uses(y_q, back if back is not None else self._transpose_back(y_q, y_nhwc), names)

    def _transpose_back(self, y_q: ir.Value, y_nhwc: ir.Value) -> ir.Value:
        back = ir.Value(name=self._names.value(f"{y_q.name}_nchw"), shape=y_q.shape, type=y_q.type)
        node = ir.node("Transpose", [y_nhwc], {"perm": list(NHWC_TO_NCHW)}, outputs=[back],
                       name=self._names.node(f"{y_q.name}_to_nchw"))  # fmt: skip
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


__all__ = ["LowerConvToOnnxq", "clamp_bounds", "quantize_value"]
