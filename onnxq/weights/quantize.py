"""The weight stage: every planned weight quantized by a weight method, every bias as int32.

:func:`quantize_weights` turns a plan's :class:`~onnxq.planning.plan.WeightPlan` entries into a
:class:`QuantizedWeights` value that :class:`~onnxq.passes.insert_qdq.InsertQDQ` stores in the
model. A weight read by several nodes with the same spec and granularity is quantized once (one
:class:`QuantizedTensor`, one DequantizeLinear). A bias needs its input's scale (``scale_x *
scale_w``), so it comes from the activation parameters resolved from calibration. Given the
means of the layers' inputs, each float bias is first corrected for the output shift its weight's
rounding causes (:mod:`onnxq.weights.bias_correction`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.errors import OnnxqError
from onnxq.graph import constant_array, int_attr, iter_graphs
from onnxq.planning.plan import QuantPlan
from onnxq.planning.tensor_groups import values_by_name
from onnxq.planning.weight_plan import WeightPlan
from onnxq.qparams import QParams, dequantize
from onnxq.weights.bias import bias_qparams
from onnxq.weights.bias_correction import corrected_bias
from onnxq.weights.registry import QuantizedTensor, WeightRequest, weight_method_call

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class QuantizedBias:
    """An int32 bias, its float32 scale, and the axis of that scale (0 per channel, None per tensor)."""

    values: np.ndarray
    scale: np.ndarray
    axis: int | None


@dataclass(frozen=True, eq=False)
class NodeWeights:
    """The quantized weight of one node and, when it is stored as int32, its bias."""

    weight: QuantizedTensor
    bias: QuantizedBias | None = None


@dataclass(frozen=True)
class QuantizedWeights:
    """The weight stage's result: which method made it, and each weighted node's tensors."""

    method: str
    nodes: Mapping[str, NodeWeights]


def quantize_weights(
    plan: QuantPlan,
    model: ir.Model,
    act_qparams: Mapping[int, QParams],
    method: str = "rtn",
    input_means: Mapping[str, np.ndarray] | None = None,
    layer_inputs: Mapping[str, np.ndarray] | None = None,
    method_config: object | None = None,
) -> QuantizedWeights:
    """Quantize every weight of ``plan`` with the weight method registered as ``method``.

    ``act_qparams`` are the activation parameters by tensor group (biases need their input's
    scale). ``input_means`` (bias correction), by input tensor name: the per-channel mean of each
    layer's input; the biases of the layers reading one are corrected before they become int32.
    ``layer_inputs``, by node name: a sample of each layer's input rows (``WeightRequest.inputs``).
    ``method_config``: the method's settings (e.g. an ``AdaRoundConfig``; default: its defaults).
    The model is not changed.
    """
    fn = weight_method_call(method, method_config)
    values = values_by_name(model.graph)
    nodes = {node.name: node for graph in iter_graphs(model.graph) for node in graph}
    shared: dict[tuple[str, object, str], QuantizedTensor] = {}
    out: dict[str, NodeWeights] = {}
    for wp in plan.weights.values():
        input_qp = None if wp.activation is None else act_qparams[plan.group_of[wp.activation]]
        key = (wp.weight, wp.granularity, json.dumps(wp.spec.to_dict(), sort_keys=True))
        if key not in shared:
            w = constant_array(values[wp.weight])
            assert w is not None
            node = nodes[wp.node]
            request = WeightRequest(
                wp.node, node.op_type, np.asarray(w, np.float32), wp.spec, wp.granularity, input_qp,
                inputs=None if layer_inputs is None else layer_inputs.get(wp.node),
                trans_b=bool(int_attr(node, "transB", 0)),
            )  # fmt: skip
            shared[key] = _checked(fn(request), request, method)
        weight = shared[key]
        mean = None if input_means is None or wp.activation is None else input_means.get(wp.activation)
        correction = None if mean is None else (nodes[wp.node], constant_array(values[wp.weight]), mean)
        out[wp.node] = NodeWeights(weight, _bias(wp, values, input_qp, weight, correction))
    logger.info("weights: %d tensor(s) quantized with %r for %d node(s)", len(shared), method, len(out))
    return QuantizedWeights(method, out)


def _bias(
    wp: WeightPlan,
    values: Mapping[str, ir.Value],
    input_qp: QParams | None,
    weight: QuantizedTensor,
    correction: tuple[ir.Node, np.ndarray | None, np.ndarray] | None,
) -> QuantizedBias | None:
    if wp.bias is None or input_qp is None:
        return None
    b = constant_array(values[wp.bias])
    assert b is not None
    w_qp = weight.qparams
    if correction is not None:
        node, w, mean = correction
        assert w is not None
        fixed = corrected_bias(node, b, w, dequantize(weight.values, w_qp), mean)
        b = b if fixed is None else fixed
    q, scale = bias_qparams(b, input_qp.scale, w_qp.scale, wp.bias_repeats)
    return QuantizedBias(q, scale, None if w_qp.axis is None else 0)


def _checked(result: object, request: WeightRequest, method: str) -> QuantizedTensor:
    """``result`` if it is what the request asked for, else an error naming the method and weight."""
    where = f"weight method {method!r} on the weight of node '{request.node}'"
    if not isinstance(result, QuantizedTensor):
        raise OnnxqError(f"{where} returned {type(result).__name__}, expected QuantizedTensor")
    if result.values.shape != request.weight.shape:
        raise OnnxqError(f"{where} returned shape {result.values.shape}, expected {request.weight.shape}")
    if result.qparams.dtype != request.spec.dtype or result.qparams.granularity != request.granularity:
        raise OnnxqError(
            f"{where} returned {result.qparams.dtype} {result.qparams.granularity}, expected "
            f"{request.spec.dtype} {request.granularity}"
        )
    return result


__all__ = ["NodeWeights", "QuantizedBias", "QuantizedWeights", "quantize_weights"]
