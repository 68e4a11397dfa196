"""Tests of the supported-op table (onnxq.planning.ops)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from onnxq.planning.ops import OpRule, QuantKind, get_rule, register_op, supported_ops
from onnxq.qparams import dequantize, fixed_qparams, quantize

EXPECTED_KINDS = {
    "Conv": QuantKind.WEIGHTED,
    "ConvTranspose": QuantKind.WEIGHTED,
    "Gemm": QuantKind.WEIGHTED,
    "MatMul": QuantKind.WEIGHTED,
    "Gather": QuantKind.WEIGHTED,
    "Add": QuantKind.ELEMENTWISE,
    "Mul": QuantKind.ELEMENTWISE,
    "AveragePool": QuantKind.ELEMENTWISE,
    "GlobalAveragePool": QuantKind.ELEMENTWISE,
    "Concat": QuantKind.SHARED_SCALE,
    "MaxPool": QuantKind.PASS_THROUGH,
    "Reshape": QuantKind.PASS_THROUGH,
    "Flatten": QuantKind.PASS_THROUGH,
    "Transpose": QuantKind.PASS_THROUGH,
    "Squeeze": QuantKind.PASS_THROUGH,
    "Unsqueeze": QuantKind.PASS_THROUGH,
    "Slice": QuantKind.PASS_THROUGH,
    "Split": QuantKind.PASS_THROUGH,
    "Resize": QuantKind.PASS_THROUGH,
    "DepthToSpace": QuantKind.PASS_THROUGH,
    "SpaceToDepth": QuantKind.PASS_THROUGH,
    "Pad": QuantKind.PASS_THROUGH,
    "Sigmoid": QuantKind.FIXED_RANGE,
    "Softmax": QuantKind.FIXED_RANGE,
    "Tanh": QuantKind.FIXED_RANGE,
}


def _node(op_type: str, n_inputs: int = 1, n_outputs: int = 1, **attrs: object) -> ir.Node:
    inputs = [ir.Value(name=f"in{i}") for i in range(n_inputs)]
    attributes = [
        ir.AttrInt64(k, v) if isinstance(v, int) else ir.AttrString(k, str(v)) for k, v in attrs.items()
    ]
    return ir.Node("", op_type, inputs, attributes, num_outputs=n_outputs)


def test_supported_ops_is_exactly_the_spec_table() -> None:
    assert supported_ops() == tuple(sorted(EXPECTED_KINDS))


@pytest.mark.parametrize(("op_type", "kind"), sorted(EXPECTED_KINDS.items()))
def test_get_rule_gives_kind_for_supported_op(op_type: str, kind: QuantKind) -> None:
    rule = get_rule(op_type)
    assert rule is not None and rule.op_type == op_type and rule.kind is kind
    assert get_rule(op_type, "ai.onnx") is rule


@pytest.mark.parametrize("op_type", ["Relu", "LayerNormalization", "Erf", "GatherND", "BatchNormalization"])
def test_get_rule_is_none_for_unsupported_op(op_type: str) -> None:
    assert get_rule(op_type) is None


@pytest.mark.parametrize("domain", ["com.microsoft", "custom.domain"])
def test_get_rule_is_none_for_other_domain(domain: str) -> None:
    assert get_rule("Conv", domain) is None


def test_register_op_rejects_second_registration_of_op() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_op(OpRule("Conv", QuantKind.ELEMENTWISE))


def test_oprule_rejects_weighted_rule_without_weight() -> None:
    with pytest.raises(ValueError, match="WEIGHTED"):
        OpRule("X", QuantKind.WEIGHTED)
    with pytest.raises(ValueError, match="FIXED_RANGE"):
        OpRule("X", QuantKind.FIXED_RANGE)
    with pytest.raises(ValueError, match="contain 0"):
        OpRule("X", QuantKind.FIXED_RANGE, fixed_range=(0.5, 1.0))


@pytest.mark.parametrize(
    ("op_type", "attrs", "rank", "axis"),
    [
        ("Conv", {}, 4, 0),
        ("ConvTranspose", {}, 4, 1),
        ("Gemm", {}, 2, 1),
        ("Gemm", {"transB": 0}, 2, 1),
        ("Gemm", {"transB": 1}, 2, 0),
        ("MatMul", {}, 2, 1),
        ("MatMul", {}, 3, 2),
    ],
)
def test_weight_axis_is_output_channel_axis_per_op(op_type: str, attrs: dict, rank: int, axis: int) -> None:
    rule = get_rule(op_type)
    assert rule is not None and rule.weight_axis is not None
    assert rule.weight_axis(_node(op_type, 3, **attrs), rank) == axis


@pytest.mark.parametrize(
    ("name", "dtype", "scale", "zero_point"),
    [
        ("Sigmoid", "uint8", 1 / 256, 0),
        ("Sigmoid", "int8", 1 / 256, -128),
        ("Softmax", "uint8", 1 / 256, 0),
        ("Tanh", "uint8", 1 / 128, 128),
        ("Tanh", "int8", 1 / 128, 0),
    ],
)
def test_fixed_qparams_match_known_ranges(name: str, dtype: str, scale: float, zero_point: int) -> None:
    rule = get_rule(name)
    assert rule is not None and rule.fixed_range is not None
    qp = fixed_qparams(rule.fixed_range, dtype)
    assert float(qp.scale) == pytest.approx(scale, rel=0, abs=0)
    assert int(qp.zero_point) == zero_point and qp.dtype == dtype
    lo, hi = rule.fixed_range
    grid = np.linspace(lo, hi - float(qp.scale), 97, dtype=np.float32)
    assert np.max(np.abs(dequantize(quantize(grid, qp), qp) - grid)) <= float(qp.scale) / 2 + 1e-7


def test_activation_indices_cover_all_inputs_of_concat_and_skip_missing() -> None:
    concat = get_rule("Concat")
    assert concat is not None and concat.activation_indices(_node("Concat", 3)) == (0, 1, 2)
    add = get_rule("Add")
    assert add is not None and add.activation_indices(_node("Add", 2)) == (0, 1)
    resize = get_rule("Resize")
    node = ir.Node("", "Resize", [ir.Value(name="x"), None, ir.Value(name="scales")])
    assert resize is not None and resize.activation_indices(node) == (0,)


def test_output_indices_all_for_split_first_for_maxpool() -> None:
    split, maxpool = get_rule("Split"), get_rule("MaxPool")
    assert split is not None and split.output_indices(_node("Split", 1, 3)) == (0, 1, 2)
    assert maxpool is not None and maxpool.output_indices(_node("MaxPool", 1, 2)) == (0,)


def _pad_node(value: float | None, mode: str = "constant") -> ir.Node:
    inputs = [ir.Value(name="x"), ir.Value(name="pads")]
    if value is not None:
        tensor = ir.tensor(np.array(value, dtype=np.float32))
        inputs.append(ir.Value(name="cv", const_value=tensor))
    return ir.Node("", "Pad", inputs, [ir.AttrString("mode", mode)])


def test_pad_check_refuses_nonzero_constant_value_only() -> None:
    rule = get_rule("Pad")
    assert rule is not None and rule.check is not None
    assert rule.check(_pad_node(None)) is None
    assert rule.check(_pad_node(0.0)) is None
    assert rule.check(_pad_node(1.5, mode="reflect")) is None
    reason = rule.check(_pad_node(1.5))
    assert reason is not None and "not 0" in reason


def test_onnx_knows_every_supported_op() -> None:
    for op in supported_ops():
        assert onnx.defs.has(op), op
