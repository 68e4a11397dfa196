"""Type and shape inference merged into onnx-ir models: whole types, big tensors left out."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto, helper, numpy_helper

from onnxq.io import load_model, to_proto
from onnxq.passes.shapes import INLINE_BYTES, infer_shapes
from onnxq.runtime import make_session


def _sequence_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("SplitToSequence", ["x"], ["seq"], axis=-1),
            helper.make_node("SequenceLength", ["seq"], ["n"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_a_sequence_value_keeps_its_sequence_type_and_the_model_still_loads() -> None:
    model = load_model(_sequence_model())
    assert infer_shapes(model) is None
    seq = next(o for n in model.graph for o in n.outputs if o.name == "seq")
    assert isinstance(seq.type, ir.SequenceType) and seq.type.dtype == ir.DataType.FLOAT
    make_session(to_proto(model))  # onnxruntime accepts the merged types


def test_big_initializers_are_left_out_and_restored() -> None:
    w = np.arange(64 * 32, dtype=np.float32).reshape(64, 32)
    assert w.nbytes > INLINE_BYTES
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    assert infer_shapes(model) is None
    assert [v.name for v in model.graph.inputs] == ["x"]
    np.testing.assert_array_equal(model.graph.initializers["w"].const_value.numpy(), w)
    h = next(o for n in model.graph for o in n.outputs if o.name == "h")
    assert h.dtype == ir.DataType.FLOAT and h.shape is not None and h.shape[1] == 32


def test_a_model_onnx_rejects_is_left_as_it_was_with_the_reason() -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "n"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("n", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    before = to_proto(model).SerializeToString()
    reason = infer_shapes(model)
    assert reason is not None and "\n" not in reason
    assert to_proto(model).SerializeToString() == before
