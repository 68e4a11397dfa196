"""Native quantized add vs the numpy reference (every ISA present), and both vs onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import DTYPES, ZERO_POINTS, ort_session, random_q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from onnxq.errors import KernelError
from onnxq.kernels import kernel_table
from onnxq.kernels._ffi import ffi, lib
from onnxq.kernels.eltwise import qadd
from onnxq.kernels.reference.eltwise import AddLayout, Bcast, add_layout, fma_f32
from onnxq.kernels.reference.eltwise import qadd as reference_qadd


def _expected(a, sa, za, b, sb, zb, sy, zy, relu=False):
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    layout = add_layout(a.shape, b.shape)
    if layout is None:
        a = np.broadcast_to(a, out_shape)
        b = np.broadcast_to(b, out_shape)
        layout = AddLayout(1, a.size, Bcast.FULL, Bcast.FULL)
    return reference_qadd(a, sa, za, b, sb, zb, sy, zy, layout, relu=relu).reshape(out_shape)


SHAPES = [
    ((1,), (1,)),
    ((31,), (31,)),
    ((3, 33), (3, 33)),
    ((2, 5, 65), (65,)),
    ((2, 5, 7), (1,)),
    ((1,), (3, 40)),
    ((4, 1), (4, 37)),
    ((2, 3, 1), (2, 3, 17)),
    ((2, 1, 3), (1, 4, 1)),
]


def test_kernel_table_lists_qadd_for_every_isa_family() -> None:
    ops = {(k.op, k.isa) for k in kernel_table()}
    assert ("qadd_u8", "scalar") in ops and ("qadd_s8", "scalar") in ops
    assert ("qadd_u8", "avx2") in ops and ("qadd_s8", "avx512vnni") in ops


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("a_shape", "b_shape"), SHAPES)
def test_qadd_matches_reference_bitexact_on_broadcast_forms(isa, dtype, a_shape, b_shape) -> None:
    rng = np.random.default_rng(len(a_shape) * 7 + len(b_shape))
    for za in ZERO_POINTS[dtype]:
        a, b = random_q(rng, dtype, a_shape), random_q(rng, dtype, b_shape)
        zb, zy = int(random_q(rng, dtype, ())), int(random_q(rng, dtype, ()))
        args = (np.float32(0.031), za, b, np.float32(0.017), zb, np.float32(0.045), zy)
        got = qadd(a, *args)
        want = _expected(a, *args)
        assert got.shape == np.broadcast_shapes(a_shape, b_shape)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 200),
    rows=st.integers(1, 4),
    form=st.sampled_from(["same", "inner", "row", "scalar_a", "scalar_b"]),
    signed=st.booleans(),
    scales=st.tuples(*[st.floats(2.0**-10, 2.0, width=32)] * 3),
    seed=st.integers(0, 2**31),
    relu=st.booleans(),
)
def test_qadd_matches_reference_on_random_shapes(isa, n, rows, form, signed, scales, seed,
                                                 relu) -> None:
    dtype = np.int8 if signed else np.uint8
    rng = np.random.default_rng(seed)
    a_shape, b_shape = {
        "same": ((rows, n), (rows, n)),
        "inner": ((rows, n), (n,)),
        "row": ((rows, n), (rows, 1)),
        "scalar_a": ((1,), (rows, n)),
        "scalar_b": ((rows, n), (1,)),
    }[form]
    a, b = random_q(rng, dtype, a_shape), random_q(rng, dtype, b_shape)
    za, zb, zy = (int(v) for v in random_q(rng, dtype, (3,)))
    args = (scales[0], za, b, scales[1], zb, scales[2], zy)
    np.testing.assert_array_equal(qadd(a, *args, relu=relu), _expected(a, *args, relu=relu))


@pytest.mark.parametrize("dtype", DTYPES)
def test_qadd_saturates_at_both_ends(isa, dtype) -> None:
    info = np.iinfo(dtype)
    a = np.array([info.max] * 40 + [info.min] * 40, dtype=dtype)
    b = a.copy()
    zp = 0 if dtype == np.int8 else 128
    got = qadd(a, 1.0, zp, b, 1.0, zp, 0.01, zp)
    assert np.all(got[:40] == info.max) and np.all(got[40:] == info.min)
    np.testing.assert_array_equal(got, _expected(a, 1.0, zp, b, 1.0, zp, 0.01, zp))


@pytest.mark.parametrize("dtype", DTYPES)
def test_qadd_relu_clamps_at_output_zero_point(isa, dtype) -> None:
    rng = np.random.default_rng(3)
    a, b = random_q(rng, dtype, (5, 33)), random_q(rng, dtype, (5, 33))
    zx = 128 if dtype == np.uint8 else 0
    zy = int(np.iinfo(dtype).min) + 100
    got = qadd(a, 0.1, zx, b, 0.1, zx, 0.1, zy, relu=True)
    plain = qadd(a, 0.1, zx, b, 0.1, zx, 0.1, zy)
    assert got.min() >= zy and (plain < zy).any()
    np.testing.assert_array_equal(got, np.maximum(plain, zy).astype(dtype))


def test_fma_f32_rounds_once() -> None:
    # 1 + 2^-24 is not representable: a*b + c rounded twice gives 1.0, fused gives 1 + 2^-23
    a = np.float32(1 + 2**-12)
    got = fma_f32(a, a, np.float32(-1.0))
    assert got == np.float32(2**-11 + 2**-24)
    assert np.float32(a * a) - np.float32(1.0) == np.float32(2**-11)


def test_add_layout_reduces_numpy_broadcasts() -> None:
    assert add_layout((2, 3, 4), (4,)) == AddLayout(6, 4, Bcast.FULL, Bcast.INNER)
    assert add_layout((2, 3, 1), (2, 3, 4)) == AddLayout(6, 4, Bcast.ROW, Bcast.FULL)
    assert add_layout((1,), (5, 6)) == AddLayout(1, 30, Bcast.SCALAR, Bcast.FULL)
    assert add_layout((2, 1, 3), (1, 4, 1)) is None


def _ort_qlinear_add(dtype, a, b, params) -> np.ndarray:
    t = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    names = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]
    node = helper.make_node("QLinearAdd", names, ["y"], domain="com.microsoft")
    inputs = [
        helper.make_tensor_value_info("a", t, list(a.shape)),
        helper.make_tensor_value_info("b", t, list(b.shape)),
    ] + [helper.make_tensor_value_info(n, TensorProto.FLOAT if n.endswith("s") else t, [])
         for n in names if n not in ("a", "b")]
    sess = ort_session([node], inputs, [helper.make_tensor_value_info("y", t, None)])
    sa, za, sb, zb, sy, zy = params
    feeds = {"a": a, "b": b, "as": np.array(sa, np.float32), "az": np.array(za, dtype),
             "bs": np.array(sb, np.float32), "bz": np.array(zb, dtype),
             "ys": np.array(sy, np.float32), "yz": np.array(zy, dtype)}
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("a_shape", "b_shape"),
                         [((3, 37), (3, 37)), ((2, 45), (1,)), ((1,), (2, 45)), ((2, 4, 19), (19,))])
def test_qadd_bytes_match_onnxruntime_qlinearadd(dtype, a_shape, b_shape) -> None:
    rng = np.random.default_rng(11)
    mismatches = total = 0
    for _ in range(40):
        a, b = random_q(rng, dtype, a_shape), random_q(rng, dtype, b_shape)
        scales = np.exp(rng.uniform(-6, 0, 3)).astype(np.float32)
        za, zb, zy = (int(v) for v in random_q(rng, dtype, (3,)))
        params = (scales[0], za, scales[1], zb, scales[2], zy)
        want = _ort_qlinear_add(dtype, a, b, params)
        got = qadd(a, params[0], za, b, params[2], zb, params[4], zy)
        ref = _expected(a, params[0], za, b, params[2], zb, params[4], zy)
        np.testing.assert_array_equal(got, ref)
        mismatches += int((got != want).sum())
        total += want.size
    assert total > 1000
    assert mismatches == 0


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros((2, 3), np.uint8), np.zeros((2, 4), np.uint8), "does not broadcast"),
        (np.zeros((2, 3), np.uint8), np.zeros((2, 3), np.int8), "dtype"),
        (np.zeros((0, 3), np.uint8), np.zeros((1,), np.uint8), "zero-size"),
        (np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), "uint8 or int8"),
    ],
)
def test_qadd_rejects_bad_operands(a, b, match) -> None:
    with pytest.raises(KernelError, match=match):
        qadd(a, 0.1, 0, b, 0.1, 0, 0.1, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a_zero_point": 300}, "a_zero_point = 300"),
        ({"y_scale": 0.0}, "y_scale = 0"),
        ({"b_scale": float("nan")}, "b_scale = nan"),
        ({"a_scale": 1e30, "y_scale": 1e-30}, "out of the fp32 range"),
    ],
)
def test_qadd_rejects_bad_quantisation_parameters(kwargs, match) -> None:
    args = {"a_scale": 0.1, "a_zero_point": 0, "b_scale": 0.1, "b_zero_point": 0,
            "y_scale": 0.1, "y_zero_point": 0} | kwargs
    a = np.zeros(4, np.uint8)
    with pytest.raises(KernelError, match=match):
        qadd(a, args["a_scale"], args["a_zero_point"], a, args["b_scale"], args["b_zero_point"],
             args["y_scale"], args["y_zero_point"])


def test_qadd_c_api_rejects_wrong_lengths_without_writing() -> None:
    p = ffi.new("onnxq_qadd_params*")
    p.outer, p.inner, p.qtype = 2, 8, lib.ONNXQ_U8
    p.a_bcast, p.b_bcast = lib.ONNXQ_BCAST_FULL, lib.ONNXQ_BCAST_INNER
    p.a_scale = p.b_scale = p.y_scale = 0.5
    p.qmin, p.qmax = 0, 255
    a = np.ones(16, np.uint8)
    b = np.ones(7, np.uint8)
    y = np.full(16, 7, np.uint8)
    status = lib.onnxq_qadd(p, ffi.from_buffer(a), 16, ffi.from_buffer(b), 7,
                            ffi.from_buffer(y, require_writable=True), 16)
    assert status == lib.ONNXQ_E_SHAPE
    assert "b has 7 elements, expected 8" in ffi.string(lib.onnxq_last_error()).decode()
    assert np.all(y == 7)
    p.b_bcast = 9
    assert lib.onnxq_qadd(p, ffi.from_buffer(a), 16, ffi.from_buffer(b), 7,
                          ffi.from_buffer(y, require_writable=True), 16) == lib.ONNXQ_E_ARG
