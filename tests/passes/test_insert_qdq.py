"""Tests of Q/DQ insertion (onnxq.passes.insert_qdq): QDQ structure and onnxruntime numbers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import numpy_helper

from onnxq.calibration.engine import calibrate
from onnxq.calibration.resolve import drop_unreached, make_observers, resolve_qparams
from onnxq.errors import UnsupportedModelError
from onnxq.io import load_model, to_proto
from onnxq.passes.insert_qdq import InsertQDQ
from onnxq.planning.fusion import elementwise_fusion_groups, find_fusion_groups
from onnxq.planning.plan import build_plan
from onnxq.qconfig import PerChannel, QConfig, QConfigMapping, QSpec, get_default_qconfig
from onnxq.weights import quantize_weights

X86 = QConfigMapping(global_qconfig=get_default_qconfig("x86"))
MINMAX = QConfigMapping(
    global_qconfig=QConfig(QSpec(observer="minmax"), QSpec("int8", symmetric=True, observer="minmax"))
)
MINMAX_PER_CHANNEL = QConfigMapping(
    global_qconfig=QConfig(
        QSpec(observer="minmax"), QSpec("int8", symmetric=True, granularity=PerChannel(), observer="minmax")
    )
)
INT8_SYMMETRIC = QConfigMapping(
    global_qconfig=QConfig(
        QSpec("int8", symmetric=True, observer="minmax"), QSpec("int8", symmetric=True, observer="minmax")
    )
)
HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def _weights(*shape: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return ", ".join(f"{v:.4f}" for v in rng.uniform(-1, 1, int(np.prod(shape))))


def _feeds(proto: onnx.ModelProto, n: int = 8, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in proto.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal([n, *shape[1:]]).astype(np.float32)
    return feeds


def quantize_text(
    model_from_text: Callable[[str], onnx.ModelProto], body: str, mapping: QConfigMapping = MINMAX
) -> tuple[onnx.ModelProto, onnx.ModelProto, int]:
    """``(fp32 proto, QDQ proto, pass count)`` of an ONNX-text graph calibrated on random data."""
    fp32 = model_from_text(f"{HEADER}\n{body}")
    model = load_model(fp32)
    groups = find_fusion_groups(model.graph)
    plan = build_plan(model, mapping, groups + elementwise_fusion_groups(model.graph, groups))
    observers = make_observers(plan)
    if observers:
        calibrate(model, observers, [_feeds(fp32)], progress=False)
    qparams, _ = resolve_qparams(plan, model, observers)
    applied = drop_unreached(plan, qparams)
    result = InsertQDQ(applied, qparams, quantize_weights(applied, model, qparams))(model)
    qdq = to_proto(result.model)
    onnx.checker.check_model(qdq)
    return fp32, qdq, result.count


def _inits(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def _producer(proto: onnx.ModelProto, value: str) -> onnx.NodeProto:
    return next(n for n in proto.graph.node if value in n.output)


def _consumers(proto: onnx.ModelProto, value: str) -> list[onnx.NodeProto]:
    return [n for n in proto.graph.node if value in n.input]



CONV_RELU = f"""
g (float[1, 2, 6, 6] x) => (float[1, 4, 6, 6] y)
<float[4, 2, 3, 3] w = {{{_weights(4, 2, 3, 3)}}}, float[4] b = {{0.5, -0.25, 0.125, 1.0}}>
{{
    [conv] c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
    [relu] y = Relu(c)
}}
"""


def test_insert_conv_relu_gives_standard_qdq_structure(model_from_text, op_counts) -> None:
    _, qdq, count = quantize_text(model_from_text, CONV_RELU, MINMAX_PER_CHANNEL)
    ops = op_counts(qdq)
    assert (ops["QuantizeLinear"], ops["DequantizeLinear"], ops["Conv"], ops["Relu"]) == (2, 4, 1, 1)
    assert count == 6
    conv = next(n for n in qdq.graph.node if n.op_type == "Conv")
    relu = next(n for n in qdq.graph.node if n.op_type == "Relu")
    assert relu.input[0] == conv.output[0]  # no Q/DQ inside the fusion group
    assert [n.op_type for n in _consumers(qdq, relu.output[0])] == ["QuantizeLinear"]
    x_dq, w_dq, b_dq = (_producer(qdq, name) for name in conv.input)
    assert x_dq.op_type == w_dq.op_type == b_dq.op_type == "DequantizeLinear"
    assert _producer(qdq, x_dq.input[0]).input[0] == "x"
    inits = _inits(qdq)
    assert inits[w_dq.input[0]].dtype == np.int8 and inits[w_dq.input[0]].shape == (4, 2, 3, 3)
    assert inits[b_dq.input[0]].dtype == np.int32 and inits[b_dq.input[0]].shape == (4,)
    assert "w" not in inits and "b" not in inits  # no fp32 copy of the weights left
    np.testing.assert_array_equal(inits[b_dq.input[1]], inits[x_dq.input[1]] * inits[w_dq.input[1]])
    assert len(b_dq.input) == len(w_dq.input) == 2  # zero points 0 by default, not stored
    out = qdq.graph.output[0]
    assert out.name == "y" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _producer(qdq, "y").op_type == "DequantizeLinear"


@pytest.mark.parametrize(
    ("body", "op", "axis", "w_shape"),
    [
        (
            f"""g (float[1, 2, 5, 5] x) => (float[1, 3, 5, 5] y)
             <float[3, 2, 1, 1] w = {{{_weights(3, 2, 1, 1)}}}>
             {{ [op] y = Conv(x, w) }}""",
            "Conv",
            0,
            (3, 2, 1, 1),
        ),
        (
            f"""g (float[1, 2, 3, 3] x) => (float[1, 5, 4, 4] y)
             <float[2, 5, 2, 2] w = {{{_weights(2, 5, 2, 2)}}}>
             {{ [op] y = ConvTranspose(x, w) }}""",
            "ConvTranspose",
            1,
            (2, 5, 2, 2),
        ),
        (
            f"""g (float[2, 4] x) => (float[2, 3] y) <float[4, 3] w = {{{_weights(4, 3)}}}>
             {{ [op] y = Gemm <transB = 0> (x, w) }}""",
            "Gemm",
            1,
            (4, 3),
        ),
        (
            f"""g (float[2, 4] x) => (float[2, 3] y) <float[3, 4] w = {{{_weights(3, 4)}}}>
             {{ [op] y = Gemm <transB = 1> (x, w) }}""",
            "Gemm",
            0,
            (3, 4),
        ),
        (
            f"""g (float[2, 5, 4] x) => (float[2, 5, 3] y) <float[4, 3] w = {{{_weights(4, 3)}}}>
             {{ [op] y = MatMul(x, w) }}""",
            "MatMul",
            1,
            (4, 3),
        ),
    ],
    ids=["conv", "conv_transpose", "gemm_transB0", "gemm_transB1", "matmul"],
)
def test_insert_weight_axis_is_output_channels_per_op(
    model_from_text, body: str, op: str, axis: int, w_shape: tuple[int, ...]
) -> None:
    fp32, qdq, _ = quantize_text(model_from_text, body, MINMAX_PER_CHANNEL)
    node = next(n for n in qdq.graph.node if n.op_type == op)
    w_dq = _producer(qdq, node.input[1])
    attrs = {a.name: a.i for a in w_dq.attribute}
    inits = _inits(qdq)
    assert attrs == {"axis": axis}
    assert inits[w_dq.input[0]].dtype == np.int8 and inits[w_dq.input[0]].shape == w_shape
    if op in ("Gemm", "MatMul"):  # onnxruntime's Gemm/MatMul fusions need an explicit zero point
        assert inits[w_dq.input[2]].dtype == np.int8 and inits[w_dq.input[2]].shape == (w_shape[axis],)
    else:
        assert len(w_dq.input) == 2
    assert inits[w_dq.input[1]].shape == (w_shape[axis],)
    w = _inits(fp32)["w"]
    amax = np.abs(np.moveaxis(w, axis, 0).reshape(w_shape[axis], -1)).max(axis=1)
    np.testing.assert_allclose(inits[w_dq.input[1]], amax / 127, rtol=1e-6)
    _, per_tensor, _ = quantize_text(model_from_text, body, MINMAX)
    node = next(n for n in per_tensor.graph.node if n.op_type == op)
    w_dq = _producer(per_tensor, node.input[1])
    assert not w_dq.attribute and _inits(per_tensor)[w_dq.input[1]].shape == ()


CONCAT = """
g (float[1, 2, 4, 4] a, float[1, 3, 4, 4] b) => (float[1, 5, 2, 2] y) {
    [sig] s = Sigmoid(a)
    [cat] c = Concat <axis = 1> (s, b)
    [pool] y = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (c)
}
"""


def test_insert_concat_inputs_and_output_share_one_scale(model_from_text) -> None:
    _, qdq, _ = quantize_text(model_from_text, CONCAT)
    cat = next(n for n in qdq.graph.node if n.op_type == "Concat")
    pool = next(n for n in qdq.graph.node if n.op_type == "MaxPool")
    dqs = [_producer(qdq, i) for i in cat.input] + [_producer(qdq, pool.input[0])]
    dqs.append(_producer(qdq, "y"))
    assert all(n.op_type == "DequantizeLinear" for n in dqs)
    assert len({(n.input[1], n.input[2]) for n in dqs}) == 1  # one scale/zp initializer pair


def test_insert_shares_one_pair_among_consumers_and_keeps_float_readers_float(model_from_text) -> None:
    _, qdq, _ = quantize_text(
        model_from_text,
        f"""
g (float[1, 2, 4, 4] x)
  => (float[1, 3, 4, 4] y, float[1, 3, 4, 4] z, float[1, 2, 4, 4] e, float[1, 3, 4, 4] f)
<float[3, 2, 1, 1] w = {{{_weights(3, 2, 1, 1)}}}, float[3, 2, 1, 1] v = {{{_weights(3, 2, 1, 1, seed=2)}}}>
{{
    [conv1] y = Conv(x, w)
    [conv2] z = Conv(x, v)
    [erf] e = Erf(x)
    [erf2] f = Erf(y)
}}
""",
    )
    quantize_x = [n for n in _consumers(qdq, "x") if n.op_type == "QuantizeLinear"]
    assert len(quantize_x) == 1
    assert next(n for n in qdq.graph.node if n.name == "erf").input[0] == "x"
    erf2_input = next(n for n in qdq.graph.node if n.name == "erf2").input[0]
    assert _producer(qdq, erf2_input).op_type == "DequantizeLinear"  # y is quantized at its source
    assert [o.name for o in qdq.graph.output] == ["y", "z", "e", "f"]


def test_insert_shared_weight_is_quantized_once_and_add_relu_has_no_qdq_inside(model_from_text) -> None:
    _, qdq, _ = quantize_text(
        model_from_text,
        f"""
g (float[1, 2, 4, 4] x) => (float[1, 2, 4, 4] y) <float[2, 2, 1, 1] w = {{{_weights(2, 2, 1, 1)}}}>
{{
    [conv1] a = Conv(x, w)
    [conv2] b = Conv(a, w)
    [add] s = Add(b, x)
    [relu] y = Relu(s)
}}
""",
        MINMAX_PER_CHANNEL,
    )
    convs = [n for n in qdq.graph.node if n.op_type == "Conv"]
    assert convs[0].input[1] == convs[1].input[1]  # one DequantizeLinear for the shared weight
    assert sum(t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4 for t in qdq.graph.initializer) == 1
    relu = next(n for n in qdq.graph.node if n.op_type == "Relu")
    assert _producer(qdq, relu.input[0]).op_type == "Add"
    assert [n.op_type for n in _consumers(qdq, relu.output[0])] == ["QuantizeLinear"]


def test_insert_all_zero_constant_gets_valid_scale(model_from_text) -> None:
    _, qdq, _ = quantize_text(
        model_from_text,
        """
g (float[1, 4] x) => (float[1, 4] y) <float[4] k = {0, 0, 0, 0}> { [add] y = Add(x, k) }
""",
    )
    add = next(n for n in qdq.graph.node if n.op_type == "Add")
    k_dq = _producer(qdq, add.input[1])
    inits = _inits(qdq)
    assert k_dq.op_type == "DequantizeLinear" and k_dq.input[0] in inits  # stored quantized, no Q
    assert inits[k_dq.input[0]].dtype == np.uint8
    assert float(inits[k_dq.input[1]]) == 1.0 and not inits[k_dq.input[0]].any()


def test_insert_int8_symmetric_activations_have_zero_point_zero(model_from_text) -> None:
    _, qdq, _ = quantize_text(model_from_text, CONV_RELU, INT8_SYMMETRIC)
    inits = _inits(qdq)
    for n in qdq.graph.node:
        if n.op_type == "QuantizeLinear":
            zp = inits[n.input[2]]
            assert zp.dtype == np.int8 and int(zp) == 0


def test_insert_reduce_range_uses_127_activation_levels(model_from_text) -> None:
    reduced = QConfigMapping(
        global_qconfig=QConfig(
            QSpec(reduce_range=True, observer="minmax"), QSpec("int8", symmetric=True, observer="minmax")
        )
    )
    fp32, qdq, _ = quantize_text(model_from_text, CONV_RELU, reduced)
    inits = _inits(qdq)
    q_x = next(n for n in _consumers(qdq, "x") if n.op_type == "QuantizeLinear")
    x = _feeds(fp32)["x"]
    scale, zp = float(inits[q_x.input[1]]), int(inits[q_x.input[2]])
    assert inits[q_x.input[2]].dtype == np.uint8
    assert scale == pytest.approx((x.max() - x.min()) / 127, rel=1e-6)
    assert zp == round(-x.min() / scale)


@pytest.mark.parametrize("optimize", [True, False], ids=["ort-opt", "ort-noopt"])
def test_insert_qdq_model_close_to_fp32_on_random_data(
    model_from_text, run_ort, optimize: bool, op_counts
) -> None:
    fp32, qdq, _ = quantize_text(
        model_from_text,
        f"""
g (float[1, 3, 8, 8] x, float[1, 2, 4, 4] s) => (float[1, 10] y, float[1, 10] p)
<float[6, 3, 3, 3] w = {{{_weights(6, 3, 3, 3)}}}, float[6] b = {{0.1, 0.2, -0.1, 0, 0.3, -0.2}},
 float[128, 10] fc = {{{_weights(128, 10, seed=3)}}}, float[10] fb = {{{_weights(10, seed=4)}}}>
{{
    [conv] c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
    [relu] r = Relu(c)
    [pool] m = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (r)
    [cat] k = Concat <axis = 1> (m, s)
    [avg] a = AveragePool <kernel_shape = [1, 1]> (k)
    [flat] f = Flatten(a)
    [gemm] y = Gemm(f, fc, fb)
    [soft] p = Softmax(y)
}}
""",
        MINMAX_PER_CHANNEL,
    )
    feeds = {k: v[:1] for k, v in _feeds(fp32, seed=7).items()}
    expected = run_ort(fp32, feeds, optimize)
    got = run_ort(qdq, feeds, optimize)
    for e, g in zip(expected, got, strict=True):
        assert np.max(np.abs(g - e)) <= 0.05 * np.max(np.abs(e))
    assert op_counts(qdq)["QuantizeLinear"] == 9  # x r m s k a f y p


def test_insert_refuses_model_below_opset_13() -> None:
    graph = ir.Graph([], [], nodes=[], opset_imports={"": 11})
    model = ir.Model(graph, ir_version=7)
    from onnxq.planning.plan import QuantPlan
    from onnxq.weights import QuantizedWeights

    with pytest.raises(UnsupportedModelError, match="opset 11"):
        InsertQDQ(QuantPlan((), {}, {}, {}, ()), {}, QuantizedWeights("rtn", {}))(model)


def test_insert_conv_transpose_with_groups_repeats_weight_scales_in_bias(model_from_text, run_ort) -> None:
    fp32, qdq, _ = quantize_text(model_from_text, f"""
g (float[1, 4, 3, 3] x) => (float[1, 6, 4, 4] y)
<float[4, 3, 2, 2] w = {{{_weights(4, 3, 2, 2)}}}, float[6] b = {{0.5, -1, 0.25, 2, -0.5, 1}}>
{{ [convt] y = ConvTranspose <group = 2> (x, w, b) }}
""", MINMAX_PER_CHANNEL)
    convt = next(n for n in qdq.graph.node if n.op_type == "ConvTranspose")
    w_dq, b_dq = _producer(qdq, convt.input[1]), _producer(qdq, convt.input[2])
    inits = _inits(qdq)
    w_scale, b_scale = inits[w_dq.input[1]], inits[b_dq.input[1]]
    x_scale = inits[_producer(qdq, convt.input[0]).input[1]]
    assert w_scale.shape == (3,) and b_scale.shape == (6,)
    np.testing.assert_array_equal(b_scale, x_scale * np.tile(w_scale, 2))
    feeds = {"x": _feeds(fp32)["x"][:1]}  # a calibration sample: no clipping, only rounding error
    for optimize in (True, False):
        (expected,), (got,) = run_ort(fp32, feeds, optimize), run_ort(qdq, feeds, optimize)
        assert np.max(np.abs(got - expected)) <= 0.02 * np.max(np.abs(expected))
