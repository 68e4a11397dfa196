"""Tests of the quantization plan (onnxq.planning.plan): decisions, tensor groups, qparams resolution."""

from __future__ import annotations

from collections.abc import Callable

import onnx_ir as ir
import pytest

from onnxq.io import load_model
from onnxq.planning.fusion import elementwise_fusion_groups
from onnxq.planning.ops import QuantKind
from onnxq.planning.plan import QuantPlan, build_plan
from onnxq.qconfig import QConfig, QConfigMapping, QSpec, get_default_qconfig

X86 = QConfigMapping(global_qconfig=get_default_qconfig("x86"))
QNNPACK = QConfigMapping(global_qconfig=get_default_qconfig("qnnpack"))
MINMAX = QConfigMapping(
    global_qconfig=QConfig(QSpec(observer="minmax"), QSpec("int8", symmetric=True, observer="minmax"))
)
HEADER = '<ir_version: 8, opset_import: ["" : 17, "com.example" : 1]>'


PlanOf = tuple[ir.Model, QuantPlan]


@pytest.fixture
def plan_of(make_plan: Callable[..., PlanOf]) -> Callable[..., PlanOf]:
    return lambda body, mapping=X86, **options: make_plan(f"{HEADER}\n{body}", mapping, **options)


def _decision(plan: QuantPlan, name: str):
    return next(d for d in plan.decisions if d.name == name)


WEIGHTS = ", ".join(str(0.01 * (i - 27)) for i in range(54))
CONV_RELU = f"""
g (float[1, 2, 5, 5] x) => (float[1, 3, 5, 5] y)
<float[3, 2, 3, 3] w = {{{WEIGHTS}}}, float[3] b = {{0.1, -0.2, 0.3}}>
{{
    [conv] c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
    [relu] y = Relu(c)
}}
"""


def test_plan_conv_relu_is_one_unit_observed_after_relu(plan_of) -> None:
    _, plan = plan_of(CONV_RELU)
    assert plan.quantized_nodes() == ("conv",)
    relu = _decision(plan, "relu")
    assert relu.quantized and relu.anchor == "conv"
    assert plan.inputs["conv"] == ((0, "x"),)
    assert plan.outputs["conv"] == ("y",)
    assert set(plan.observed_values()) == {"x", "y"}  # nothing observed inside the group ("c")
    weight = plan.weights["conv"]
    assert (weight.weight, weight.axis, weight.bias, weight.activation) == ("w", 0, "b", "x")


def test_plan_per_tensor_weight_for_qnnpack(plan_of) -> None:
    _, plan = plan_of(CONV_RELU, QNNPACK)
    assert plan.weights["conv"].axis is None
    assert plan.observed_values()["x"].reduce_range is False


def test_plan_none_qconfig_by_name_and_op_type_leaves_float(plan_of) -> None:
    _, by_name = plan_of(CONV_RELU, X86.set_node_name("conv", None))
    _, by_type = plan_of(CONV_RELU, X86.set_op_type("Conv", None))
    for plan in (by_name, by_type):
        conv, relu = _decision(plan, "conv"), _decision(plan, "relu")
        assert not conv.quantized and "qconfig is None" in (conv.reason or "")
        assert not relu.quantized and "conv" in (relu.reason or "")
        assert plan.quantized_nodes() == () and plan.observed_values() == {}


def test_plan_unsupported_op_and_other_domain_stay_float_with_reason(plan_of) -> None:
    _, plan = plan_of("""
g (float[1, 4] x) => (float[1, 4] y, float[1, 4] z) {
    [erf] e = Erf(x)
    [custom] u = com.example.Foo(e)
    [add] y = Add(e, x)
    [add_custom] z = Add(u, x)
}
""")
    assert "Erf is not quantized" in (_decision(plan, "erf").reason or "")
    assert "com.example" in (_decision(plan, "custom").reason or "")
    assert "'u' has an unknown element type" in (_decision(plan, "add_custom").reason or "")
    assert plan.quantized_nodes() == ("add",)
    assert plan.inputs["add"] == ((0, "e"), (1, "x"))


def test_plan_integer_shape_arithmetic_stays_float(plan_of) -> None:
    _, plan = plan_of("""
g (float[2, 6] x) => (float[3, 4] y) <int64[2] two = {1, 1}> {
    [shape] s = Shape(x)
    [mul] t = Mul(s, two)
    [reshape] r = Reshape(x, t)
    [sig] y = Sigmoid(r)
}
""")
    assert "int64" in (_decision(plan, "mul").reason or "")
    assert plan.quantized_nodes() == ("reshape", "sig")


def test_plan_concat_shares_one_group_and_output_is_not_observed(plan_of) -> None:
    _, plan = plan_of("""
g (float[1, 2] a, float[1, 3] b) => (float[1, 5] y) {
    [ident] ar = Identity(a)
    [cat] y = Concat <axis = 1> (ar, b)
}
""")
    assert plan.group_of["ar"] == plan.group_of["b"] == plan.group_of["y"]
    assert set(plan.observed_values()) == {"ar", "b"}
    assert _decision(plan, "cat").kind is QuantKind.SHARED_SCALE


TWO_GEMMS = """
g (float[2, 4] x) => (float[2, 3] y, float[2, 3] h)
<float[3, 4] w1 = {1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 0}, float[3, 3] w2 = {1, 0, 1, 0, 1, 0, 1, 1, 0}> {
    [fc1] h = Gemm <transB = 1> (x, w1)
    [fc2] y = Gemm <transB = 1> (h, w2)
}
"""


def test_plan_float_outputs_leaves_only_unread_graph_outputs_float(plan_of) -> None:
    _, default = plan_of(TWO_GEMMS)
    assert default.outputs == {"fc1": ("h",), "fc2": ("y",)} and default.float_outputs == {}
    _, plan = plan_of(TWO_GEMMS, float_outputs=True)
    assert plan.outputs == {"fc1": ("h",), "fc2": ()}  # h is a graph output fc2 reads: quantized
    assert plan.float_outputs == {"fc2": ("y",)}
    assert plan.inputs["fc2"] == ((0, "h"),) and plan.weights["fc2"].weight == "w2"
    assert "y" not in plan.group_of and set(plan.observed_values()) == {"x", "h"}
    assert plan.quantized_nodes() == ("fc1", "fc2")
    assert plan.leave_float({"fc2": "kept back"}).float_outputs == {}


def test_plan_float_outputs_concat_inputs_keep_their_own_groups(plan_of) -> None:
    _, plan = plan_of("""
g (float[1, 2] a, float[1, 3] b) => (float[1, 5] y) {
    [ident] ar = Identity(a)
    [cat] y = Concat <axis = 1> (ar, b)
}
""", float_outputs=True)  # fmt: skip
    assert plan.float_outputs == {"cat": ("y",)} and plan.outputs["cat"] == ()
    assert plan.group_of["ar"] != plan.group_of["b"] and "y" not in plan.group_of
    assert set(plan.observed_values()) == {"ar", "b"}


def test_plan_pass_through_output_keeps_input_group(plan_of) -> None:
    _, plan = plan_of("""
g (float[1, 2, 4, 4] x) => (float[1, 8] y) {
    [pool] p = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (x)
    [flat] f = Flatten(p)
    [sig] y = Sigmoid(f)
}
""")
    assert plan.group_of["x"] == plan.group_of["p"] == plan.group_of["f"] != plan.group_of["y"]
    assert set(plan.observed_values()) == {"x"}


def test_plan_sigmoid_output_fixed_unless_shared_with_observed(plan_of) -> None:
    _, alone = plan_of("""
g (float[1, 4] x) => (float[2, 2] y) <int64[2] shape = {2, 2}> {
    [sig] s = Sigmoid(x)
    [reshape] y = Reshape(s, shape)
}
""")
    group = alone.groups[alone.group_of["y"]]
    assert group.fixed_range == (0.0, 1.0) and group.observed == ()
    _, shared = plan_of("""
g (float[1, 4] x) => (float[1, 8] y) {
    [sig] s = Sigmoid(x)
    [cat] y = Concat <axis = 1> (s, x)
}
""")
    group = shared.groups[shared.group_of["y"]]
    assert group.fixed_range is None and set(group.observed) == {"s", "x"}


def test_plan_constant_operand_is_a_constant_member(plan_of) -> None:
    _, plan = plan_of("""
g (float[1, 4] x) => (float[1, 4] y) <float[4] k = {0, 0, 0, 0}> { [mul] y = Mul(x, k) }
""")
    group = plan.groups[plan.group_of["k"]]
    assert group.constants == ("k",) and group.observed == ()
    assert "k" not in plan.observed_values()


@pytest.mark.parametrize(("trans_b", "axis"), [(0, 1), (1, 0)])
def test_plan_gemm_weight_axis_follows_trans_b(plan_of, trans_b: int, axis: int) -> None:
    shape = "3, 4" if trans_b else "4, 3"
    _, plan = plan_of(f"""
g (float[2, 4] x) => (float[2, 3] y)
<float[{shape}] w = {{{", ".join(["0.5"] * 12)}}}, float[1, 3] b = {{1, 2, 3}}>
{{ [gemm] y = Gemm <transB = {trans_b}> (x, w, b) }}
""")
    weight = plan.weights["gemm"]
    assert (weight.axis, weight.bias) == (axis, "b")


def test_plan_conv_transpose_groups_repeat_bias_scales(plan_of) -> None:
    _, plan = plan_of(f"""
g (float[1, 4, 3, 3] x) => (float[1, 6, 4, 4] y)
<float[4, 3, 2, 2] w = {{{", ".join(["0.25"] * 48)}}}, float[6] b = {{1, 2, 3, 4, 5, 6}}>
{{ [convt] y = ConvTranspose <group = 2> (x, w, b) }}
""")
    weight = plan.weights["convt"]
    assert (weight.axis, weight.bias, weight.bias_repeats) == (1, "b", 2)


def test_plan_matmul_of_two_activations_quantizes_both(plan_of) -> None:
    _, plan = plan_of("""
g (float[2, 4] a, float[4, 3] b) => (float[2, 3] y) { [mm] y = MatMul(a, b) }
""")
    assert "mm" not in plan.weights
    assert plan.inputs["mm"] == ((0, "a"), (1, "b"))


def test_plan_conv_with_dynamic_weight_stays_float(plan_of) -> None:
    _, plan = plan_of("""
g (float[1, 2, 4, 4] x, float[3, 2, 1, 1] w) => (float[1, 3, 4, 4] y) { [conv] y = Conv(x, w) }
""")
    assert "weight 'w' is not a constant" in (_decision(plan, "conv").reason or "")


RESIDUAL = """
g (float[1, 4] x, float[1, 4] r) => (float[1, 4] y, float[1, 4] z) {
    [add] s = Add(x, r)
    [relu] y = Relu(s)
    [add2] t = Add(x, x)
    [relu2] u = Relu(t)
    [erf] z = Erf(t)
}
"""


def test_elementwise_fusion_groups_take_add_with_sole_activation_reader(model_from_text) -> None:
    model = load_model(model_from_text(f"{HEADER}\n{RESIDUAL}"))
    groups = elementwise_fusion_groups(model.graph)
    assert [(g.anchor.name, [n.name for n in g.absorbed], g.output.name) for g in groups] == [
        ("add", ["relu"], "y")
    ]
    assert elementwise_fusion_groups(model.graph, groups) == []  # nodes already taken are skipped


def test_plan_add_relu_unit_observed_after_relu(model_from_text) -> None:
    model = load_model(model_from_text(f"{HEADER}\n{RESIDUAL}"))
    plan = build_plan(model, X86, elementwise_fusion_groups(model.graph))
    assert plan.outputs["add"] == ("y",) and _decision(plan, "relu").anchor == "add"
    assert plan.outputs["add2"] == ("t",)
    assert "Relu is not quantized" in (_decision(plan, "relu2").reason or "")
    assert set(plan.observed_values()) == {"x", "r", "y", "t"}


IF_MODEL = f"""
g (float[2, 4] x, bool c) => (float[2, 4] y)
<float[4, 4] w = {{{", ".join(str(0.01 * (i - 8)) for i in range(16))}}}>
{{
    [mm] h = MatMul(x, w)
    [branch] y = If(c) <
        then_branch = t () => (float[2, 4] a) {{ [inner_relu] a = Relu(h) }},
        else_branch = e () => (float[2, 4] b) {{
            [inner_mm] m = MatMul(h, w)
            b = If(c) <
                then_branch = t2 () => (float[2, 4] d) {{ [deep_add] d = Add(m, m) }},
                else_branch = e2 () => (float[2, 4] f) {{ [deep_neg] f = Neg(m) }}
            >
        }}
    >
}}
"""


def test_plan_covers_the_nodes_of_if_branches_after_their_owner(plan_of) -> None:
    _, plan = plan_of(IF_MODEL)
    assert [(d.name, d.op_type, d.reason) for d in plan.decisions[2:]] == [
        ("inner_relu", "Relu", "op type Relu is not quantized by onnxq"),
        ("inner_mm", "MatMul", None),  # reads h from the main graph and w, an outer initializer
        ("branch/If_1", "If", "the node has no name"),  # unnamed: called after its owner
        ("deep_add", "Add", None),
        ("deep_neg", "Neg", "op type Neg is not quantized by onnxq"),
    ]
    assert [d.name for d in plan.decisions[:2]] == ["mm", "branch"]
    assert plan.decisions[1].reason == "op type If is not quantized by onnxq"
    assert _decision(plan, "inner_mm").kind is QuantKind.WEIGHTED
    assert plan.quantized_nodes() == ("mm", "inner_mm", "deep_add")
    assert set(plan.observed_values()) == {"x", "h", "m", "d"}


def test_plan_conv_whose_weight_holds_nan_stays_float_with_reason(model_from_text) -> None:
    import numpy as np
    import onnx

    from onnxq.planning.fusion import find_fusion_groups

    proto = model_from_text(f"{HEADER}\n{CONV_RELU}")
    w = onnx.numpy_helper.to_array(proto.graph.initializer[0]).copy()
    w.flat[[3, 7]] = [np.nan, np.inf]
    proto.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(w, "w"))
    model = load_model(proto)
    plan = build_plan(model, X86, find_fusion_groups(model.graph))
    assert plan.quantized_nodes() == ()
    assert "weight 'w' holds 2 NaN/Inf value(s)" in (_decision(plan, "conv").reason or "")


def test_plan_add_of_a_constant_holding_inf_stays_float_with_reason() -> None:
    # the fuzzer's find: the constant was quantized with the Add's qparams (inf / scale -> NaN)
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from onnxq.planning.fusion import find_fusion_groups

    c = np.ones((2, 4), np.float32)
    c[1, 2] = np.inf
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"], name="add")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [onnx.numpy_helper.from_array(c, "c")],
    )
    model = load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    plan = build_plan(model, X86, find_fusion_groups(model.graph))
    assert plan.quantized_nodes() == ()
    assert "constant input 'c' holds 1 NaN/Inf value(s)" in (_decision(plan, "add").reason or "")


def test_plan_conv_whose_bias_holds_nan_stays_float_with_reason(model_from_text) -> None:
    # the fuzzer's find: the bias was rounded to int32 from NaN
    import numpy as np
    import onnx

    from onnxq.planning.fusion import find_fusion_groups

    proto = model_from_text(f"{HEADER}\n{CONV_RELU}")
    b = next(t for t in proto.graph.initializer if t.name == "b")
    bias = onnx.numpy_helper.to_array(b).copy()
    bias[1] = np.nan
    b.CopyFrom(onnx.numpy_helper.from_array(bias, "b"))
    model = load_model(proto)
    plan = build_plan(model, X86, find_fusion_groups(model.graph))
    assert plan.quantized_nodes() == ()
    assert "bias 'b' holds 1 NaN/Inf value(s)" in (_decision(plan, "conv").reason or "")


@pytest.mark.parametrize(
    ("op", "weight", "want"),
    [
        ("Gemm", "float[4] w = {1, 2, 3, 4}", "rank 1; Gemm takes rank 2"),
        (
            "Conv",
            "float[4, 4] w = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}",
            "rank 2; Conv takes rank 3 or more",
        ),
    ],
)
def test_plan_weight_of_a_rank_the_op_does_not_take_stays_float_with_reason(
    plan_of, op, weight, want
) -> None:  # type: ignore[no-untyped-def]
    _, plan = plan_of(f"""
        g (float[4, 4] x) => (float[N] y) <{weight}> {{ [node] y = {op}(x, w) }}
    """)
    decision = next(d for d in plan.decisions if d.op_type == op)
    assert not decision.quantized and want in (decision.reason or "")
