"""Which tensor of a QDQ model is which tensor of its fp32 model, found from the graphs alone.

A float tensor ``X`` of the fp32 model is quantized in the QDQ model as
``X -> QuantizeLinear -> DequantizeLinear -> readers``: the QuantizeLinear's float input keeps
``X``'s name (onnxq's :class:`~onnxq.passes.insert_qdq.InsertQDQ` and onnxruntime's
``quantize_static`` both do so), except for a graph output, whose name the DequantizeLinear output
takes over. So a match needs no in-memory Q/DQ map and works on two model files of any tool.
QuantizeLinear nodes whose input has no counterpart in the fp32 model (a tensor a rewrite created,
such as a folded BatchNorm's) are listed as unmatched.

Each match carries the activation's quantization (scale, zero point, integer range) and the
weights of the node that produces it (the DequantizeLinear of an integer initializer, biases
excepted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.errors import OnnxqError
from onnxq.graph import constant_array, consumers, is_op, producer


@dataclass(frozen=True)
class Quantization:
    """One Q/DQ pair's parameters: ``DQ(q) = (q - zero_point) * scale``, ``qmin <= q <= qmax``."""

    scale: np.ndarray
    zero_point: np.ndarray
    qmin: int
    qmax: int

    @property
    def range(self) -> tuple[float, float]:
        """The float values the integer type represents (over all channels)."""
        lo = (self.qmin - self.zero_point.astype(np.float64)) * self.scale
        hi = (self.qmax - self.zero_point.astype(np.float64)) * self.scale
        return float(np.min(lo)), float(np.max(hi))


@dataclass(frozen=True)
class WeightMatch:
    """A constant weight behind a DequantizeLinear that the layer reads."""

    name: str
    quantization: Quantization
    values: np.ndarray  # dequantized


@dataclass(frozen=True)
class TensorMatch:
    """One quantized activation: its fp32 name, the QDQ model's names, its quantization."""

    name: str
    op_type: str
    quantize_input: str
    dequantized: str
    quantization: Quantization
    weights: tuple[WeightMatch, ...]


def check_interfaces(float_model: ir.Model, quantized_model: ir.Model) -> None:
    """Refuse, in one line, models whose graph inputs or outputs differ in name."""
    for what in ("inputs", "outputs"):
        a = [v.name for v in getattr(float_model.graph, what)]
        b = [v.name for v in getattr(quantized_model.graph, what)]
        if sorted(a) != sorted(b):  # type: ignore[type-var]
            raise OnnxqError(
                f"the models' {what} differ: float model {a}, quantized model {b}; "
                "compare a model with its own quantized version"
            )


def _quantization(node: ir.Node) -> Quantization | None:
    scale = constant_array(node.inputs[1] if len(node.inputs) > 1 else None)
    if scale is None:
        return None
    zp_value = node.inputs[2] if len(node.inputs) > 2 else None
    zp = constant_array(zp_value)
    if zp is None:
        zp = np.zeros((), np.uint8 if is_op(node, "QuantizeLinear") else np.int8)
    dtype = zp.dtype if np.issubdtype(zp.dtype, np.integer) else np.dtype(np.int8)
    info = np.iinfo(dtype)
    return Quantization(scale.astype(np.float64), zp.astype(np.int64), int(info.min), int(info.max))


def _weights(node: ir.Node | None) -> tuple[WeightMatch, ...]:
    found = []
    for value in node.inputs if node is not None else ():
        dq = producer(value) if value is not None else None
        if not is_op(dq, "DequantizeLinear") or dq is None:
            continue
        q = constant_array(dq.inputs[0])
        quant = _quantization(dq)
        if q is None or quant is None or q.dtype == np.int32:  # an int32 bias
            continue
        axis = dq.attributes.get_int("axis", 1) if quant.scale.ndim == 1 and quant.scale.size > 1 else None
        shape = [1] * q.ndim
        if axis is not None:
            shape[axis % q.ndim] = -1
        values = (q.astype(np.float64) - quant.zero_point.reshape(shape)) * quant.scale.reshape(shape)
        found.append(WeightMatch(str(dq.inputs[0].name), quant, values.astype(np.float32)))
    return tuple(found)


def _layer_weights(x: ir.Value) -> tuple[WeightMatch, ...]:
    """The weights of the layer computing ``x``: its producer's, or, through float activations
    that follow it (``Conv -> Relu``), the nearest producer up the chain that has some."""
    node = producer(x)
    for _ in range(4):
        if node is None or is_op(node, "DequantizeLinear"):
            return ()
        found = _weights(node)
        if found or not node.inputs or node.inputs[0] is None:
            return found
        node = producer(node.inputs[0])
    return ()


def match_tensors(float_model: ir.Model, quantized_model: ir.Model) -> tuple[list[TensorMatch], list[str]]:
    """The quantized activations of ``quantized_model`` matched to ``float_model``'s tensors, in
    graph order, and the names of QuantizeLinear inputs that have no match."""
    float_names = {str(v.name) for v in float_model.graph.inputs}
    float_names |= {str(o.name) for n in float_model.graph for o in n.outputs}
    float_producers = {str(o.name): n.op_type for n in float_model.graph for o in n.outputs}
    matches: list[TensorMatch] = []
    unmatched: list[str] = []
    seen: set[str] = set()
    for node in quantized_model.graph:
        if (
            not is_op(node, "QuantizeLinear")
            or node.inputs[0] is None
            or constant_array(node.inputs[0]) is not None
        ):
            continue
        x = node.inputs[0]
        dqs = [c for c in consumers(node.outputs[0]) if is_op(c, "DequantizeLinear")]
        quant = _quantization(node)
        if not dqs or quant is None:
            continue
        dequantized = str(dqs[0].outputs[0].name)
        name = str(x.name) if x.name in float_names else dequantized if dequantized in float_names else None
        if name is None or name in seen:
            if name is None:
                unmatched.append(str(x.name))
            continue
        seen.add(name)
        op_type = float_producers.get(name, "input")
        matches.append(TensorMatch(name, op_type, str(x.name), dequantized, quant, _layer_weights(x)))
    return matches, unmatched


__all__ = ["Quantization", "TensorMatch", "WeightMatch", "check_interfaces", "match_tensors"]
