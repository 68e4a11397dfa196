"""The reference quantization maths (onnxq.qparams)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxq.qparams import (
    QParams,
    block_min_max,
    choose_qparams,
    dequantize,
    dequantize_array,
    fake_quantize,
    pack_4bit,
    qrange,
    quantize,
    quantize_array,
    quantize_bias,
    unpack_4bit,
)
from onnxq.scheme import Granularity, PerBlock, PerChannel, PerTensor


@pytest.mark.parametrize(
    ("dtype", "symmetric", "reduce_range", "expected"),
    [
        ("uint8", False, False, (0, 255)),
        ("uint8", False, True, (0, 127)),
        ("int8", False, False, (-128, 127)),
        ("int8", True, False, (-127, 127)),
        ("int8", False, True, (-64, 63)),
        ("int8", True, True, (-63, 63)),
    ],
)
def test_qrange_matches_documented_ranges(dtype, symmetric, reduce_range, expected):
    assert qrange(dtype, symmetric, reduce_range) == expected


def test_qrange_rejects_unknown_dtype():
    with pytest.raises(ValueError, match="int32"):
        qrange("int32")


def test_choose_qparams_asymmetric_uint8_makes_zero_exact():
    qp = choose_qparams(-1.0, 3.0, "uint8")
    assert qp.scale == np.float32(4.0 / 255)
    assert qp.zero_point.dtype == np.uint8
    assert int(qp.zero_point) == 64
    assert dequantize(quantize(np.float32(0.0), qp), qp) == 0.0


def test_choose_qparams_widens_range_to_contain_zero():
    qp = choose_qparams(2.0, 5.0, "uint8")
    assert int(qp.zero_point) == 0
    assert qp.scale == np.float32(5.0 / 255)


def test_choose_qparams_symmetric_int8_uses_narrow_range():
    qp = choose_qparams(-2.0, 1.0, "int8", symmetric=True)
    assert int(qp.zero_point) == 0
    assert qp.scale == np.float32(2.0 / 127)
    q = quantize(np.array([-2.0, 2.0], np.float32), qp)
    np.testing.assert_array_equal(q, [-127, 127])


def test_choose_qparams_symmetric_uint8_centres_zero_point():
    qp = choose_qparams(-1.0, 1.0, "uint8", symmetric=True)
    assert int(qp.zero_point) == 128


def test_choose_qparams_all_zero_tensor_gets_valid_scale():
    qp = choose_qparams(0.0, 0.0, "uint8")
    assert qp.scale == 1.0 and int(qp.zero_point) == 0
    qpc = choose_qparams(np.zeros(3), np.zeros(3), "int8", symmetric=True, granularity=PerChannel(0))
    np.testing.assert_array_equal(qpc.scale, [1.0, 1.0, 1.0])


def test_choose_qparams_tiny_range_scale_is_at_least_eps():
    qp = choose_qparams(0.0, 1e-30, "uint8")
    assert qp.scale >= np.finfo(np.float32).eps


def test_choose_qparams_rejects_nonfinite_range():
    with pytest.raises(ValueError, match="finite"):
        choose_qparams(-np.inf, 1.0)


def test_choose_qparams_per_channel_shapes_and_values():
    lo = np.array([-1.0, -4.0, 0.0])
    hi = np.array([1.0, 2.0, 0.5])
    qp = choose_qparams(lo, hi, "int8", symmetric=True, granularity=PerChannel(0))
    assert qp.axis == 0 and qp.scale.shape == (3,)
    np.testing.assert_allclose(qp.scale, np.array([1.0, 4.0, 0.5], np.float32) / 127)


def test_qparams_validation_rejects_inconsistent_shapes():
    with pytest.raises(ValueError, match="shape"):
        QParams(np.ones(3, np.float32), np.zeros(2, np.int8), PerChannel(0))
    with pytest.raises(ValueError, match="per-tensor"):
        QParams(np.ones(3, np.float32), np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="positive"):
        QParams(np.float32(0.0), np.uint8(0))


def test_quantize_rounds_half_to_even_and_saturates():
    qp = QParams(np.float32(1.0), np.uint8(0))
    x = np.array([0.5, 1.5, 2.5, -3.0, 300.0], np.float32)
    np.testing.assert_array_equal(quantize(x, qp), [0, 2, 2, 0, 255])


def _run_onnx_quantize(x: np.ndarray, qp: QParams) -> np.ndarray:
    elem = TensorProto.UINT8 if qp.dtype == "uint8" else TensorProto.INT8
    attrs = {} if qp.axis is None else {"axis": qp.axis}
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", elem, list(x.shape))],
        [numpy_helper.from_array(qp.scale, "s"), numpy_helper.from_array(qp.zero_point, "z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantize_matches_onnxruntime_per_tensor(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 33)) * 3).astype(np.float32)
    qp = choose_qparams(x.min(), x.max(), dtype, symmetric=dtype == "int8")
    np.testing.assert_array_equal(quantize(x, qp), _run_onnx_quantize(x, qp))


def test_quantize_matches_onnxruntime_per_channel():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 3, 2)) * np.array([1, 10, 100])[None, :, None]).astype(np.float32)
    qp = choose_qparams(
        x.min(axis=(0, 2)), x.max(axis=(0, 2)), "int8", symmetric=True, granularity=PerChannel(1)
    )
    np.testing.assert_array_equal(quantize(x, qp), _run_onnx_quantize(x, qp))


def test_fake_quantize_error_is_at_most_half_a_step():
    rng = np.random.default_rng(2)
    x = rng.uniform(-2, 5, 1000).astype(np.float32)
    qp = choose_qparams(x.min(), x.max(), "uint8")
    err = np.abs(fake_quantize(x, qp) - x)
    assert err.max() <= qp.scale * 0.5 + 1e-6


def test_quantize_bias_uses_product_scale_and_saturates():
    q, s = quantize_bias(np.array([1.0, -2.0, 1e12]), 0.5, np.array([0.1, 0.2, 0.1], np.float32))
    np.testing.assert_allclose(s, np.array([0.05, 0.1, 0.05], np.float32))
    assert q.dtype == np.int32
    assert q[0] == 20 and q[1] == -20 and q[2] == np.iinfo(np.int32).max


def test_quantize_bias_scale_stays_finite_when_the_product_overflows():
    # the fuzzer's find: 1e30 * 1e10 overflowed float32 (a warning, then DequantizeLinear(0, inf) = NaN)
    with np.errstate(all="raise"):
        q, s = quantize_bias(np.array([3.0, 0.5]), 1e30, np.array([1e10, 2.0], np.float32))
    assert np.isfinite(s).all() and s[0] == np.finfo(np.float32).max and s[1] == np.float32(2e30)
    assert q.tolist() == [0, 0]


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantize_nonfinite_values_match_onnxruntime(dtype):
    qp = choose_qparams(-1.0, 1.0, dtype, symmetric=dtype == "int8")
    x = np.array([np.inf, -np.inf, np.nan, 0.25], np.float32)
    got = quantize(x, qp)
    np.testing.assert_array_equal(got, _run_onnx_quantize(x, qp))
    assert got[2] == qrange(dtype)[0]  # NaN -> the dtype's minimum, as onnxruntime and onnxq's kernels


def test_kernel_reference_quantize_is_the_same_function():
    from onnxq.kernels.reference import quant

    assert quant.quantize is quantize_array and quant.dequantize is dequantize_array


# ------------------------------------------------------- every dtype and granularity vs onnx.reference

_ONNX_TYPES = {
    "int4": TensorProto.INT4, "uint4": TensorProto.UINT4, "int8": TensorProto.INT8,
    "uint8": TensorProto.UINT8, "int16": TensorProto.INT16, "uint16": TensorProto.UINT16,
}  # fmt: skip


def _reference(op: str, x: np.ndarray, qp: QParams, out_type: int) -> np.ndarray:
    """``op`` (QuantizeLinear / DequantizeLinear, opset 21) run by onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    attrs = {} if qp.axis is None else {"axis": qp.axis}
    if qp.block_size is not None:
        attrs["block_size"] = qp.block_size
    in_type = TensorProto.FLOAT if op == "QuantizeLinear" else _ONNX_TYPES[qp.dtype]
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "s", "z"], ["y"], **attrs)],
        "g",
        [
            helper.make_tensor_value_info("x", in_type, list(x.shape)),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, list(qp.scale.shape)),
            helper.make_tensor_value_info("z", _ONNX_TYPES[qp.dtype], list(qp.scale.shape)),
        ],
        [helper.make_tensor_value_info("y", out_type, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    (y,) = ReferenceEvaluator(model).run(None, {"x": x, "s": qp.scale, "z": qp.zero_point})
    return np.asarray(y)


def _granularities(shape: tuple[int, ...]) -> list[Granularity]:
    return [PerTensor(), PerChannel(1), PerBlock(1, 4), PerBlock(0, 2)]


@pytest.mark.parametrize("dtype", list(_ONNX_TYPES))
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("which", ["per_tensor", "per_channel", "per_block_partial", "per_block_axis0"])
def test_quantize_and_dequantize_match_onnx_reference_for_every_dtype_and_granularity(
    dtype: str, symmetric: bool, which: str
) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((6, 10)) * np.linspace(0.1, 4, 10)).astype(np.float32)  # 10 = 4 + 4 + 2
    names = ["per_tensor", "per_channel", "per_block_partial", "per_block_axis0"]
    g = dict(zip(names, _granularities(x.shape), strict=True))[which]
    if isinstance(g, PerTensor):
        lo, hi = x.min(), x.max()
    elif isinstance(g, PerChannel):
        lo, hi = x.min(axis=0), x.max(axis=0)
    else:
        lo, hi = block_min_max(x, g.axis, g.block_size)
        assert lo.shape == tuple(-(-n // g.block_size) if a == g.axis else n for a, n in enumerate(x.shape))
    qp = choose_qparams(lo, hi, dtype, symmetric, granularity=g)
    big = 50 * float(np.abs(x).max())  # saturates, yet stays within int32 after the division
    outside = np.append(x.reshape(-1)[:-2], [big, -big]).reshape(x.shape).astype(np.float32)
    q = quantize(outside, qp)
    assert str(q.dtype) == dtype
    expected_q = _reference("QuantizeLinear", outside, qp, _ONNX_TYPES[dtype])
    np.testing.assert_array_equal(q.astype(np.int32), expected_q.astype(np.int32))
    np.testing.assert_array_equal(dequantize(q, qp), _reference("DequantizeLinear", q, qp, TensorProto.FLOAT))
    # every element is within half a step of its own block's (channel's) scale
    step = dequantize_array(np.ones(x.shape, np.int32), qp.scale, np.zeros(qp.scale.shape, np.int32), qp.axis,
                            qp.block_size)  # fmt: skip
    assert np.all(np.abs(fake_quantize(x, qp) - x) <= step / 2 * (1 + 1e-5) + 1e-6 * np.abs(x))


@pytest.mark.parametrize(
    ("dtype", "symmetric", "reduce_range", "expected"),
    [
        ("int4", False, False, (-8, 7)),
        ("int4", True, False, (-7, 7)),
        ("uint4", False, False, (0, 15)),
        ("uint4", True, False, (0, 15)),
        ("int16", False, False, (-32768, 32767)),
        ("int16", True, False, (-32767, 32767)),
        ("int16", False, True, (-16384, 16383)),
        ("uint16", False, False, (0, 65535)),
        ("uint16", False, True, (0, 32767)),
    ],
)
def test_qrange_of_4_and_16_bit_types(dtype, symmetric, reduce_range, expected):
    assert qrange(dtype, symmetric, reduce_range) == expected


def test_symmetric_unsigned_zero_point_is_the_middle_of_the_range():
    assert int(choose_qparams(-1.0, 1.0, "uint4", symmetric=True).zero_point) == 8
    assert int(choose_qparams(-1.0, 1.0, "uint16", symmetric=True).zero_point) == 32768


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("count", [1, 2, 7, 32])
def test_pack_4bit_matches_the_onnx_file_layout_and_round_trips(signed: bool, count: int) -> None:
    import ml_dtypes

    rng = np.random.default_rng(count)
    values = rng.integers(-8, 8, count) if signed else rng.integers(0, 16, count)
    typed = values.astype(ml_dtypes.int4 if signed else ml_dtypes.uint4)
    proto = numpy_helper.from_array(typed, "t")
    assert proto.data_type == (TensorProto.INT4 if signed else TensorProto.UINT4)
    np.testing.assert_array_equal(pack_4bit(values), np.frombuffer(proto.raw_data, np.uint8))
    np.testing.assert_array_equal(unpack_4bit(pack_4bit(values), count, signed), values)
    with pytest.raises(ValueError, match="cannot unpack"):
        unpack_4bit(pack_4bit(values), 2 * len(pack_4bit(values)) + 1, signed)


def test_qparams_keep_their_granularity_and_check_it():
    qp = choose_qparams(
        np.full((2, 3), -1.0), np.full((2, 3), 1.0), "int4", True, granularity=PerBlock(1, 16)
    )
    assert (qp.dtype, qp.axis, qp.block_size, qp.granularity) == ("int4", 1, 16, PerBlock(1, 16))
    with pytest.raises(ValueError, match="concrete axis"):
        QParams(np.ones(3, np.float32), np.zeros(3, np.int8), PerChannel())
    with pytest.raises(ValueError, match="expected one of"):
        QParams(np.float32(1.0), np.int32(0))
