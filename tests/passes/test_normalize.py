from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.parser
import pytest

from onnxq.errors import ModelLoadError, UnsupportedModelError
from onnxq.graph import opset_version
from onnxq.io import load_model, to_proto
from onnxq.opsets import MIN_OPSET
from onnxq.passes import folding as folding_module
from onnxq.passes.normalize import Normalize
from onnxq.runtime import max_opset


def _normalize(model: onnx.ModelProto, **kwargs):
    result = Normalize(**kwargs)(load_model(model))
    proto = to_proto(result.model)
    onnx.checker.check_model(proto)
    return result, proto


def test_normalize_upgrades_opset_11_model_to_13(model_from_text, assert_same_outputs, op_counts):
    model = model_from_text("""
        <ir_version: 7, opset_import: ["" : 11]>
        g (float[2, 3, 4] x) => (float[2, 4] y) {
            lo = Constant <value = float {-1.0}> ()
            hi = Constant <value = float {6.0}> ()
            one = Constant <value = float[1, 4] {1.0, 2.0, 3.0, 4.0}> ()
            c = Clip(x, lo, hi)
            s = Squeeze <axes = [0]> (one)
            r = ReduceSum <axes = [1], keepdims = 0> (c)
            y = Add(r, s)
        }
    """)
    result, upgraded = _normalize(model)
    assert opset_version(result.model) == MIN_OPSET
    assert result.notes[0] == "opset upgraded from 11 to 13"
    reduce_sum = next(n for n in upgraded.graph.node if n.op_type == "ReduceSum")
    assert len(reduce_sum.input) == 2 and not any(a.name == "axes" for a in reduce_sum.attribute)
    assert "Constant" not in op_counts(upgraded)
    assert_same_outputs(model, upgraded)


def test_normalize_refuses_opset_it_cannot_upgrade(model_from_text):
    model = onnx.parser.parse_model("""
        <ir_version: 7, opset_import: ["" : 10]>
        g (float[1, 2, 4, 4] x) => (float[1, 2, 8, 8] y) <float[4] s = {1.0, 1.0, 2.0, 2.0}> {
            y = Upsample <mode = "nearest"> (x, s)
        }
    """)
    with pytest.raises(
        UnsupportedModelError, match=r"opset 10 \(< 13\) and cannot be upgraded to opset 13: "
    ):
        Normalize()(load_model(model))


def test_normalize_refuses_opset_newer_than_onnxruntime():
    newest = max_opset()
    assert newest >= 21
    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", newest + 1)], ir_version=8)
    with pytest.raises(
        UnsupportedModelError, match=rf"opset {newest + 1}, newer than onnxruntime .* \(max {newest}\)"
    ):
        Normalize()(load_model(model))


def test_normalize_leaves_opset_13_and_newer_alone(model_from_text):
    for opset in (13, 17, 20):
        model = model_from_text(f"""
            <ir_version: 8, opset_import: ["" : {opset}]>
            g (float[2] x) => (float[2] y) {{ y = Relu(x) }}
        """)
        result, _ = _normalize(model)
        assert result.count == 0 and result.notes == ()
        assert opset_version(result.model) == opset


def test_normalize_removes_initializers_from_graph_inputs(run_ort):
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [
            oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4, 3]),
            oh.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [3, 2]),
        ],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4, 2])],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=3)
    result, normalized = _normalize(model)
    assert [i.name for i in normalized.graph.input] == ["x"]
    assert [i.name for i in normalized.graph.initializer] == ["w"]
    assert result.notes == (
        "1 initializer(s) removed from the graph inputs (old IR style)",
        "IR version raised from 3 to 7, which its opsets need",
    )
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(run_ort(normalized, {"x": x})[0], x @ w)


def test_normalize_folds_constant_subgraphs_into_initializers(
    model_from_text, assert_same_outputs, op_counts
):
    model = model_from_text(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2, 3, 5, 5] x) => (float[2, 4, 3, 3] y) <float[4, 3, 3, 3] w0> {
            w = Identity(w0)
            shape = Constant <value_ints = [4]> ()
            zero = ConstantOfShape <value = float[1] {0.25}> (shape)
            wshape = Shape <end = 1> (w)
            one = Constant <value = float {0.0}> ()
            like = CastLike(one, x)
            bias0 = Expand(like, wshape)
            bias = Add(bias0, zero)
            y = Conv(x, w, bias)
        }
    """.replace("<float[4, 3, 3, 3] w0>", "<float[4, 3, 3, 3] w0 = {" + ", ".join(["0.5"] * 108) + "}>")
    )
    result, folded = _normalize(model)
    assert op_counts(folded) == {"Conv": 1}
    conv = folded.graph.node[0]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in folded.graph.initializer}
    assert set(inits) == set(conv.input[1:])
    np.testing.assert_array_equal(inits[conv.input[2]], np.full(4, 0.25, np.float32))
    assert inits[conv.input[1]].shape == (4, 3, 3, 3)
    assert result.count == 8
    assert_same_outputs(model, folded)


def test_normalize_bypasses_identity_and_dropout_inside_the_graph(
    model_from_text, op_counts, assert_same_outputs
):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 3] x) => (float[2, 3] y, float[2, 3] z, float[2, 3] mask_out) {
            a = Identity(x)
            r = Relu(a)
            d = Dropout(r)
            y = Neg(d)
            z = Identity(y)
            d2, m2 = Dropout(y)
            mask_out = Cast <to = 1> (m2)
        }
    """)
    result, normalized = _normalize(model)
    assert op_counts(normalized) == {"Relu": 1, "Neg": 1, "Identity": 1, "Dropout": 1, "Cast": 1}
    assert [n.input[0] for n in normalized.graph.node if n.op_type in ("Relu", "Neg")] == ["x", "r"]
    assert result.count == 2  # z = Identity(y) is an output; the second Dropout's mask is used
    assert result.notes == ("1 Dropout node(s) removed: inference semantics (identity)",)
    assert_same_outputs(model, normalized)


def test_normalize_removes_dropout_of_training_export(export_torch, run_ort, op_counts):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.Dropout(0.5), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )
    x = torch.randn(3, 6)
    exported = export_torch(net, (x,), "torchscript", 13, training=torch.onnx.TrainingMode.TRAINING)
    assert op_counts(exported).get("Dropout") == 1
    _, normalized = _normalize(exported)
    assert "Dropout" not in op_counts(normalized)
    with torch.no_grad():
        expected = net.eval()(x).numpy()
    (got,) = run_ort(normalized, {normalized.graph.input[0].name: x.numpy()})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_normalize_keeps_huge_constant_of_shape(model_from_text, monkeypatch, op_counts):
    monkeypatch.setattr(folding_module, "MAX_FOLD_ELEMENTS", 10)
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4, 4] x) => (float[4, 4] y) {
            shape = Constant <value_ints = [4, 4]> ()
            z = ConstantOfShape <value = float[1] {1.0}> (shape)
            y = Add(x, z)
        }
    """)
    _, folded = _normalize(model)
    assert op_counts(folded) == {"ConstantOfShape": 1, "Add": 1}


def test_normalize_keeps_constant_that_is_graph_output(model_from_text, op_counts, assert_same_outputs):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y, float[2] c) {
            c = Constant <value = float[2] {1.0, 2.0}> ()
            y = Add(x, c)
        }
    """)
    _, folded = _normalize(model)
    assert op_counts(folded) == {"Constant": 1, "Add": 1}
    assert [o.name for o in folded.graph.output] == ["y", "c"]
    assert_same_outputs(model, folded)


def test_normalize_rewrites_sum_by_arity(model_from_text, op_counts, assert_same_outputs):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 3] a, float[3] b, float[2, 3] c)
          => (float[2, 3] two, float[2, 3] three, float[2, 3] out1) {
            two = Sum(a, b)
            inner = Sum(c)
            three = Sum(two, inner, a)
            out1 = Sum(c)
        }
    """)
    result, normalized = _normalize(model)
    assert op_counts(normalized) == {"Add": 1, "Sum": 1, "Identity": 1}
    assert result.count == 3
    assert len(result.notes) == 1 and result.notes[0].endswith("has 3 inputs: left as Sum (stays float)")
    three = next(n for n in normalized.graph.node if n.op_type == "Sum")
    assert list(three.input) == ["two", "c", "a"]
    assert [o.name for o in normalized.graph.output] == ["two", "three", "out1"]
    assert_same_outputs(model, normalized)


def test_normalize_works_without_shape_information(model_from_text, assert_same_outputs, run_ort):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 4] x) => (float y)
          <float[4, 3] w = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0}> {
            t = Identity(w)
            m = MatMul(x, t)
            c = Constant <value = float[3] {1.0, 1.0, 1.0}> ()
            y = Sum(m, c)
        }
    """)
    del model.graph.output[0].type.tensor_type.shape.dim[:]
    result, normalized = _normalize(model, infer_shapes=False)
    assert result.count == 3  # Identity folded, Constant lifted, Sum -> Add
    assert [n.op_type for n in normalized.graph.node] == ["MatMul", "Add"]
    x = np.ones((5, 4), np.float32)
    np.testing.assert_array_equal(run_ort(normalized, {"x": x})[0], run_ort(model, {"x": x})[0])


def test_normalize_infers_shapes_when_missing(model_from_text):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[5, 4] x) => (float[5, 4] y) { r = Relu(x)  y = Neg(r) }
    """)
    result, _ = _normalize(model)
    relu = next(n for n in result.model.graph if n.op_type == "Relu")
    assert list(relu.outputs[0].shape) == [5, 4]


def test_normalize_names_unnamed_and_duplicate_nodes(model_from_text):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
            a = Relu(x)
            [dup] b = Neg(a)
            [dup] c = Abs(b)
            [Relu] d = Neg(c)
            y = Relu(d)
        }
    """)
    result, normalized = _normalize(model)
    names = [n.name for n in normalized.graph.node]
    assert len(set(names)) == 5 and all(names)
    assert names[1:4] == ["dup", "Abs", "Relu"]
    assert names[0].startswith("Relu_") and names[4].startswith("Relu_")
    assert result.count == 0


@pytest.mark.parametrize("strip", [True, False])
def test_normalize_strips_node_debug_metadata_unless_asked(model_from_text, strip):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu(x) }
    """)
    model.graph.node[0].doc_string = "exported from forward()"
    model.graph.node[0].metadata_props.add(key="pkg.torch.onnx.stack_trace", value="File 'model.py', line 1")
    model.metadata_props.add(key="owner", value="team")
    _, normalized = _normalize(model, strip_node_metadata=strip)
    node = normalized.graph.node[0]
    assert (node.doc_string, len(node.metadata_props)) == (
        ("", 0) if strip else ("exported from forward()", 1)
    )
    assert [(p.key, p.value) for p in normalized.metadata_props] == [("owner", "team")]


def test_normalize_target_opset_validated():
    with pytest.raises(ValueError, match="target_opset must be >= 13"):
        Normalize(target_opset=11)


def _torch_module():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.fc = torch.nn.Linear(4, 5)
            self.register_buffer("offset", torch.linspace(-1, 1, 5))

        def forward(self, x):
            y = torch.relu(self.conv(x)).mean(dim=(2, 3))
            return self.fc(y) * 2.0 + self.offset + torch.zeros(5)

    torch.manual_seed(0)
    return Net(), (torch.randn(2, 3, 6, 6),)


def test_normalize_keeps_outputs_of_real_exports(
    export_torch, torch_exporter, assert_same_outputs, op_counts
):
    net, inputs = _torch_module()
    exported = export_torch(net, inputs, *torch_exporter)
    _, normalized = _normalize(exported)
    assert "Constant" not in op_counts(normalized)
    assert op_counts(normalized)["Conv"] == 1
    for optimize in (False, True):
        assert_same_outputs(exported, normalized, optimize=optimize)


def test_normalize_makes_kept_initializer_inputs_constant(export_torch, assert_same_outputs):
    net, inputs = _torch_module()
    exported = export_torch(net, inputs, "torchscript", 13, keep_initializers_as_inputs=True)
    assert len(exported.graph.input) > 1
    result, normalized = _normalize(exported)
    assert [i.name for i in normalized.graph.input] == [exported.graph.input[0].name]
    assert any("removed from the graph inputs" in note for note in result.notes)
    assert_same_outputs(exported, normalized)


@pytest.mark.parametrize("opset", [9, 11])
def test_normalize_upgrades_old_torchscript_exports(export_torch, opset, assert_same_outputs):
    net, inputs = _torch_module()
    exported = export_torch(net, inputs, "torchscript", opset)
    result, normalized = _normalize(exported)
    assert opset_version(result.model) == MIN_OPSET
    assert f"opset upgraded from {opset} to 13" in result.notes
    assert_same_outputs(exported, normalized)


def test_normalize_keeps_initializers_read_only_by_subgraphs(model_from_text, assert_same_outputs):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (bool cond, float[2] x) => (float[2] y) <float[2] b = {1.0, 2.0}> {
            c = Constant <value = float[2] {3.0, 4.0}> ()
            y = If (cond) <
                then_branch = t () => (float[2] inner) { inner = Add(x, b) },
                else_branch = e () => (float[2] other) { other = Mul(x, c) }
            >
        }
    """)
    _, normalized = _normalize(model)
    assert sorted(i.name for i in normalized.graph.initializer) == ["b", "c"]
    x = np.array([1.0, -1.0], np.float32)
    for cond in (True, False):
        assert_same_outputs(model, normalized, {"cond": np.array(cond), "x": x})


def test_normalize_never_folds_a_shape_whose_product_overflows_int64(model_from_text, op_counts):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1] x) => (float[?] y) {
            shape = Constant <value = int64[2] {4294967296, 4294967296}> ()
            z = ConstantOfShape <value = float[1] {1.0}> (shape)
            y = Add(x, z)
        }
    """)
    # refused at load now: onnx's own shape inference would try to materialise it
    with pytest.raises(ModelLoadError, match=r"\(ConstantOfShape\) in the main graph would make a tensor"):
        load_model(model)


def _fold_case(kind: str) -> onnx.ModelProto:
    """A constant that would take 10^10 elements, computed from inputs of 10^5."""
    zeros = np.zeros
    consts = {
        "Add": ([zeros((100000, 1), np.float32), zeros((1, 100000), np.float32)], {}),
        "Expand": ([zeros(1, np.float32), np.array([10000, 10000], np.int64)], {}),  # under the load bound
        "Gather": ([zeros((1, 100000), np.float32), zeros(100000, np.int64)], {"axis": 0}),
    }[kind]
    names = [f"k{i}" for i in range(len(consts[0]))]
    nodes = [
        oh.make_node("Constant", [], [n], value=onnx.numpy_helper.from_array(a))
        for n, a in zip(names, consts[0], strict=True)
    ]
    nodes += [oh.make_node(kind, names, ["c"], **consts[1]), oh.make_node("Add", ["x", "c"], ["y"])]
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("kind", ["Add", "Expand", "Gather"])
def test_normalize_bounds_a_fold_before_computing_it(kind, op_counts, monkeypatch):
    computed = []
    real = folding_module.ReferenceEvaluator

    def spy(*args, **kwargs):
        computed.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(folding_module, "ReferenceEvaluator", spy)
    result = Normalize(infer_shapes=False)(load_model(_fold_case(kind)))
    assert computed == []  # decided from the shapes, never evaluated
    assert op_counts(to_proto(result.model))[kind] == (2 if kind == "Add" else 1)  # left as it is


def test_normalize_raises_the_ir_version_of_an_ir3_model_it_upgrades(tmp_path, run_ort):
    import os

    path = os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/pytorch-converted/test_AvgPool2d")
    model = onnx.load(os.path.join(path, "model.onnx"))
    assert model.ir_version == 3 and not model.graph.initializer
    result, proto = _normalize(model)
    assert proto.ir_version == 7
    assert "IR version raised from 3 to 7, which its opsets need" in result.notes


def test_normalize_says_in_one_line_that_shape_inference_failed(model_from_text, caplog, capsys):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 3] x, int64[2, 3] n) => (float[2, 3] y) {
            y = Add(x, n)
        }
    """)
    with caplog.at_level("WARNING"):
        Normalize()(load_model(model))
    records = [r for r in caplog.records if "shape inference" in r.getMessage()]
    assert len(records) == 1 and records[0].name == "onnxq.passes.normalize"
    assert records[0].exc_info is None and "\n" not in records[0].getMessage()
    assert "Traceback" not in capsys.readouterr().err


def test_normalize_drops_opset_imports_no_node_uses():
    graph = oh.make_graph(
        [oh.make_node("Sigmoid", ["x"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    stray = onnx.OperatorSetIdProto()
    stray.domain = "com.microsoft"  # no version: 0
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13), stray])
    result, proto = _normalize(model)
    assert {o.domain for o in proto.opset_import} == {""}
    assert "opset import(s) of unused domain(s) 'com.microsoft' dropped" in result.notes


def test_normalize_removes_a_constant_whose_output_has_no_name() -> None:
    from onnxq.passes.normalize import Normalize

    unnamed = oh.make_node(
        "Constant", [], [""], value=oh.make_tensor("v", onnx.TensorProto.FLOAT, [2], [1, 2])
    )
    graph = oh.make_graph(
        [unnamed, oh.make_node("Relu", ["x"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    model = load_model(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]))
    result = Normalize()(model)  # onnx-ir's constant lift raised: an initializer needs a name
    assert [n.op_type for n in result.model.graph] == ["Relu"] and not result.model.graph.initializers
