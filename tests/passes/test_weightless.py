"""Large weights held out of what onnx's C++ tools see: an opset upgrade of a model with external
data reads none of it, and every weight comes back as it was (inputs stay inputs)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxq.errors import OnnxqError
from onnxq.io import load_model, save_model
from onnxq.passes.normalize import Normalize
from onnxq.passes.weightless import INLINE_BYTES, weights_as_inputs


def _matmul_model(w: np.ndarray, *, weight_is_input: bool = False, opset: int = 13) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", w.shape[0]])]
    if weight_is_input:  # IR < 4 exports list every initializer as an input too
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w.shape)))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "g",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", w.shape[1]])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_an_opset_upgrade_reads_no_external_weight_and_keeps_it_mapped(tmp_path, monkeypatch) -> None:
    w = np.linspace(-1, 1, 64 * 48, dtype=np.float32).reshape(64, 48)
    path = tmp_path / "m.onnx"
    save_model(load_model(_matmul_model(w)), path, external_data=True)
    model = load_model(path)
    tensor = model.graph.initializers["w"].const_value
    assert isinstance(tensor, ir.ExternalTensor)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the upgrade read a held weight")

    monkeypatch.setattr(ir.ExternalTensor, "numpy", refuse)
    monkeypatch.setattr(ir.ExternalTensor, "tobytes", refuse)
    Normalize(min_opset=21).call(model)
    monkeypatch.undo()
    assert model.opset_imports[""] == 21
    assert model.graph.initializers["w"].const_value is tensor  # the same mapped tensor, no copy
    assert [v.name for v in model.graph.inputs] == ["x"]
    np.testing.assert_array_equal(model.graph.initializers["w"].const_value.numpy(), w)


def test_a_weight_that_was_also_an_input_stays_one_after_the_upgrade() -> None:
    w = np.ones((40, 16), np.float32)
    assert w.nbytes > INLINE_BYTES
    model = ir.serde.deserialize_model(_matmul_model(w, weight_is_input=True))
    with weights_as_inputs(model) as held:
        proto = held.serialize()
        assert not proto.graph.initializer  # the weight's data is not in the proto
        upgraded = ir.serde.deserialize_model(proto)
        held.restore_into(upgraded)
    assert [v.name for v in upgraded.graph.inputs] == ["x", "w"]
    np.testing.assert_array_equal(upgraded.graph.initializers["w"].const_value.numpy(), w)
    assert [v.name for v in model.graph.inputs] == ["x", "w"]  # the original is as it was
    assert "w" in model.graph.initializers


def test_small_constants_stay_in_the_proto_and_a_lost_weight_is_named() -> None:
    small = np.ones((2, 3), np.float32)
    big = np.ones((64, 8), np.float32)
    with weights_as_inputs(ir.serde.deserialize_model(_matmul_model(small))) as held:
        assert [t.name for t in held.serialize().graph.initializer] == ["w"]
    model = ir.serde.deserialize_model(_matmul_model(big))
    with weights_as_inputs(model) as held:
        proto = held.serialize()
        proto.graph.input[1].name = "renamed"
        with pytest.raises(OnnxqError, match="weight 'w' is missing"):
            held.restore_into(ir.serde.deserialize_model(proto))


def test_a_weight_read_inside_an_if_branch_survives_the_upgrade_from_external_data(tmp_path) -> None:
    """Other exporters put networks inside ``If`` branches that read the outer graph's weights: the
    held weight stays visible to the branch, and the upgraded model computes what the original did."""
    from onnxq.runtime import make_session

    w = np.linspace(-1, 1, 64 * 48, dtype=np.float32).reshape(64, 48)
    branch = lambda op: helper.make_graph(  # noqa: E731
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node(op, ["h"], ["out"])],
        op.lower(),
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 48])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch("Relu"), else_branch=branch("Neg"))],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 64]),  # PaddlePaddle's -1
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 48])],
        [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    path = tmp_path / "if.onnx"
    save_model(load_model(proto), path, external_data=True)
    model = load_model(path)
    Normalize(min_opset=21).call(model)
    assert model.opset_imports[""] == 21
    assert isinstance(model.graph.initializers["w"].const_value, ir.ExternalTensor)
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    upgraded = make_session(save_model(model, tmp_path / "up.onnx"))
    for c in (True, False):
        feeds = {"x": x, "c": np.array(c)}
        expected = np.maximum(x @ w, 0) if c else -(x @ w)
        np.testing.assert_allclose(upgraded.run(None, feeds)[0], expected, rtol=1e-5, atol=1e-5)
