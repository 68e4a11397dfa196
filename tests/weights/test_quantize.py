"""The weight stage (onnxq.weights.quantize_weights): shared weights, biases, method results checked."""

from __future__ import annotations

import numpy as np
import pytest

from onnxq.api import prepare
from onnxq.calibration.resolve import resolve_qparams
from onnxq.errors import OnnxqError
from onnxq.qconfig import PerChannel, QConfig, QSpec
from onnxq.qparams import QParams
from onnxq.weights import QuantizedTensor, WeightRequest, quantize_weights, register_weight_method

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'
SHARED = """
g (float[2, 4] x) => (float[2, 3] y, float[2, 3] z) <float[3, 4] w = {1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4},
  float[3] b = {0.5, -0.5, 1}> {
    [g1] y = Gemm <transB = 1> (x, w, b)
    [g2] z = Gemm <transB = 1> (x, w)
}
"""
QC = QConfig(QSpec(), QSpec("int8", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax"))


def _stage(model_from_text, method: str = "rtn"):
    prepared = prepare(model_from_text(f"{HEADER}\n{SHARED}"), QC)
    calibration = prepared.calibrate(
        [{"x": np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)}], progress=False
    )
    qparams = resolve_qparams(prepared.plan, prepared.model, calibration)
    return prepared, quantize_weights(prepared.plan, prepared.model, qparams.groups, method)


def test_a_weight_read_by_two_nodes_is_quantized_once_and_biases_get_the_input_scale(model_from_text) -> None:
    prepared, weights = _stage(model_from_text)
    g1, g2 = weights.nodes["g1"], weights.nodes["g2"]
    assert g1.weight is g2.weight and g2.bias is None
    assert g1.bias is not None and g1.bias.values.dtype == np.int32 and g1.bias.axis == 0
    np.testing.assert_allclose(
        g1.bias.values * g1.bias.scale, [0.5, -0.5, 1], atol=float(g1.bias.scale.max())
    )
    qc = prepared.convert()
    assert sum(n.op_type == "DequantizeLinear" and n.input[0].startswith("w") for n in qc.graph.node) == 1


@register_weight_method("test_wrong_shape")
def _wrong_shape(request: WeightRequest) -> QuantizedTensor:
    return QuantizedTensor(np.zeros(3, np.int8), QParams(np.float32(1), np.int8(0)))


def test_a_method_returning_the_wrong_thing_is_named_in_the_error(model_from_text) -> None:
    with pytest.raises(
        OnnxqError, match="weight method 'test_wrong_shape' on the weight of node 'g1' returned shape"
    ):
        _stage(model_from_text, "test_wrong_shape")
