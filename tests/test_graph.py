from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from onnxq.errors import UnsupportedModelError
from onnxq.graph import (
    NameAuthority,
    constant_array,
    consumers,
    count_ops,
    is_constant,
    iter_graphs,
    new_initializer,
    node_subgraphs,
    opset_version,
    producer,
    remove_node,
    remove_unused_initializers,
    replace_all_uses,
    sole_consumer,
)
from onnxq.io import load_model, to_proto

TEXT = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 3] x) => (float[2, 3] y, float[2, 3] z)
  <float[3] b = {1.0, 2.0, 3.0}, float[3] unused = {0.0, 0.0, 0.0}> {
    c = Constant <value = float[3] {10.0, 20.0, 30.0}> ()
    ci = Constant <value_ints = [4, 5]> ()
    cf = Constant <value_float = 2.5> ()
    a = Add(x, b)
    m = Mul(a, c)
    y = Relu(m)
    z = Add(m, a)
}
"""


@pytest.fixture
def model() -> ir.Model:
    return load_model(onnx.parser.parse_model(TEXT))


def _node(model: ir.Model, op_type: str, index: int = 0) -> ir.Node:
    return [n for n in model.graph if n.op_type == op_type][index]


def _value(model: ir.Model, name: str) -> ir.Value:
    for node in model.graph:
        for out in node.outputs:
            if out.name == name:
                return out
    for value in (*model.graph.inputs, *model.graph.initializers.values()):
        if value.name == name:
            return value
    raise KeyError(name)


def test_producer_and_consumers_follow_edges(model):
    a = _value(model, "a")
    assert producer(a) is _node(model, "Add", 0)
    assert [n.op_type for n in consumers(a)] == ["Mul", "Add"]
    assert producer(model.graph.inputs[0]) is None
    assert consumers(_value(model, "unused")) == []


def test_consumers_lists_node_once_when_it_reads_twice(model_from_text):
    m = load_model(
        model_from_text(
            '<ir_version: 8, opset_import: ["" : 13]> g (float[2] x) => (float[2] y) { y = Mul(x, x) }'
        )
    )
    assert [n.op_type for n in consumers(m.graph.inputs[0])] == ["Mul"]


def test_sole_consumer_none_when_shared_or_graph_output(model):
    assert sole_consumer(_value(model, "a")) is None
    assert sole_consumer(_value(model, "c")) is _node(model, "Mul")
    assert sole_consumer(_value(model, "y")) is None


def test_constant_array_reads_initializers_and_constant_nodes(model):
    np.testing.assert_array_equal(constant_array(_value(model, "b")), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(constant_array(_value(model, "c")), [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(constant_array(_value(model, "ci")), [4, 5])
    assert constant_array(_value(model, "ci")).dtype == np.int64
    cf = constant_array(_value(model, "cf"))
    assert cf.dtype == np.float32 and cf.shape == () and float(cf) == 2.5
    assert constant_array(_value(model, "a")) is None
    assert constant_array(model.graph.inputs[0]) is None
    assert constant_array(None) is None
    assert is_constant(_value(model, "b")) and not is_constant(_value(model, "a"))


def test_constant_array_none_when_initializer_is_graph_input(model):
    b = _value(model, "b")
    model.graph.inputs.append(b)
    assert constant_array(b) is None


def test_opset_version_reads_default_domain_and_raises_for_missing(model):
    assert opset_version(model) == 13
    assert opset_version(model, "ai.onnx") == 13
    with pytest.raises(UnsupportedModelError, match=r"no opset for domain 'com\.microsoft'"):
        opset_version(model, "com.microsoft")


def test_name_authority_never_repeats_existing_or_given_names(model):
    names = NameAuthority(model.graph)
    assert names.value("fresh") == "fresh"
    assert names.value("fresh") == "fresh_1"
    assert names.value("a") == "a_1"
    assert names.value("b") == "b_1"
    assert names.value("") == "onnxq"
    existing_nodes = {n.name for n in model.graph}
    assert names.node(next(iter(existing_nodes))) not in existing_nodes


def test_name_authority_sees_subgraph_names(model_from_text):
    m = load_model(
        model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (bool cond, float[2] x) => (float[2] y) {
            y = If (cond) <
                then_branch = t () => (float[2] inner) { inner = Relu(x) },
                else_branch = e () => (float[2] other) { other = Neg(x) }
            >
        }
        """)
    )
    assert len(list(iter_graphs(m.graph))) == 3
    names = NameAuthority(m.graph)
    assert names.value("inner") == "inner_1"
    assert names.value("other") == "other_1"


def test_new_initializer_registers_fresh_constant(model):
    names = NameAuthority(model.graph)
    value = new_initializer(model.graph, np.arange(6, dtype=np.float32).reshape(2, 3), names, "b")
    assert value.name == "b_1"
    assert model.graph.initializers["b_1"] is value
    assert value.dtype == ir.DataType.FLOAT and list(value.shape) == [2, 3]
    np.testing.assert_array_equal(constant_array(value), np.arange(6).reshape(2, 3))


def test_replace_all_uses_rewires_inner_readers(model, run_ort):
    x = np.ones((2, 3), np.float32)
    before = run_ort(model, {"x": x})
    names = NameAuthority(model.graph)
    c2 = new_initializer(model.graph, np.array([10.0, 20.0, 30.0], np.float32) * 2, names, "c2")
    replace_all_uses(_value(model, "c"), c2, names)
    after = run_ort(model, {"x": x})
    np.testing.assert_allclose(after[0], before[0] * 2)
    assert consumers(_value(model, "c")) == []


def test_replace_all_uses_keeps_output_name_when_new_is_node_output(model, run_ort):
    names = NameAuthority(model.graph)
    y, m = _value(model, "y"), _value(model, "m")
    replace_all_uses(y, m, names)
    assert [v.name for v in model.graph.outputs] == ["y", "z"]
    assert model.graph.outputs[0] is m
    remove_node(_node(model, "Relu"))
    x = -np.ones((2, 3), np.float32)
    out = run_ort(model, {"x": x})
    np.testing.assert_allclose(out[0], (x + np.array([1, 2, 3])) * np.array([10, 20, 30]))


def test_replace_all_uses_adds_identity_when_new_is_graph_input(model, run_ort):
    names = NameAuthority(model.graph)
    replace_all_uses(_value(model, "z"), model.graph.inputs[0], names)
    remove_node(_node(model, "Add", 1))
    assert [v.name for v in model.graph.outputs] == ["y", "z"]
    assert count_ops(model.graph)["Identity"] == 1
    x = np.full((2, 3), 3.0, np.float32)
    np.testing.assert_array_equal(run_ort(model, {"x": x})[1], x)


def test_remove_node_refuses_when_output_still_read(model):
    with pytest.raises(ValueError):
        remove_node(_node(model, "Mul"))
    assert count_ops(model.graph)["Mul"] == 1


def test_remove_unused_initializers_drops_only_dead_ones(model):
    assert remove_unused_initializers(model.graph) == 1
    assert sorted(model.graph.initializers) == ["b"]
    onnx.checker.check_model(to_proto(model))


def test_count_ops_counts_main_graph(model):
    assert count_ops(model.graph) == {"Constant": 3, "Add": 2, "Mul": 1, "Relu": 1}


def test_node_subgraphs_yields_only_the_direct_branches(model_from_text):
    m = load_model(
        model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (bool cond, float[2] x) => (float[2] y) {
            n = Neg(x)
            y = If (cond) <
                then_branch = t () => (float[2] inner) { inner = If (cond) <
                    then_branch = t2 () => (float[2] deep) { deep = Relu(x) },
                    else_branch = e2 () => (float[2] deep2) { deep2 = Abs(x) }
                > },
                else_branch = e () => (float[2] other) { other = Neg(n) }
            >
        }
        """)
    )
    neg, branch = list(m.graph)
    assert list(node_subgraphs(neg)) == []
    assert [g.name for g in node_subgraphs(branch)] == ["t", "e"]
    assert len(list(iter_graphs(m.graph))) == 5


@pytest.mark.parametrize(("dtype", "low", "high"), [("int4", -8, 8), ("uint4", 0, 16)])
def test_a_4bit_initializer_is_held_two_per_byte_and_saved_as_onnx_writes_it(dtype, low, high) -> None:
    import ml_dtypes

    from onnxq.graph import NameAuthority, new_initializer

    values = np.resize(np.arange(low, high), (5, 19)).astype(getattr(ml_dtypes, dtype))  # odd count
    graph = ir.Graph([], [], nodes=[], name="g")
    tensor = new_initializer(graph, values, NameAuthority(graph), "w").const_value
    assert isinstance(tensor, ir.PackedTensor) and tensor.raw.nbytes == (values.size + 1) // 2
    np.testing.assert_array_equal(tensor.numpy().astype(np.int8), values.astype(np.int8))
    saved = onnx.numpy_helper.to_array(ir.serde.serialize_tensor(tensor))
    np.testing.assert_array_equal(saved.astype(np.int8), values.astype(np.int8))
