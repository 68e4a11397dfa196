"""QDQ (and QOperator) int8 ops → onnxq's ``ai.onnxq`` ops, kept in NHWC from one op to the next.

The matchers (one op family per module in :mod:`onnxq.passes.lowering`, with each pattern's maths)
say what replaces a node, or why it stays; this pass applies what they return and keeps the
layouts right at the edges. Lowered: Conv (+Relu/Clip) and QLinearConv → ``QLinearConv``; Add
(+Relu) → ``QLinearAdd``; MaxPool → ``MaxPool``; GlobalAveragePool → ``QLinearGlobalAveragePool``;
Flatten of a pooled tensor; Gemm → ``QGemm``; Concat → ``QLinearConcat``; nearest Resize → a
standard Resize of the NHWC twin.

Activations between two lowered ops stay NHWC uint8: the first op's input comes from
``ai.onnxq.Quantize`` (``layout=nchw_to_nhwc``) when a QuantizeLinear made it, else from a
``Transpose``; a consumer that is not lowered reads NCHW again, through ``ai.onnxq.Dequantize``
(``layout=nhwc_to_nchw``) where it was a DequantizeLinear, else through a ``Transpose``. An int8
tensor runs as its uint8 twin (:class:`onnxq.passes.lowering.common.QParams`); where a reader
that is not lowered needs the int8 bytes, the original QDQ path stays. Every pattern that does not
match stays QDQ (onnxruntime's kernels) and is named, with the reason, in the pass notes.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, is_op, new_initializer, remove_unused_initializers, replace_all_uses
from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.passes.base import GraphPass, PassResult
from onnxq.passes.lowering import MATCHERS
from onnxq.passes.lowering.common import (
    NCHW_TO_NHWC,
    NHWC_TO_NCHW,
    Act,
    Lowering,
    QParams,
    State,
    activation_qparams,
    clamp_bounds,
    quantize_value,
)

logger = logging.getLogger(__name__)


class LowerToOnnxq(GraphPass):
    """Rewrite the int8 ops of the main graph that onnxq's ops cover into the ``ai.onnxq`` domain."""

    name = "lower_to_onnxq"

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        self._graph, self._names = graph, NameAuthority(graph)
        self._nhwc: dict[int, ir.Value] = {}
        self._plain: dict[int, ir.Value] = {}
        self._state = State({}, set())
        self._replaced: set[int] = set()
        notes: list[str] = []
        lowered: list[Lowering] = []
        for node in list(graph):
            domain = "" if node.domain in ("", "ai.onnx") else node.domain
            matcher = MATCHERS.get((domain, node.op_type))
            if matcher is None:
                continue
            found = matcher.match(node, self._state)
            if isinstance(found, str):
                if matcher.noted and found:  # "": not a candidate (a float op)
                    qdq = domain == "" and not node.op_type.startswith("QLinear")  # a float op
                    kept = "stays QDQ" if qdq else "stays on onnxruntime's kernels"
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

    def _lower(self, low: Lowering) -> None:
        inputs: list[ir.Value | None] = []
        for item in low.inputs:
            if isinstance(item, Act):
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

    def _to_nhwc(self, x_q: ir.Value, qp: QParams, before: ir.Node) -> ir.Value:
        """The NHWC twin of the uint8 NCHW tensor ``x_q`` (made once): from the float tensor a
        QuantizeLinear made it of, else a Transpose of ``x_q`` (or of the NCHW tensor one of our
        ops makes in its place)."""
        if id(x_q) in self._nhwc:
            return self._nhwc[id(x_q)]
        plain = self._plain.get(id(x_q))
        made = x_q.producer() if plain is None else plain.producer()
        out = _permuted(x_q, NCHW_TO_NHWC, self._names.value(f"{x_q.name}_nhwc"))
        if (
            plain is None
            and is_op(made, "QuantizeLinear")
            and made is not None
            and made.inputs[0] is not None
        ):
            same = activation_qparams(made)
            if isinstance(same, QParams) and same.scale_value == qp.scale_value:
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
            [x_q if plain is None else plain],
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

    def _restore_nchw(self, y_q: ir.Value, y_nhwc: ir.Value, qp: QParams) -> None:
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
                same = activation_qparams(reader)
                if isinstance(same, QParams) and (same.scale_value, same.zero_point_value) == (
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

    def _restore_plain(self, y_q: ir.Value, twin: ir.Value, qp: QParams) -> None:
        """Readers of ``y_q``, made by an op of ours in its own layout, read ``twin``: directly when
        it is ``y_q``'s bytes (uint8), through ``ai.onnxq.Dequantize`` where they dequantize an
        int8 ``y_q``; other readers of an int8 ``y_q`` keep the original."""
        if not qp.signed:
            replace_all_uses(y_q, twin, self._names)
            return
        for reader in list({id(u.node): u.node for u in y_q.uses()}.values()):
            same = activation_qparams(reader) if is_op(reader, "DequantizeLinear") else None
            if not isinstance(same, QParams) or (same.scale_value, same.zero_point_value) != (
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

    def _unreadable(self, low: Lowering) -> str | None:
        """Why an int8 input of ``low`` cannot reach an op of ours (None when all can): its uint8
        twin exists only where one of our ops or a QuantizeLinear of a float tensor makes it."""
        for item in low.inputs:
            if not isinstance(item, Act) or not item.qp.signed:
                continue
            value = item.value
            ours = id(value) in self._plain or (item.nhwc and id(value) in self._nhwc)
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
