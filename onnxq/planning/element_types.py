"""Element types of the values of a graph, for deciding what may be quantized (float32 only).

In order of preference: the type the model records; onnx type inference (run once, on demand, on
a serialised copy, so the model is not changed); and, where inference fails (big or unusual
models), forward propagation through ops whose output has the element type of their first input
(``Conv``, ``Relu``, ``Reshape``, ``Gather``...). Anything else stays unknown.
"""

from __future__ import annotations

import logging

import onnx
import onnx_ir as ir

from onnxq.graph import is_op, iter_graphs

logger = logging.getLogger(__name__)

#: ONNX ops whose (first) output has the element type of their first input.
SAME_TYPE_AS_INPUT0 = frozenset({
    "Abs", "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Conv", "ConvTranspose",
    "Div", "Elu", "Erf", "Exp", "Expand", "Flatten", "Gather", "Gelu", "Gemm", "GlobalAveragePool",
    "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "LayerNormalization",
    "LeakyRelu", "Log", "LpNormalization", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "Pad",
    "Pow", "PRelu", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "Relu", "Reshape", "Resize",
    "Selu", "Sigmoid", "Slice", "Softmax", "Softplus", "Split", "Sqrt", "Squeeze", "Sub", "Sum",
    "Tanh", "Tile", "Transpose", "Unsqueeze",
})  # fmt: skip


class ElementTypes:
    """``types(value) -> ir.DataType | None`` for the values of one model (see the module docstring)."""

    def __init__(self, model: ir.Model) -> None:
        self._model = model
        self._inferred: dict[str, ir.DataType] | None = None

    def __call__(self, value: ir.Value) -> ir.DataType | None:
        if value.dtype is not None:
            return value.dtype
        if self._inferred is None:
            self._inferred = self._infer()
            self._propagate(self._inferred)
        return self._inferred.get(value.name or "")

    def _infer(self) -> dict[str, ir.DataType]:
        from onnxq.io import to_proto

        try:
            proto = onnx.shape_inference.infer_shapes(to_proto(self._model))
        except Exception as e:  # onnx raises several types; propagation fills in what it can
            logger.debug("type inference failed: %s", e)
            return {}
        return {
            vi.name: ir.DataType(vi.type.tensor_type.elem_type)
            for graph in _proto_graphs(proto.graph)
            for vi in (*graph.value_info, *graph.output)
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type
        }

    def _propagate(self, types: dict[str, ir.DataType]) -> None:
        def known(v: ir.Value | None) -> ir.DataType | None:
            if v is None:
                return None
            return v.dtype or types.get(v.name or "")

        for node in (n for g in iter_graphs(self._model.graph) for n in g):  # outer graphs first, in order
            if not is_op(node, *SAME_TYPE_AS_INPUT0):
                continue
            source = known(node.inputs[0]) if node.inputs else None
            outputs = node.outputs if node.op_type == "Split" else node.outputs[:1]
            for out in outputs:
                if source is not None and known(out) is None:
                    types[out.name or ""] = source


def _proto_graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """``graph`` and the bodies in its nodes' attributes, nested too."""
    found = [graph]
    for node in graph.node:
        for attr in node.attribute:
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                found.extend(_proto_graphs(sub))
    return found


__all__ = ["SAME_TYPE_AS_INPUT0", "ElementTypes"]
