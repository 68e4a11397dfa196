"""Every int8 tensor of a quantized model as uint8: its exact U8U8 twin for onnxruntime.

Each int8 quantity ``q`` (a weight, an activation, or the zero point ``zp`` it comes with) becomes::

    q' = q + 128 (uint8),   zp' = zp + 128 (uint8),   so   q' - zp' = q - zp   exactly,

and ``QuantizeLinear`` with ``zp'`` saturates to [0, 255] exactly where the original saturated to
[-128, 127] (``clamp(round(x / s) + zp, -128, 127) + 128 = clamp(round(x / s) + zp', 0, 255)``).
Every value a quantization op computes is therefore unchanged, and the ops that only move or
compare integers (Reshape, Transpose, MaxPool, Concat, ...) commute with the shift: the twin is
the same model, bit for bit, for any exact executor.

Why it exists: onnxruntime's x86 kernels for uint8 activations x int8 weights (U8S8) on CPUs with
AVX2 but without VNNI multiply with ``vpmaddubsw``, which sums each pair of u8 x s8 products in
int16 and *saturates* at 2^15 - 1 (255 * 127 * 2 = 64770 does not fit); int8 activations are run
on the same kernels after adding 128. There, a model's int8 results depend on the CPU. Its U8U8
kernels widen both operands to int16: exact on every CPU. The twin therefore gives the model's
exact integer results on onnxruntime anywhere (at the U8U8 kernels' speed): what onnxq compares
its own kernels with, and what a user deploying to such CPUs can run.
:func:`onnxq.runtime.ort_u8s8_saturates` tells whether this onnxruntime saturates on this CPU.

onnxq's own ops (domain ``ai.onnxq``, exact on every CPU) keep their int8 tensors as they are.
The pass refuses (changes nothing, with a note naming the node) when an int8 tensor is a graph
input or output, is read by an op outside the two known sets below, or is shared by one of
onnxq's ops and another op, or when an omitted zero point has no known shape: there the shift
could change what the model computes.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_ir as ir

from onnxq.errors import UnsupportedModelError
from onnxq.graph import NameAuthority, constant_array, is_onnx_domain, iter_graphs, new_initializer
from onnxq.io import to_proto
from onnxq.kernels.custom_ops import DOMAIN
from onnxq.passes.base import GraphPass, PassResult
from onnxq.passes.shapes import infer_shapes
from onnxq.runtime import ort_u8s8_saturates

logger = logging.getLogger(__name__)

MS = "com.microsoft"
# Ops whose every int8 input and output is a quantized tensor or its zero point.
QUANTIZED_OPS = frozenset(
    [("", op) for op in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                         "MatMulInteger", "ConvInteger")]
    + [(MS, op) for op in ("QLinearConv", "QGemm", "QLinearAdd", "QLinearMul", "QLinearConcat",
                           "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSigmoid",
                           "QLinearLeakyRelu", "QLinearSoftmax", "DynamicQuantizeMatMul",
                           "MatMulIntegerToFloat", "DynamicQuantizeLSTM", "QuantizeLinear",
                           "DequantizeLinear")]
)  # fmt: skip
# Ops that move, select or compare integers, so that a shift of every element commutes with them.
SHIFT_EQUIVARIANT_OPS = frozenset(
    ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Concat", "Split",
     "Slice", "Gather", "Expand", "Tile", "MaxPool", "GlobalMaxPool", "ReduceMax", "ReduceMin",
     "DepthToSpace", "SpaceToDepth", "Shape", "Size")
)  # fmt: skip
# Where a zero point may be left out (it is then 0 of the data's type): (data index, zero-point
# index, index of the scale whose shape it takes, or None for a scalar).
OPTIONAL_ZERO_POINTS: dict[tuple[str, str], tuple[tuple[int, int, int | None], ...]] = {
    ("", "DequantizeLinear"): ((0, 2, 1),),
    ("", "MatMulInteger"): ((0, 2, None), (1, 3, None)),
    ("", "ConvInteger"): ((0, 2, None), (1, 3, None)),
    (MS, "DynamicQuantizeMatMul"): ((1, 3, 2),),
    (MS, "MatMulIntegerToFloat"): ((0, 4, 2), (1, 5, 3)),
}


def shift_to_uint8(q: np.ndarray) -> np.ndarray:
    """``q + 128`` as uint8: the int8 array's twin (and its zero point's)."""
    if q.dtype != np.int8:
        raise TypeError(f"shift_to_uint8 takes an int8 array, got {q.dtype}")
    return (q.astype(np.int16) + 128).astype(np.uint8)


def _op(node: ir.Node) -> tuple[str, str]:
    return ("" if is_onnx_domain(node.domain) else node.domain, node.op_type)


def _is_int8(value: ir.Value | None) -> bool:
    return value is not None and value.dtype == ir.DataType.INT8


def _static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    if value is None or value.shape is None or not all(isinstance(d, int) for d in value.shape):
        return None
    return tuple(int(d) for d in value.shape)


def _int8_values(node: ir.Node) -> list[ir.Value]:
    return [v for v in (*node.inputs, *node.outputs) if _is_int8(v)]


def _refusal(graph: ir.Graph) -> str | None:
    """Why the graph cannot be shifted, or None."""
    for value in (*graph.inputs, *graph.outputs):
        if _is_int8(value):
            return f"int8 graph input/output '{value.name}'"
    ours = {id(v) for node in graph if node.domain == DOMAIN for v in _int8_values(node)}
    for node in graph:
        op = _op(node)
        if node.domain == DOMAIN:
            continue
        if not (op in QUANTIZED_OPS or (op[0] == "" and op[1] in SHIFT_EQUIVARIANT_OPS)):
            if _int8_values(node):
                return f"node '{node.name}' ({node.op_type}) reads or writes int8"
        elif any(id(v) in ours for v in _int8_values(node)):
            return f"node '{node.name}' ({node.op_type}) shares an int8 tensor with onnxq's ops"
    return None


REFUSED = "uint8_twin: left unchanged: "  # the start of the pass's one note when it refuses


def _missing_zero_points(graph: ir.Graph) -> list[tuple[ir.Node, int, tuple[int, ...]]] | str:
    """The zero points the graph's int8 inputs leave out, as (node, input index, shape), or why
    one cannot be written."""
    missing = []
    for node in graph:
        for data, zp, scale in OPTIONAL_ZERO_POINTS.get(_op(node), ()):
            absent = zp >= len(node.inputs) or node.inputs[zp] is None
            if not (absent and data < len(node.inputs) and _is_int8(node.inputs[data])):
                continue
            shape = () if scale is None else _static_shape(node.inputs[scale])
            if shape is None:
                return f"the zero point of node '{node.name}' has no known shape"
            missing.append((node, zp, shape))
    return missing


class Uint8Twin(GraphPass):
    """Rewrite a quantized model so that every int8 tensor is uint8 (see the module docstring)."""

    name = "uint8_twin"

    def call(self, model: ir.Model) -> PassResult:
        graphs = list(iter_graphs(model.graph))
        reason = infer_shapes(model)  # every int8 value must be known as such
        plans = []
        for graph in graphs if reason is None else ():
            reason = _refusal(graph)
            missing = _missing_zero_points(graph) if reason is None else []
            if isinstance(missing, str):
                reason = missing
            if reason is not None:
                break
            plans.append((graph, missing))
        if reason is not None:  # checked before anything changes
            return PassResult(model, 0, (REFUSED + reason,))
        count = 0
        for graph, missing in plans:
            names = NameAuthority(graph)
            for node, zp, shape in missing:  # explicit zeros, so that they shift with their data
                if zp >= len(node.inputs):
                    node.resize_inputs(zp + 1)
                node.replace_input_with(
                    zp, new_initializer(graph, np.zeros(shape, np.int8), names, f"{node.name}_zero_point")
                )
            count += self._shift(graph, names)
        if count:
            logger.info("%s: %d int8 tensor(s) stored as uint8", self.name, count)
        return PassResult(model, count)

    @staticmethod
    def _shift(graph: ir.Graph, names: NameAuthority) -> int:
        """Shift the graph's int8 constants by 128 and retype its int8 values; returns how many."""
        count = 0
        values = {id(v): v for node in graph if node.domain != DOMAIN for v in _int8_values(node)}
        for value in values.values():
            array = constant_array(value)
            if array is None:
                value.type = ir.TensorType(ir.DataType.UINT8)
            elif value.const_value is not None:
                value.const_value = ir.tensor(shift_to_uint8(array), name=value.name)
                value.type = ir.TensorType(ir.DataType.UINT8)
            else:  # a Constant node's output: a new initializer takes its place for every reader
                shifted = new_initializer(graph, shift_to_uint8(array), names, f"{value.name}_u8")
                for use in list(value.uses()):
                    use.node.replace_input_with(use.idx, shifted)
            count += 1
        return count


def uint8_twin(model: onnx.ModelProto | ir.Model) -> onnx.ModelProto:
    """The uint8 twin of ``model`` as a new proto (``model`` is not changed); an
    :class:`~onnxq.errors.UnsupportedModelError` of one line when the pass refuses it."""
    proto = model if isinstance(model, onnx.ModelProto) else to_proto(model)
    twin = ir.serde.deserialize_model(proto)
    result = Uint8Twin()(twin)
    if result.notes:
        raise UnsupportedModelError(f"no uint8 twin: {result.notes[0].removeprefix(REFUSED)}")
    return to_proto(twin) if result.count else proto


#: Largest magnitude of an int8 weight for which a pair of u8 x s8 products fits int16
#: (255 * 64 * 2 = 32640): 7-bit weights (``reduce_range``) run exactly on ``vpmaddubsw``.
EXACT_WEIGHT_MAX = 64


def saturates_here(model: onnx.ModelProto) -> bool:
    """True when ``model`` holds int8 tensors of magnitude over 64 and this onnxruntime's u8 x s8
    kernels saturate on this CPU: its results there are not the model's exact integers. 7-bit
    weights (``[-64, 64]``) keep every pair sum inside int16, so onnxruntime is exact on them."""
    if not ort_u8s8_saturates():
        return False
    for t in model.graph.initializer:
        if t.data_type == onnx.TensorProto.INT8:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                return True  # not read here: may hold anything
            values = onnx.numpy_helper.to_array(t)
            if values.size and int(np.abs(values.astype(np.int16)).max()) > EXACT_WEIGHT_MAX:
                return True
    return False


def exact_on_onnxruntime(model: onnx.ModelProto | ir.Model) -> onnx.ModelProto:
    """``model`` as a proto where this onnxruntime's u8 x s8 kernels are exact on this CPU, else
    its uint8 twin (:func:`onnxq.runtime.ort_u8s8_saturates`): the model's exact integer results
    on onnxruntime either way (a model the twin cannot take is returned as it is). ``model``
    itself is not changed."""
    proto = model if isinstance(model, onnx.ModelProto) else to_proto(model)
    if not ort_u8s8_saturates():
        return proto
    try:
        return uint8_twin(proto)
    except UnsupportedModelError:
        return proto


__all__ = [
    "OPTIONAL_ZERO_POINTS",
    "QUANTIZED_OPS",
    "SHIFT_EQUIVARIANT_OPS",
    "Uint8Twin",
    "exact_on_onnxruntime",
    "saturates_here",
    "shift_to_uint8",
    "uint8_twin",
]
