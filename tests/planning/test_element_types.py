"""Tests of element-type lookup (onnxq.planning.element_types)."""

from __future__ import annotations

import onnx
import onnx_ir as ir
import pytest

from onnxq.io import load_model
from onnxq.planning.element_types import ElementTypes

TEXT = """<ir_version: 8, opset_import: ["" : 17, "com.example" : 1]>
g (float[2, 3] x) => (float[2, 3] y, int64[2] s, float[2, 3] z) {
    r = Relu(x)
    y = Sigmoid(r)
    s = Shape(r)
    c = com.example.Foo(r)
    d = Relu(c)
    z = Neg(d)
}"""


def _values(model: ir.Model) -> dict[str, ir.Value]:
    values = {v.name: v for v in model.graph.inputs}
    values.update({v.name: v for n in model.graph for v in n.outputs})
    return values


def test_element_types_uses_onnx_inference_for_intermediates(model_from_text) -> None:
    model = load_model(model_from_text(TEXT))
    types, values = ElementTypes(model), _values(model)
    assert values["r"].dtype is None  # nothing recorded in the model itself
    assert types(values["r"]) == ir.DataType.FLOAT
    assert types(values["s"]) == ir.DataType.INT64
    assert types(values["c"]) is None  # custom-domain output: unknown
    assert values["r"].dtype is None  # the model is not changed


def test_element_types_propagates_when_inference_fails(model_from_text, monkeypatch) -> None:
    model = load_model(model_from_text(TEXT))

    def fail(*args: object, **kwargs: object) -> onnx.ModelProto:
        raise RuntimeError("inference unavailable")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", fail)
    types, values = ElementTypes(model), _values(model)
    assert types(values["r"]) == ir.DataType.FLOAT  # Relu keeps its input's type
    assert types(values["s"]) == ir.DataType.INT64  # a graph output records its type
    assert types(values["c"]) is None and types(values["d"]) is None


@pytest.mark.parametrize("name", ["x", "y"])
def test_element_types_prefers_recorded_type(model_from_text, name: str) -> None:
    model = load_model(model_from_text(TEXT))
    assert ElementTypes(model)(_values(model)[name]) == ir.DataType.FLOAT
