"""Lowering Concat (QDQ) and com.microsoft QLinearConcat (QOperator) to ai.onnxq.QLinearConcat.

Every lowered model must give the QDQ model's bytes on onnxruntime (both sides as their exact
uint8 twins, as in tests/e2e/test_lowered.py): copies where the qparams agree, requantisation
where they do not, in NCHW when the inputs are not ours and in NHWC (no Transpose) inside a
chain of our convs. A Concat with a float input stays QDQ, with the reason.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from _lowering_helpers import F32, H, W, append_qdq_conv, feeds, init, make_model, same_bytes
from onnx import TensorProto, helper, numpy_helper

from onnxq.io import load_model
from onnxq.kernels.custom_ops import DOMAIN
from onnxq.lower import lower
from onnxq.passes.lower_onnxq import LowerToOnnxq


def _qdq_concat(
    channels: list[int], scales: list[float], zero_points: list[int], axis: int, dtype: type = np.uint8
) -> onnx.ModelProto:
    """Float inputs, each quantized with its qparams, dequantized, concatenated, quantized at
    (0.04, 128 or 0) and dequantized into ``y``."""
    inits = [init("ys", 0.04, F32), init("yz", 128 if dtype is np.uint8 else 0, dtype)]
    nodes, concat_inputs = [], []
    for i, (s, z) in enumerate(zip(scales, zero_points, strict=True)):
        inits += [init(f"s{i}", s, F32), init(f"z{i}", z, dtype)]
        nodes += [
            helper.make_node("QuantizeLinear", [f"x{i}", f"s{i}", f"z{i}"], [f"q{i}"]),
            helper.make_node("DequantizeLinear", [f"q{i}", f"s{i}", f"z{i}"], [f"d{i}"]),
        ]
        concat_inputs.append(f"d{i}")
    nodes += [
        helper.make_node("Concat", concat_inputs, ["c"], axis=axis, name="cat"),
        helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"]),
    ]
    return make_model(nodes, {f"x{i}": c for i, c in enumerate(channels)}, inits)


def _conv_chain(axis: int, head: bool = True, b_channels: int = 5) -> onnx.ModelProto:
    """Two QDQ convs (+Relu) of x, concatenated along ``axis`` (one scale for the group, as
    onnxq's quantizer gives a Concat), then read by a third QDQ conv (``head``) or dequantized
    into ``y``."""
    rng = np.random.default_rng(0)
    inits = [
        init("xs", 0.05, F32),
        init("xz", 128, np.uint8),
        init("cs", 0.1, F32),
        init("cz", 0, np.uint8),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    ]

    for name, cout in (("a", 4), ("b", b_channels)):
        append_qdq_conv(nodes, inits, rng, name, "xd", 3, cout)
        nodes += [
            helper.make_node("Relu", [f"{name}c"], [f"{name}r"]),
            helper.make_node("QuantizeLinear", [f"{name}r", "cs", "cz"], [f"{name}q"]),
            helper.make_node("DequantizeLinear", [f"{name}q", "cs", "cz"], [f"{name}d"]),
        ]
    nodes += [
        helper.make_node("Concat", ["ad", "bd"], ["cat"], axis=axis, name="cat"),
        helper.make_node("QuantizeLinear", ["cat", "cs", "cz"], ["catq"]),
        helper.make_node("DequantizeLinear", ["catq", "cs", "cz"], ["catd" if head else "y"]),
    ]
    if head:
        append_qdq_conv(nodes, inits, rng, "h", "catd", 9, 2)
        nodes += [
            helper.make_node("QuantizeLinear", ["hc", "xs", "xz"], ["hq"]),
            helper.make_node("DequantizeLinear", ["hq", "xs", "xz"], ["y"]),
        ]
    return make_model(nodes, {"x": 3}, inits)


def _ops(model: onnx.ModelProto) -> list[tuple[str, str]]:
    return [(n.domain, n.op_type) for n in model.graph.node]


def _concat(model: onnx.ModelProto) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.domain == DOMAIN and n.op_type == "QLinearConcat")


@pytest.mark.parametrize(
    ("channels", "scales", "zero_points", "axis"),
    [
        ([3, 5], [0.04, 0.04], [128, 128], 1),  # the output's qparams: copied
        ([3, 5], [0.02, 0.09], [100, 140], 1),  # requantised
        ([2, 1, 4], [0.04, 0.031, 0.07], [128, 0, 255], 1),  # three, one copied
        ([3, 3], [0.05, 0.02], [128, 64], -1),  # negative axis (the width)
        ([3, 3], [0.05, 0.02], [128, 64], 0),  # the batch
    ],
)
def test_a_qdq_concat_of_tensors_not_ours_runs_in_nchw_with_the_qdq_models_bytes(
    channels: list[int], scales: list[float], zero_points: list[int], axis: int
) -> None:
    qdq = _qdq_concat(channels, scales, zero_points, axis)
    result = lower(qdq)
    assert result.lowered == 1 and result.notes == ()
    ops = _ops(result.model)
    assert ("", "Concat") not in ops and ("", "Transpose") not in ops
    node = _concat(result.model)
    assert helper.get_attribute_value(node.attribute[0]) == axis  # NCHW: the axis as it was
    same_bytes(qdq, result.model, feeds(qdq))


@pytest.mark.parametrize(("axis", "nhwc_axis"), [(1, 3), (-3, 3)])
def test_a_concat_of_our_convs_runs_in_nhwc_with_no_transpose_between_our_ops(
    axis: int, nhwc_axis: int
) -> None:
    qdq = _conv_chain(axis)
    result = lower(qdq)
    assert result.notes == ()
    ops = _ops(result.model)
    assert ops.count((DOMAIN, "QLinearConv")) == 3 and ("", "Transpose") not in ops
    assert ops.count((DOMAIN, "Quantize")) == 1 and ops.count((DOMAIN, "Dequantize")) == 1
    assert helper.get_attribute_value(_concat(result.model).attribute[0]) == nhwc_axis
    same_bytes(qdq, result.model, feeds(qdq))


@pytest.mark.parametrize(("axis", "nhwc_axis"), [(2, 1), (-1, 2), (0, 0)])
def test_a_concat_of_our_convs_along_other_axes_maps_the_axis_to_nhwc(axis: int, nhwc_axis: int) -> None:
    """Height, width, batch; the concat read by the graph output through ai.onnxq.Dequantize."""
    qdq = _conv_chain(axis, head=False, b_channels=4)  # only the concat axis may differ
    result = lower(qdq)
    assert result.notes == ()
    ops = _ops(result.model)
    assert ("", "Transpose") not in ops and (DOMAIN, "Dequantize") in ops
    assert helper.get_attribute_value(_concat(result.model).attribute[0]) == nhwc_axis
    same_bytes(qdq, result.model, feeds(qdq))


def test_a_concat_of_ours_and_of_a_quantized_input_runs_in_nchw_between_transposes() -> None:
    """Conv a's output (ours, NHWC) and x quantized: the concat reads both in NCHW (a Transpose
    back for a) and the head conv reads the concat's output through a Transpose to NHWC."""
    qdq = _conv_chain(1)
    for node in qdq.graph.node:
        if node.op_type == "Concat":
            node.input[1] = "xd"  # x's 3 channels in place of conv b's 5
        if node.name == "conv_h":
            node.input[1] = "hwd7"
    rng = np.random.default_rng(3)
    qdq.graph.initializer.append(
        numpy_helper.from_array(rng.integers(-127, 128, (2, 7, 3, 3), dtype=np.int8), "hw7")
    )
    qdq.graph.node.insert(0, helper.make_node("DequantizeLinear", ["hw7", "hws"], ["hwd7"], axis=0))
    result = lower(qdq)
    assert result.notes == ()
    ops = _ops(result.model)
    assert ops.count((DOMAIN, "QLinearConv")) == 2 and ops.count(("", "Transpose")) == 2  # b is dead
    assert helper.get_attribute_value(_concat(result.model).attribute[0]) == 1
    same_bytes(qdq, result.model, feeds(qdq))


def test_a_concat_with_a_float_input_stays_qdq_with_the_reason_and_shape_arithmetic_is_not_noted() -> None:
    qdq = _qdq_concat([3, 5], [0.04, 0.04], [128, 128], 1)
    for node in qdq.graph.node:
        if node.op_type == "Concat":
            node.input[1] = "x1"  # the float tensor itself
    shape = [
        helper.make_node("Shape", ["x0"], ["shape"]),
        helper.make_node("Concat", ["shape", "shape"], ["shapes"], axis=0, name="shape_cat"),
    ]
    qdq.graph.node.extend(shape)
    qdq.graph.output.append(helper.make_tensor_value_info("shapes", TensorProto.INT64, [8]))
    result = lower(qdq)
    assert result.lowered == 0
    assert result.notes == ("Concat 'cat' stays QDQ: its input 1 is not dequantized (a float tensor)",)


def test_int8_tensors_run_as_their_uint8_twins_in_our_chain_and_stay_where_no_twin_exists() -> None:
    """onnxruntime's quantizer writes int8 activations by default: in our chain they run as
    ``q + 128`` (exact); from a QuantizeLinear into an NCHW concat there is no uint8 twin."""
    qdq = _conv_chain(1)
    for t in qdq.graph.initializer:
        if t.name in ("xz", "cz"):
            t.CopyFrom(init(t.name, 0 if t.name == "xz" else -128, np.int8))
    result = lower(qdq)
    assert result.notes == () and _concat(result.model) is not None
    same_bytes(qdq, result.model, feeds(qdq))
    nchw = _qdq_concat([3, 5], [0.04, 0.02], [0, 3], 1, dtype=np.int8)
    result = lower(nchw)
    assert result.lowered == 0
    (note,) = result.notes
    assert note == (
        "Concat 'cat' stays on onnxruntime's kernels: "
        "its int8 input 'q0' comes from an op that is not lowered"
    )


def _float_conv_concat() -> onnx.ModelProto:
    """x -> Conv a (+Relu), Conv b; Concat(a, b) along channels -> Conv h: float32."""
    rng = np.random.default_rng(5)
    inits, nodes = [], []
    for name, x, cin, cout in (("a", "x", 3, 4), ("b", "x", 3, 5), ("h", "cat", 9, 2)):
        inits += [
            numpy_helper.from_array((rng.standard_normal((cout, cin, 3, 3)) * 0.3).astype(F32), f"{name}w"),
            numpy_helper.from_array((rng.standard_normal(cout) * 0.1).astype(F32), f"{name}b"),
        ]
        nodes.append(helper.make_node("Conv", [x, f"{name}w", f"{name}b"], [f"{name}c"], pads=[1] * 4))
    nodes.insert(1, helper.make_node("Relu", ["ac"], ["ar"]))
    nodes.insert(3, helper.make_node("Concat", ["ar", "bc"], ["cat"], axis=1))
    nodes[-1].output[0] = "y"
    return make_model(nodes, {"x": 3}, inits)


def test_onnxruntimes_qoperator_qlinearconcat_is_lowered_in_nhwc_with_its_bytes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    fp32 = _float_conv_concat()
    batches = [feeds(fp32, seed) for seed in range(4)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    onnx.save(fp32, tmp_path / "fp32.onnx")
    quantize_static(
        str(tmp_path / "fp32.onnx"),
        str(tmp_path / "int8.onnx"),
        Reader(),
        quant_format=QuantFormat.QOperator,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
    )
    theirs = onnx.load(str(tmp_path / "int8.onnx"))
    assert ("com.microsoft", "QLinearConcat") in _ops(theirs)
    cat = next(n for n in theirs.graph.node if n.op_type == "QLinearConcat")
    qparams = {t.name: numpy_helper.to_array(t) for t in theirs.graph.initializer if not t.dims}
    scales = [float(qparams[name]) for name in (cat.input[0], cat.input[3], cat.input[6])]  # y, then the xs
    assert scales[1:] != [scales[0]] * 2  # not every input at the output's scale: requantised
    result = lower(theirs)
    assert result.notes == ()
    ops = _ops(result.model)
    assert ops.count((DOMAIN, "QLinearConv")) == 3 and ("", "Transpose") not in ops
    assert ("com.microsoft", "QLinearConcat") not in ops
    assert helper.get_attribute_value(_concat(result.model).attribute[0]) == 3
    same_bytes(theirs, result.model, feeds(fp32, 9))


@pytest.mark.parametrize(
    ("axis", "d1_shape", "reason"),
    [
        (4, [2, 5, H, W], "its axis 4 is out of range for rank 4"),
        (1, [2, 5, H], "its tensors have different ranks ([3, 4])"),
    ],
)
def test_an_axis_out_of_range_or_ranks_that_differ_are_refused_with_the_reason(
    axis: int, d1_shape: list[int], reason: str
) -> None:
    qdq = _qdq_concat([3, 5], [0.04, 0.02], [128, 3], axis)
    for name, shape in (("d0", [2, 3, H, W]), ("d1", d1_shape)):  # onnx's inference refuses: say them
        qdq.graph.value_info.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    result = LowerToOnnxq()(load_model(qdq))
    assert result.count == 0
    assert result.notes == (f"Concat 'cat' stays QDQ: {reason}",)
