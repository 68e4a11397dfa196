"""Malformed tensors and fields are refused at load, in one line, before anything reads them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxq.cli import main
from onnxq.errors import ModelLoadError
from onnxq.io import load_model


def _conv_model(weight_name: str = "W") -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(4 * 3 * 9, dtype=np.float32).reshape(4, 3, 3, 3), weight_name)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", weight_name], ["y"], name="conv")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _with(edit: object) -> onnx.ModelProto:
    model = _conv_model()
    edit(model.graph.initializer[0])  # type: ignore[operator]
    return model


def _short(t: TensorProto) -> None:
    t.raw_data = t.raw_data[:10]


def _long(t: TensorProto) -> None:
    t.raw_data = t.raw_data + b"abcd"


def _negative(t: TensorProto) -> None:
    t.dims[0] = -4


def _undefined(t: TensorProto) -> None:
    t.data_type = 0


def _unknown_type(t: TensorProto) -> None:
    t.data_type = 999


def _typed_too_few(t: TensorProto) -> None:
    t.ClearField("raw_data")
    t.float_data.extend([1.0] * 7)


def _wrong_field(t: TensorProto) -> None:
    t.ClearField("raw_data")
    t.int64_data.extend([1] * 108)


def _no_data(t: TensorProto) -> None:
    t.ClearField("raw_data")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_short, r"tensor 'W' \(float\[4, 3, 3, 3\]\) needs 432 bytes of raw_data, it has 10"),
        (_long, "needs 432 bytes of raw_data, it has 436"),
        (_negative, r"tensor 'W' has a negative dimension in dims \[-4, 3, 3, 3\]"),
        (_undefined, "tensor 'W' has data_type 0, which is not an ONNX element type"),
        (_unknown_type, "data_type 999, which is not an ONNX element type"),
        (_typed_too_few, "needs 108 values in float_data, it has 7"),
        (_wrong_field, "holds data in int64_data, not in float_data"),
        (_no_data, "needs 108 values in float_data, it has 0"),
    ],
)
def test_bad_tensors_are_one_line_errors(edit: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model(_with(edit))
    path = tmp_path / "m.onnx"
    onnx.save_model(_with(edit), str(path))
    with pytest.raises(ModelLoadError, match=rf"model file '{path}': .*{message}"):
        load_model(path)


def test_empty_tensor_may_hold_no_data() -> None:
    model = _conv_model()
    empty = helper.make_tensor("empty", TensorProto.FLOAT, [0, 3], [])
    model.graph.initializer.append(empty)
    load_model(model)


def test_tensor_in_a_constant_inside_a_subgraph_is_checked() -> None:
    bad = numpy_helper.from_array(np.ones(4, np.float32), "c")
    bad.raw_data = bad.raw_data[:3]
    then = helper.make_graph(
        [helper.make_node("Constant", [], ["t"], value=bad)],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4])],
    )
    other = helper.make_graph(
        [helper.make_node("Constant", [], ["e"], value=numpy_helper.from_array(np.zeros(4, np.float32)))],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [4])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)],
        "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelLoadError, match=r"tensor 'c' \(float\[4\]\) needs 16 bytes of raw_data"):
        load_model(model)


def test_external_length_must_match_the_dims(tmp_path: Path) -> None:
    model = _conv_model()
    t = model.graph.initializer[0]
    (tmp_path / "w.bin").write_bytes(t.raw_data + b"\0" * 100)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "w.bin"), ("offset", "0"), ("length", "50")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    onnx.save_model(model, str(tmp_path / "m.onnx"))
    with pytest.raises(ModelLoadError, match="needs 432 bytes of external data, its length says 50"):
        load_model(tmp_path / "m.onnx")
    t.external_data[2].value = "-5"
    onnx.save_model(model, str(tmp_path / "m.onnx"))
    with pytest.raises(ModelLoadError, match="external data length '-5' is not a byte count"):
        load_model(tmp_path / "m.onnx")
    t.external_data[2].key = "\x00\x00th"  # the fuzzer's find: onnx-ir warned on stderr
    onnx.save_model(model, str(tmp_path / "m.onnx"))
    with pytest.raises(ModelLoadError, match=r"external data has key '\\x00\\x00th', not one of basepath"):
        load_model(tmp_path / "m.onnx")
    t.external_data[2].key = "zzzz"  # then a key that is not UTF-8 (onnxq read it as text)
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString().replace(b"zzzz", b"\xff\xfezz"))
    with pytest.raises(ModelLoadError, match=r"tensor 'W'.external_data.key is not valid UTF-8 text"):
        load_model(tmp_path / "m.onnx")


@pytest.mark.parametrize("field", ["node name", "doc_string"])
def test_invalid_utf8_in_a_string_field_is_one_line(field: str, tmp_path: Path) -> None:
    model = _conv_model()
    if field == "node name":
        model.graph.node[0].name = "MARKER"
    else:
        model.doc_string = "MARKER"
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString().replace(b"MARKER", b"MA\xff\xfeER"))
    where = r"model\.graph\.node\[0\]\.name" if field == "node name" else r"model\.doc_string"
    with pytest.raises(ModelLoadError, match=rf"{where} is not valid UTF-8 text \('MA\\xff\\xfeER'\)"):
        load_model(path)


def test_graph_input_without_a_name_is_refused() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", [""], ["y"])],
        "g",
        [helper.make_tensor_value_info("", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelLoadError, match=r"model\.graph\.input\[0\] has no name"):
        load_model(model)


@pytest.mark.parametrize("command", ["quantize", "inspect"])
def test_cli_gives_one_line_and_exit_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save_model(_with(_negative), str(path))
    argv = [command, str(path)] + (["-o", str(tmp_path / "q.onnx")] if command == "quantize" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "negative dimension" in err
    assert not (tmp_path / "q.onnx").exists()


def test_an_attribute_without_its_type_gets_it_from_its_one_value_field() -> None:
    model = _conv_model()
    attr = helper.make_attribute("strides", [1, 1])
    attr.type = onnx.AttributeProto.UNDEFINED
    model.graph.node[0].attribute.append(attr)
    loaded = load_model(model)
    assert list(loaded.graph.node(0).attributes["strides"].value) == [1, 1]


def test_an_attribute_without_a_type_or_a_value_is_refused() -> None:
    model = _conv_model()
    attr = model.graph.node[0].attribute.add()
    attr.name = "strides"  # no type, no value (an unknown type number parses as no type too)
    with pytest.raises(
        ModelLoadError, match=r"attribute 'strides' .* has type 0, which is not an ONNX attribute"
    ):
        load_model(model)


def test_an_attribute_declared_one_type_holding_another_is_refused() -> None:
    # onnx's version converter crashes the process on this (it reads the declared field)
    model = _conv_model()
    attr = helper.make_attribute("strides", [1, 1])
    attr.type = onnx.AttributeProto.FLOAT
    model.graph.node[0].attribute.append(attr)
    with pytest.raises(ModelLoadError, match=r"attribute 'strides' .* is declared FLOAT but holds ints"):
        load_model(model)


def test_a_graph_with_a_cycle_is_refused_and_an_unsorted_one_is_sorted() -> None:
    relu = helper.make_node("Relu", ["a"], ["b"], name="relu")
    neg = helper.make_node("Neg", ["x"], ["a"], name="neg")
    graph = helper.make_graph(
        [relu, neg],  # not in the order they compute
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert [n.name for n in load_model(model).graph] == ["neg", "relu"]
    model.graph.node[1].input[0] = "b"  # Neg reads Relu's output, which reads Neg's: a cycle
    with pytest.raises(ModelLoadError, match="its graph has a cycle"):
        load_model(model)


@pytest.mark.parametrize("where", ["input", "initializer", "output"])
def test_a_name_given_two_values_is_refused(where: str) -> None:
    model = _conv_model()
    if where == "input":
        model.graph.input.append(model.graph.input[0])
        needle = "graph input 'x' appears twice"
    elif where == "initializer":
        model.graph.initializer.append(model.graph.initializer[0])
        needle = "graph initializer 'W' appears twice"
    else:
        model.graph.node[0].output[0] = "x"
        model.graph.output[0].name = "x"
        needle = "node 'conv' (Conv) in the main graph writes 'x', which already has a value"
    with pytest.raises(ModelLoadError, match=re.escape(needle)):
        load_model(model)


def test_packed_types_are_read_from_int32_data_only() -> None:
    model = _conv_model()
    t = helper.make_tensor("q4", TensorProto.INT4, [5], [1, 0, 1, 1, 0])  # 3 packed bytes in int32_data
    model.graph.initializer.append(t)
    load_model(model)
    t = model.graph.initializer[-1]
    t.ClearField("int32_data")
    t.float_data.extend([1.0] * 5)
    with pytest.raises(
        ModelLoadError, match=r"tensor 'q4' \(int4\[5\]\) holds data in float_data, not in int32_data"
    ):
        load_model(model)


def _constant_with_input(m: onnx.ModelProto) -> None:  # the fuzzer's find: onnx-ir's constant lift raised
    m.graph.node.insert(0, helper.make_node("Constant", ["x"], ["c"], name="k", value_float=1.0))


def _constant_with_unknown_attribute(m: onnx.ModelProto) -> None:
    m.graph.node.insert(0, helper.make_node("Constant", [], ["c"], name="k", transB=1))


def _constant_without_value(m: onnx.ModelProto) -> None:
    m.graph.node.insert(0, helper.make_node("Constant", [], ["c"], name="k"))


def _attribute_of_the_wrong_type(m: onnx.ModelProto) -> None:
    m.graph.node[0].attribute.append(helper.make_attribute("group", 1.0))


def _too_many_inputs(m: onnx.ModelProto) -> None:
    m.graph.node[0].input.extend(["W", "W"])


def _no_such_operator(m: onnx.ModelProto) -> None:
    m.graph.node[0].op_type = "Convolve"


def _missing_required_attribute(m: onnx.ModelProto) -> None:
    m.graph.node.append(helper.make_node("Cast", ["y"], ["z"], name="cast"))
    m.graph.output[0].name = "z"


def _domain_not_imported(m: onnx.ModelProto) -> None:
    m.graph.node[0].domain = "ai.onnx.ml"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _constant_with_input,
            "node 'k' (Constant) in the main graph has 1 inputs; Constant at opset 13 takes 0",
        ),
        (
            _constant_with_unknown_attribute,
            "has attribute 'transB', which Constant at opset 13 does not have",
        ),
        (_constant_without_value, "has 0 attributes; a Constant holds exactly one"),
        (_attribute_of_the_wrong_type, "attribute 'group' is FLOAT, Conv expects INT"),
        (_too_many_inputs, "has 4 inputs; Conv at opset 13 takes 2 to 3"),
        (_no_such_operator, "ai.onnx opset 13 has no operator Convolve"),
        (_missing_required_attribute, "node 'cast' (Cast) in the main graph lacks required attribute(s) to"),
        (_domain_not_imported, "is in domain ai.onnx.ml, which the model imports no opset of"),
    ],
)
def test_nodes_must_follow_their_schema(edit: object, message: str) -> None:
    model = _conv_model()
    edit(model)  # type: ignore[operator]
    with pytest.raises(ModelLoadError, match=re.escape(message)):
        load_model(model)


def test_schemas_are_those_of_the_model_opset_and_custom_domains_are_left_alone() -> None:
    model = _conv_model()
    model.opset_import[0].version = 6  # Add's broadcast attribute exists up to opset 6
    model.graph.node.append(helper.make_node("Add", ["y", "y"], ["s"], name="add", broadcast=0))
    model.graph.node.append(helper.make_node("MyOp", ["s"], ["z"], name="mine", domain="my.ops", anything=3))
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    model.graph.output[0].name = "z"
    load_model(model)
    model.opset_import[0].version = 13
    with pytest.raises(ModelLoadError, match="attribute 'broadcast', which Add at opset 13 does not have"):
        load_model(model)


def test_a_node_inside_a_branch_is_checked_too() -> None:
    branch = helper.make_graph(
        [helper.make_node("Relu", ["x", "x"], ["r"], name="inner")], "b", [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, None)],
    )  # fmt: skip
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["c"], name="k", value=numpy_helper.from_array(np.array(True))),
            helper.make_node("If", ["c"], ["y"], name="if", then_branch=branch, else_branch=branch),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    with pytest.raises(
        ModelLoadError, match=r"node 'inner' \(Relu\) in the 'then_branch' body of node 'if' has 2"
    ):
        load_model(model)


@pytest.mark.parametrize("elem_type", [0, 999])
def test_a_graph_input_of_no_known_element_type_is_refused(elem_type: int) -> None:
    model = _conv_model()  # the fuzzer's find: calibration asked numpy for type UNDEFINED
    model.graph.input[0].type.tensor_type.elem_type = elem_type
    with pytest.raises(
        ModelLoadError, match=f"graph input 'x' of model.graph has element type {elem_type}, which"
    ):
        load_model(model)


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand"])
def test_a_constant_shape_too_large_to_exist_is_refused_before_shape_inference(op: str) -> None:
    # the fuzzer's find: ConstantOfShape([3.6e16]) drove onnx's data propagation to tens of GB
    model = _conv_model()
    shape = numpy_helper.from_array(np.array([36028797018964064], np.int64), "s")
    model.graph.initializer.append(shape)
    inputs = ["s"] if op == "ConstantOfShape" else ["y", "s"]
    model.graph.node.append(helper.make_node(op, inputs, ["z"], name="big"))
    model.graph.output[0].name = "z"
    with pytest.raises(
        ModelLoadError, match=rf"node 'big' \({op}\) in the main graph would make a tensor of shape"
    ):
        load_model(model)
    model.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.array([2, 3], np.int64), "s"))
    load_model(model)  # a small one is fine
