"""``onnxq.quantize_weight_only``: which weights are stored how, in both formats, on onnxruntime;
weights that stay float and why; bad options in one line."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import onnxq
from onnxq.errors import ConfigError
from onnxq.runtime import make_session
from onnxq.weights.weight_only import dequantize_weight, quantize_weight_only

K, N = 64, 48
RNG = np.random.default_rng(0)
W = RNG.standard_normal((K, N)).astype(np.float32)
WG = RNG.standard_normal((N, K)).astype(np.float32)
BIAS = RNG.standard_normal(N).astype(np.float32)
TABLE = RNG.standard_normal((20, K)).astype(np.float32)
CONV = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32)
FEEDS = {"x": RNG.standard_normal((4, K)).astype(np.float32), "idx": np.array([0, 5, 19]),
         "img": RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)}  # fmt: skip


def _model(weight_as_constant_node: bool = False, opset: int = 17) -> onnx.ModelProto:
    nodes = [
        h.make_node("MatMul", ["x", "W"], ["y1"], name="mm"),
        h.make_node("Gemm", ["x", "Wg", "b"], ["y2"], name="gemm", transB=1),
        h.make_node("Gather", ["E", "idx"], ["e"], name="embed"),
        h.make_node("Conv", ["img", "Cw"], ["c"], name="conv", pads=[1, 1, 1, 1]),
    ]
    inits = [nh.from_array(a, n) for a, n in ((WG, "Wg"), (BIAS, "b"), (TABLE, "E"), (CONV, "Cw"))]
    if weight_as_constant_node:
        nodes.insert(0, h.make_node("Constant", [], ["W"], value=nh.from_array(W, "W_value")))
    else:
        inits.append(nh.from_array(W, "W"))
    graph = h.make_graph(
        nodes, "g",
        [h.make_tensor_value_info("x", T.FLOAT, [4, K]), h.make_tensor_value_info("idx", T.INT64, [3]),
         h.make_tensor_value_info("img", T.FLOAT, [1, 3, 5, 5])],
        [h.make_tensor_value_info(name, T.FLOAT, shape)
         for name, shape in (("y1", [4, N]), ("y2", [4, N]), ("e", [3, K]), ("c", [1, 8, 5, 5]))],
        inits,
    )  # fmt: skip
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def _run(model: onnx.ModelProto) -> list[np.ndarray]:
    """The outputs, unoptimised: optimised, onnxruntime runs DequantizeLinear (4-bit) + MatMul as
    its MatMulNBits at accuracy level 4, on activations rounded to int8 (about 0.4% of the output
    here); unoptimised it computes the float MatMul on the dequantized weight."""
    return make_session(model, optimize=False).run(None, FEEDS)


def _expected(dtype: str, block: int, symmetric: bool) -> list[np.ndarray]:
    """The fp32 model's outputs on the weights dequantized by numpy (least-error scales: the
    default ``scale_search="mse"``)."""
    from onnxq.planning.weight_only import weight_only_spec
    from onnxq.scheme import PerBlock, PerChannel

    spec = weight_only_spec(dtype, block, symmetric)
    g = (lambda axis: PerChannel(axis)) if dtype == "int8" else (lambda axis: PerBlock(1 - axis, block))
    w = dequantize_weight(quantize_weight_only(W, spec, g(1), mse_scales=True))
    wg = dequantize_weight(quantize_weight_only(WG, spec, g(0), mse_scales=True))
    table = dequantize_weight(quantize_weight_only(TABLE, spec, g(0), mse_scales=True))
    conv = dequantize_weight(quantize_weight_only(CONV, spec, g(0), flatten=True, mse_scales=True))
    conv = conv.reshape(CONV.shape)
    model = _model()
    for init, value in zip(model.graph.initializer, (wg, BIAS, table, conv, w), strict=True):
        init.CopyFrom(nh.from_array(value, init.name))
    return _run(model)


@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "zero_points"])
@pytest.mark.parametrize("dtype", ["int8", "int4", "uint4"])
def test_qdq_format_computes_the_float_ops_on_the_dequantized_weights(dtype, symmetric) -> None:
    conversion = onnxq.convert_weight_only(_model(), dtype, 32, symmetric=symmetric)
    model = conversion.model
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("DequantizeLinear") == 4 and "Reshape" in ops  # the Conv weight is reshaped back
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == (17 if dtype == "int8" else 21)  # raised to 21 for 4-bit blocks, kept otherwise
    dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    blocks = [a.i for n in dqs for a in n.attribute if a.name == "block_size"]
    assert blocks == ([] if dtype == "int8" else [32] * 4)
    assert {e.kind for e in conversion.report.quantized} == {"weight_only"}
    for ours, expected in zip(_run(model), _expected(dtype, 32, symmetric), strict=True):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["int4", "uint4"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "zero_points"])
def test_matmul_nbits_equals_the_qdq_format(dtype, symmetric) -> None:
    qdq = onnxq.quantize_weight_only(_model(), dtype, 32, symmetric=symmetric)
    nbits = onnxq.convert_weight_only(_model(), dtype, 32, symmetric=symmetric, format="onnxruntime")
    ops = [n.op_type for n in nbits.model.graph.node]
    assert ops.count("MatMulNBits") == 2 and ops.count("DequantizeLinear") == 2  # Gather, Conv: qdq form
    kinds = {e.name: e.kind for e in nbits.report.quantized}
    assert kinds == {"mm": "matmul_nbits", "gemm": "matmul_nbits", "embed": "weight_only",
                     "conv": "weight_only"}  # fmt: skip
    for a, b in zip(_run(qdq), _run(nbits.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_int8_in_the_onnxruntime_format_is_the_qdq_form_with_a_note() -> None:
    conversion = onnxq.convert_weight_only(_model(), "int8", format="onnxruntime")
    assert "MatMulNBits" not in {n.op_type for n in conversion.model.graph.node}
    assert any("4-bit weights only" in note for note in conversion.report.pass_notes)



def _int4_reference(model: onnx.ModelProto, node: onnx.NodeProto, x: np.ndarray) -> np.ndarray:
    """What onnxq's int4 kernel computes for ``node`` (a DynamicMatMulNBits of ``model``) on ``x``."""
    from onnxq.kernels.reference import blockwise as ref

    inits = {i.name: nh.to_array(i) for i in model.graph.initializer}
    attrs = {a.name: a.i for a in node.attribute}
    b, scales, zp, bias = (inits.get(name) for name in [*node.input[1:], "", ""][:4])
    codes, zero_points = ref.unpack_nbits(b, zp, attrs["N"], attrs["K"], attrs["block_size"])
    zero_points = None if zp is None else zero_points
    return ref.blockwise_matmul(x, codes, scales, zero_points, attrs["block_size"], bias)


@pytest.mark.parametrize(("dtype", "symmetric"), [("int4", True), ("int4", False), ("uint4", True)])
@pytest.mark.parametrize("block", [32, 128])
def test_onnxq_format_runs_the_int4_kernel_byte_for_byte(dtype, symmetric, block) -> None:
    from onnxq.runtime import InferenceSession

    conversion = onnxq.convert_weight_only(_model(), dtype, block, symmetric=symmetric, format="onnxq")
    model = conversion.model
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("DynamicMatMulNBits") == 2 and ops.count("DequantizeLinear") == 2  # Gather, Conv: qdq
    assert "Add" not in ops  # the Gemm's bias is an input of the op
    kinds = {e.name: e.kind for e in conversion.report.quantized}
    assert kinds["mm"] == kinds["gemm"] == "matmul_nbits"
    got = InferenceSession(model.SerializeToString()).run(None, FEEDS)
    nodes = {n.name: n for n in model.graph.node}
    for out, name in zip(got[:2], ("mm_DynamicMatMulNBits", "gemm_DynamicMatMulNBits"), strict=True):
        want = _int4_reference(model, nodes[name], FEEDS["x"])
        np.testing.assert_array_equal(out.view(np.int32), want.view(np.int32))
    for ours, expected in zip(got, _expected(dtype, block, symmetric), strict=True):  # and near the floats
        np.testing.assert_allclose(ours, expected, rtol=0.02, atol=0.02 * float(np.abs(expected).max()))


@pytest.mark.parametrize(("dtype", "block", "needle"), [("int8", 32, "4-bit weights only"),
                                                        ("int4", 16, "blocks of 32 or more, not 16")])
def test_what_the_int4_kernel_cannot_take_is_the_qdq_form_with_a_note(dtype, block, needle) -> None:
    conversion = onnxq.convert_weight_only(_model(), dtype, block, format="onnxq")
    ops = {n.op_type for n in conversion.model.graph.node}
    assert "DynamicMatMulNBits" not in ops and "DequantizeLinear" in ops
    assert sum(needle in note for note in conversion.report.pass_notes) == 2  # mm and gemm


def test_a_weight_given_as_a_constant_node_is_quantized() -> None:
    conversion = onnxq.convert_weight_only(_model(weight_as_constant_node=True), "int4", 32)
    assert "mm" in {e.name for e in conversion.report.quantized}
    assert "Constant" not in {n.op_type for n in conversion.model.graph.node}


def test_a_weight_that_is_not_constant_stays_float_with_the_reason() -> None:
    model = _model()
    model.graph.input.append(h.make_tensor_value_info("W", T.FLOAT, [K, N]))  # fed at run time
    model.graph.initializer.remove(next(i for i in model.graph.initializer if i.name == "W"))
    conversion = onnxq.convert_weight_only(model, "int4", 32)
    reasons = {e.name: e.reason for e in conversion.report.float_nodes}
    assert reasons["mm"] == "weight 'W' is not a constant"


def test_a_reduction_axis_block_size_does_not_divide_ends_in_a_short_block() -> None:
    qdq = onnxq.quantize_weight_only(_model(), "int4", 128)  # K = 64 < 128, Conv 27 < 128
    nbits = onnxq.quantize_weight_only(_model(), "int4", 128, format="onnxruntime")
    for a, b, e in zip(_run(qdq), _run(nbits), _expected("int4", 128, True), strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b, e, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"dtype": "int3"}, "unknown weight dtype 'int3'"),
        ({"block_size": 33}, "block_size must be a power of two >= 16"),
        ({"block_size": 8}, "block_size must be a power of two >= 16"),
        ({"format": "qdq-uint8"}, "unknown weight-only format 'qdq-uint8'"),
        ({"method": "no-such-method"}, "unknown weight method 'no-such-method'"),
        ({"method": "adaround"}, "'adaround' learns from samples of the layers' inputs"),
        ({"method": "gptq"}, "weight method 'gptq' needs calibration data"),
        ({"op_types": ["LSTM"]}, "unknown op type(s) for weight-only quantization: 'LSTM'"),
        ({"scale_search": "percentile"}, "scale_search must be one of mse, minmax, got 'percentile'"),
        ({"sequential": True}, "weight method 'rtn' uses none"),
    ],
)
def test_bad_options_are_one_line_errors(options, needle) -> None:
    with pytest.raises(ConfigError) as info:
        onnxq.quantize_weight_only(_model(), **options)
    assert needle in str(info.value) and "\n" not in str(info.value)
