"""The dynamic plan (onnxq.planning.dynamic): what each node becomes, and why not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from onnxq.errors import ConfigError
from onnxq.io import load_model
from onnxq.planning.dynamic import (
    DYNAMIC_OP_TYPES,
    DynamicAction,
    DynamicFormat,
    build_dynamic_plan,
    check_op_types,
)
from onnxq.qconfig import QConfig, QConfigMapping, get_default_qconfig


def _model(model_from_text):
    """MatMul with a constant and a non-constant weight, an RNN, a Gemm: nodes named by op and index."""
    text = (
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[2, 8, 4] x, float[4, 6] w_in) => (float[2, 8] y, float[2, 8, 6] z, float[1, 2, 16] h)\n"
        "<float[4, 5] w = {" + ",".join(["0.5"] * 20) + "}, "
        "float[1, 16, 5] rw = {" + ",".join(["0.25"] * 80) + "}, "
        "float[1, 16, 16] rr = {" + ",".join(["-0.125"] * 256) + "}, "
        "float[32, 8] gw = {" + ",".join(["1.0"] * 256) + "}> {\n"
        "    a = MatMul (x, w)\n"
        "    z = MatMul (x, w_in)\n"
        "    t = Transpose <perm = [1, 0, 2]> (a)\n"
        "    s, h = RNN <hidden_size = 16> (t, rw, rr)\n"
        "    f2 = Flatten (x)\n"
        "    y = Gemm (f2, gw)\n"
        "}\n"
    )
    model = load_model(model_from_text(text))
    for i, node in enumerate(model.graph):
        node.name = f"{node.op_type.lower()}{i}"
    return model


def _plan(model, mapping=None, op_types=None, fmt=DynamicFormat.QDQ, reduce_range=None):
    mapping = mapping or QConfigMapping(get_default_qconfig("per_channel_dynamic"))
    return build_dynamic_plan(model.graph, mapping, check_op_types(op_types), fmt, None, reduce_range)


@pytest.mark.parametrize("fmt", list(DynamicFormat))
@pytest.mark.parametrize("reduce_range", [True, False, None])
def test_reduce_range_sets_the_weights_of_integer_matmuls_only(model_from_text, fmt, reduce_range) -> None:
    """7-bit weights where an integer matmul reads them (the MatMul, the Gemm; the RNN in the
    onnxq format); the weight-only RNN keeps its spec (its weights are dequantized to float), and
    None leaves every spec as the mapping says."""
    seven_bit = QConfigMapping(replace(get_default_qconfig("per_channel_dynamic"), weight=replace(
        get_default_qconfig("per_channel_dynamic").weight, reduce_range=True)))  # fmt: skip
    for mapping, spec_says in ((None, False), (seven_bit, True)):
        by_name = {d.name: d for d in _plan(_model(model_from_text), mapping, fmt=fmt,
                                            reduce_range=reduce_range).decisions}  # fmt: skip
        for name in ("matmul0", "gemm5", "rnn3"):
            integer = name != "rnn3" or fmt is DynamicFormat.ONNXQ
            assert by_name[name].action is not DynamicAction.WEIGHT_ONLY or not integer
            want = spec_says if reduce_range is None or not integer else reduce_range
            assert {w.spec.reduce_range for w in by_name[name].weights} == {want}, name


def test_plan_quantizes_constant_weights_and_says_why_not(model_from_text) -> None:
    plan = _plan(_model(model_from_text))
    by_name = {d.name: d for d in plan.decisions}
    assert by_name["matmul0"].action is DynamicAction.MATMUL
    assert by_name["matmul0"].weights[0].channel_axes == (1,)
    assert by_name["matmul1"].reason == "weight 'w_in' is not a constant"
    assert by_name["transpose2"].reason == "op type Transpose is not quantized dynamically"
    assert by_name["rnn3"].action is DynamicAction.WEIGHT_ONLY
    assert [(s.input, s.channel_axes) for s in by_name["rnn3"].weights] == [(1, (0, 1)), (2, (0, 1))]
    assert by_name["gemm5"].action is DynamicAction.MATMUL


def test_plan_follows_op_types_and_the_mapping(model_from_text) -> None:
    model = _model(model_from_text)
    plan = _plan(model, op_types=["RNN"])
    assert {d.name for d in plan.planned(DynamicAction.WEIGHT_ONLY, DynamicAction.MATMUL)} == {"rnn3"}
    assert dict((d.name, d.reason) for d in plan.decisions)["matmul0"] == (
        "op type MatMul is not among the op types asked for"
    )
    weight_only = QConfig(None, get_default_qconfig("dynamic").weight)
    mapping = (
        QConfigMapping(get_default_qconfig("dynamic"))
        .set_node_name("gemm5", None)
        .set_op_type("MatMul", weight_only)
    )
    by_name = {d.name: d for d in _plan(model, mapping).decisions}
    assert by_name["gemm5"].reason == "its qconfig is None (left in float by the QConfigMapping)"
    assert by_name["matmul0"].action is DynamicAction.WEIGHT_ONLY
    assert by_name["matmul0"].weights[0].channel_axes == ()  # the "dynamic" preset: per tensor
    static = QConfigMapping(get_default_qconfig("x86"))
    assert dict((d.name, d.reason) for d in _plan(model, static).decisions)["matmul0"] == (
        "its qconfig has static activations, which quantize_dynamic does not calibrate"
    )


def test_onnxruntime_format_keeps_gru_and_rnn_weight_only_with_a_note(model_from_text) -> None:
    plan = _plan(_model(model_from_text), fmt=DynamicFormat.ONNXRUNTIME)
    assert {d.name: d.action for d in plan.decisions}["rnn3"] is DynamicAction.WEIGHT_ONLY
    assert plan.notes == ("rnn3: onnxruntime has no dynamically quantized RNN: weight-only "
                          "(int8 behind DequantizeLinear)",)  # fmt: skip


def test_check_op_types_names_the_known_ones() -> None:
    assert check_op_types(None) == frozenset(DYNAMIC_OP_TYPES)
    assert check_op_types("LSTM") == {"LSTM"}
    with pytest.raises(ConfigError, match=r"'Matmul'.*known: MatMul, Gemm, LSTM, GRU, RNN"):
        check_op_types(["Matmul", "LSTM"])
