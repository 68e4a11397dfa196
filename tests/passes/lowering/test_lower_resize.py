"""Lowering a nearest Resize between two of our convs to a standard Resize of the NHWC twin.

The chain conv → Resize → conv must run with no Transpose between our ops and give the QDQ
model's bytes on onnxruntime (both sides as their exact uint8 twins), for every way opsets write
a Resize: opset 10's (X, scales), opset 11's (X, roi, scales) and (X, roi, empty scales, sizes),
opset 13+'s optional roi, and opset 18's ``axes`` attribute; up-sampling and down-sampling, and the
coordinate modes and rounding modes that change which element is copied. Linear resizing,
cropping and computed sizes stay QDQ with their reason.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from _lowering_helpers import F32, append_qdq_conv, feeds, init, make_model, same_bytes
from onnx import helper

from onnxq.kernels.custom_ops import DOMAIN
from onnxq.lower import lower


def _resize_chain(
    opset: int, resize_inputs: list[str], extra: list[onnx.TensorProto], head: bool = True, **attributes
) -> onnx.ModelProto:
    """x (quantized) → conv a (+Relu) → Resize (inputs ``ad`` + ``resize_inputs``, ``extra``
    constants) with the same qparams on both sides → conv h (``head``) or the output ``y``."""
    rng = np.random.default_rng(0)
    inits = [init("xs", 0.05, F32), init("xz", 128, np.uint8), init("cs", 0.1, F32), init("cz", 0, np.uint8)]
    inits += extra
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    ]
    append_qdq_conv(nodes, inits, rng, "a", "xd", 3, 4, per_channel=opset >= 13)
    nodes += [
        helper.make_node("Relu", ["ac"], ["ar"]),
        helper.make_node("QuantizeLinear", ["ar", "cs", "cz"], ["aq"]),
        helper.make_node("DequantizeLinear", ["aq", "cs", "cz"], ["ad"]),
        helper.make_node("Resize", ["ad", *resize_inputs], ["r"], name="resize", **attributes),
        helper.make_node("QuantizeLinear", ["r", "cs", "cz"], ["rq"]),
        helper.make_node("DequantizeLinear", ["rq", "cs", "cz"], ["rd" if head else "y"]),
    ]
    if head:
        append_qdq_conv(nodes, inits, rng, "h", "rd", 4, 2, per_channel=opset >= 13)
        nodes += [
            helper.make_node("QuantizeLinear", ["hc", "xs", "xz"], ["hq"]),
            helper.make_node("DequantizeLinear", ["hq", "xs", "xz"], ["y"]),
        ]
    return make_model(nodes, {"x": 3}, inits, opset=opset)


def _scales(values: list[float]) -> onnx.TensorProto:
    return init("scales", values, F32)


def _sizes(values: list[int]) -> onnx.TensorProto:
    return init("sizes", values, np.int64)


def _ops(model: onnx.ModelProto) -> list[tuple[str, str]]:
    return [(n.domain, n.op_type) for n in model.graph.node]


CASES = {
    "opset10-scales": (10, ["scales"], [_scales([1, 1, 2, 2])], {}),
    "opset11-roi-scales": (11, ["roi", "scales"], [init("roi", [], F32), _scales([1, 1, 2, 3])], {}),
    "opset11-sizes": (
        11, ["roi", "empty", "sizes"], [init("roi", [], F32), init("empty", [], F32), _sizes([2, 4, 12, 9])],
        {},
    ),
    "opset13-no-roi": (13, ["", "scales"], [_scales([1, 1, 2, 2])], {}),
    "opset13-down": (13, ["", "scales"], [_scales([1, 1, 0.5, 0.5])], {}),
    "opset13-asymmetric-floor": (
        13, ["", "scales"], [_scales([1, 1, 1.5, 2.5])],
        {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
    ),
    "opset13-half-pixel-ceil": (
        13, ["", "", "sizes"], [_sizes([2, 4, 9, 11])],
        {"coordinate_transformation_mode": "half_pixel", "nearest_mode": "ceil"},
    ),
    "opset18-axes": (18, ["", "scales"], [_scales([2, 3])], {"axes": [2, 3]}),
    "opset18-negative-axes": (18, ["", "", "sizes"], [_sizes([12, 5])], {"axes": [-2, -1]}),
}  # fmt: skip
#: The same resizes without ``axes``: onnxruntime 1.32 fails to run a QDQ model whose Resize has
#: ``axes`` at its default optimisation level (its layout transformer gathers the 2 scales with 4
#: indices), so the QDQ bytes to match come from these.
WITHOUT_AXES = {
    "opset18-axes": (["", "scales"], [_scales([1, 1, 2, 3])]),
    "opset18-negative-axes": (["", "", "sizes"], [_sizes([2, 4, 12, 5])]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_nearest_resize_between_our_convs_runs_in_nhwc_with_the_qdq_models_bytes(case: str) -> None:
    opset, inputs, extra, attributes = CASES[case]
    qdq = _resize_chain(opset, inputs, extra, **attributes)
    result = lower(qdq)
    assert result.notes == ()
    ops = _ops(result.model)
    assert ops.count((DOMAIN, "QLinearConv")) == 2 and ("", "Resize") in ops
    assert ("", "Transpose") not in ops and ("", "QuantizeLinear") not in ops
    reference = _resize_chain(opset, *WITHOUT_AXES[case]) if case in WITHOUT_AXES else qdq
    same_bytes(reference, result.model, feeds(qdq))


def test_a_resize_read_by_the_output_leaves_through_our_dequantize() -> None:
    qdq = _resize_chain(13, ["", "scales"], [_scales([1, 1, 2, 2])], head=False)
    result = lower(qdq)
    ops = _ops(result.model)
    assert ("", "Resize") in ops and (DOMAIN, "Dequantize") in ops and ("", "Transpose") not in ops
    same_bytes(qdq, result.model, feeds(qdq))


@pytest.mark.parametrize(
    ("attributes", "inputs", "extra", "reason"),
    [
        ({"mode": "linear"}, ["", "scales"], [_scales([1, 1, 2, 2])], "only nearest copies values"),
        (
            {"coordinate_transformation_mode": "tf_crop_and_resize"},
            ["roi", "scales"], [init("roi", [0, 0, 0, 0, 1, 1, 1, 1], F32), _scales([1, 1, 2, 2])],
            "tf_crop_and_resize",
        ),
        ({}, ["", "scales"], [], "not constants"),
    ],
)  # fmt: skip
def test_a_resize_that_does_not_copy_or_is_not_constant_stays_qdq_with_its_reason(
    attributes: dict, inputs: list[str], extra: list[onnx.TensorProto], reason: str
) -> None:
    qdq = _resize_chain(13, inputs, extra, **attributes)
    if not extra:  # scales computed at run time: an input of the graph
        qdq.graph.input.append(helper.make_tensor_value_info("scales", onnx.TensorProto.FLOAT, [4]))
    result = lower(qdq)
    ops = _ops(result.model)
    assert ("", "Resize") in ops and ops.count((DOMAIN, "QLinearConv")) == 2
    resize = next(n for n in result.model.graph.node if n.op_type == "Resize")
    assert resize.input[0] != "aq_nhwc" and not any("nhwc" in i for i in resize.input)
    assert any(note.startswith("Resize 'resize' stays QDQ") and reason in note for note in result.notes), (
        result.notes
    )
    if extra:
        same_bytes(qdq, result.model, feeds(qdq))


def test_scales_made_by_a_constant_node_as_other_exporters_write_them_are_lowered() -> None:
    """Weights and scales as ``Constant`` nodes (tf2onnx, older exporters), at opset 11."""
    qdq = _resize_chain(11, ["roi", "scales"], [])
    constants = [
        helper.make_node(
            "Constant", [], ["roi"], value=helper.make_tensor("r", onnx.TensorProto.FLOAT, [0], [])
        ),
        helper.make_node(
            "Constant",
            [],
            ["scales"],
            value=helper.make_tensor("s", onnx.TensorProto.FLOAT, [4], [1, 1, 2, 2]),
        ),
    ]
    for node in reversed(constants):
        qdq.graph.node.insert(0, node)
    result = lower(qdq)
    assert result.notes == ()
    ops = _ops(result.model)
    assert ops.count((DOMAIN, "QLinearConv")) == 2 and ("", "Transpose") not in ops
    same_bytes(qdq, result.model, feeds(qdq))
