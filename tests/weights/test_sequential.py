"""Sequential Hessians: stages from the graph, each layer's Hessian taken on the outputs of the
quantized layers before it (checked against numpy), the model given back unchanged, a lower output
error for the later layer on the inputs it meets, and data that can be read only once refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from onnxq.errors import ConfigError
from onnxq.planning.weight_only import (
    build_weight_only_plan,
    check_weight_only_op_types,
    weight_only_format,
    weight_only_spec,
)
from onnxq.qparams import dequantize
from onnxq.scheme import PerBlock
from onnxq.weights.gptq import gptq_quantize
from onnxq.weights.hessian import layer_hessians
from onnxq.weights.sequential import planned_stages, sequential_hessians
from onnxq.weights.weight_only import dequantize_weight, quantize_weight_only

K = 64
RNG = np.random.default_rng(0)
W1 = RNG.normal(size=(K, K)).astype(np.float32) / 8
W1[0] = 3.0  # one large weight in each block: int4 rounds the others coarsely
W2 = RNG.normal(size=(K, K)).astype(np.float32) / 8
W3 = RNG.normal(size=(K, K)).astype(np.float32) / 8
#: Inputs of 8 strong directions and 56 faint ones: rounding W1 adds noise of every direction to
#: mm2's inputs, so the quantized model's Hessian there differs most from the fp32 model's.
MIX = (np.diag([1.0] * 8 + [0.01] * (K - 8)) @ np.linalg.qr(RNG.normal(size=(K, K)))[0]).astype(np.float32)


def _model() -> ir.Model:
    """``y = tanh(x W1) W2``, and ``x W3`` beside them (the same stage as ``W1``)."""
    nodes = [h.make_node("MatMul", ["x", "W1"], ["a"], name="mm1"),
             h.make_node("Tanh", ["a"], ["r"], name="tanh"),
             h.make_node("MatMul", ["r", "W2"], ["y"], name="mm2"),
             h.make_node("MatMul", ["x", "W3"], ["z"], name="mm3")]  # fmt: skip
    graph = h.make_graph(
        nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [16, K])],
        [h.make_tensor_value_info("y", T.FLOAT, [16, K]), h.make_tensor_value_info("z", T.FLOAT, [16, K])],
        [nh.from_array(W1, "W1"), nh.from_array(W2, "W2"), nh.from_array(W3, "W3")],
    )  # fmt: skip
    return ir.from_proto(h.make_model(graph, opset_imports=[h.make_opsetid("", 21)]))


def _data(batches: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(size=(16, K)).astype(np.float32) @ MIX} for _ in range(batches)]


def _plan(model: ir.Model, block: int):
    spec = weight_only_spec("int4", block, True)
    return spec, build_weight_only_plan(model.graph, spec, check_weight_only_op_types(None),
                                        weight_only_format("qdq"), set())  # fmt: skip


def _rounder(d, w, hessian):
    return quantize_weight_only(w, d.spec, d.granularity, "gptq", node=d.name, op_type=d.op_type,
                                hessian=hessian)  # fmt: skip


def test_stages_hessians_and_the_model_given_back() -> None:
    model = _model()
    before = onnx.printer.to_text(ir.to_proto(model).graph)
    _, plan = _plan(model, 16)
    assert planned_stages(model, plan.planned(*plan_actions())) == {"mm1": 0, "mm2": 1, "mm3": 0}
    data = _data(8, 1)
    seq = sequential_hessians(model, plan, data, _rounder, progress=False)
    fp32 = layer_hessians(model, plan, data, progress=False)
    assert onnx.printer.to_text(ir.to_proto(model).graph) == before  # weights and inputs restored
    np.testing.assert_allclose(seq["mm1"], fp32["mm1"], rtol=1e-6)  # stage 0 sees the fp32 inputs
    np.testing.assert_allclose(seq["mm3"], fp32["mm3"], rtol=1e-6)
    w1q = dequantize_weight(_rounder(plan.planned(*plan_actions())[0], W1, fp32["mm1"]))
    x = np.concatenate([b["x"] for b in data]).astype(np.float64)
    r = np.tanh(x @ w1q)  # what mm2 reads once mm1's weight is quantized
    np.testing.assert_allclose(seq["mm2"], 2 * r.T @ r / len(r), rtol=1e-4, atol=1e-6)
    assert not np.allclose(seq["mm2"], fp32["mm2"], rtol=1e-3)


def plan_actions():
    from onnxq.planning.weight_only import WeightOnlyAction

    return tuple(WeightOnlyAction)


def test_the_later_layer_has_less_output_error_on_the_inputs_it_meets() -> None:
    """GPTQ of ``W2`` with the Hessian of the quantized model's ``tanh(x W1q)`` against the one
    of the fp32 model's ``tanh(x W1)``, both measured on held-out ``tanh(x W1q)``: the coarse
    first layer (block 64) adds to those inputs the faint directions the fp32 Hessian says
    nothing about, where GPTQ with it puts its rounding errors."""
    model = _model()
    spec, plan = _plan(model, 64)
    data = _data(16, 2)
    seq = sequential_hessians(model, plan, data, _rounder, progress=False)
    fp32 = layer_hessians(model, plan, data, progress=False)
    w1q = dequantize_weight(_rounder(plan.planned(*plan_actions())[0], W1, fp32["mm1"]))
    held = np.tanh(np.concatenate([b["x"] for b in _data(16, 3)]) @ w1q)

    def error(hessian):
        q = gptq_quantize(W2.T, hessian, spec, PerBlock(1, 64))
        return float(np.sum((held @ W2 - held @ dequantize(q.values, q.qparams).T) ** 2))

    assert error(seq["mm2"]) < 0.95 * error(fp32["mm2"]), (error(seq["mm2"]), error(fp32["mm2"]))


def test_data_read_once_is_refused() -> None:
    model = _model()
    _, plan = _plan(model, 16)
    with pytest.raises(ConfigError, match="once per stage"):
        sequential_hessians(model, plan, iter(_data(2, 1)), _rounder, progress=False)
