"""Native dynamic-quantization matmul vs the numpy reference (every ISA present) and vs
onnxruntime's DynamicQuantizeLinear / DynamicQuantizeMatMul."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import F32, assert_same_bits, ort_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from onnxq.errors import KernelError
from onnxq.kernels import available_isas, use_isa
from onnxq.kernels.dynamic import dynamic_matmul, dynamic_quantize, pack_dynamic_weights
from onnxq.kernels.reference import dynamic as ref


def _problem(seed: int, m: int, k: int, n: int, kind: str = "normal"):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((m, k)) * rng.uniform(0.1, 10)).astype(F32)
    if kind == "positive":
        a = np.abs(a)  # zero point 0
    elif kind == "negative":
        a = -np.abs(a)  # zero point 255
    elif kind == "zeros":
        a = np.zeros((m, k), F32)  # scale 1
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    w[0, :] = 127 if n > 1 else w[0, :]
    ws = rng.uniform(1e-3, 0.1, n).astype(F32)
    bias = rng.standard_normal(n).astype(F32)
    return a, w, ws, bias


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("kind", ["normal", "positive", "negative", "zeros"])
@pytest.mark.parametrize(("m", "k", "n"), [(1, 1, 1), (3, 17, 5), (7, 64, 33), (13, 70, 48),
                                           (2, 129, 17)])
def test_dynamic_matmul_matches_reference_bitexact(isa, per_row, kind, m, k, n) -> None:
    a, w, ws, bias = _problem(m * 100 + k + n, m, k, n, kind)
    packed = pack_dynamic_weights(w, ws)
    for b in (None, bias):
        got = dynamic_matmul(a, packed, bias=b, per_row=per_row)
        assert_same_bits(got, ref.dynamic_matmul(a, w, ws, b, per_row=per_row))
    q, scale, zp = dynamic_quantize(a, per_row=per_row)
    rq, rscale, rzp = ref.dynamic_quantize(a, per_row=per_row)
    np.testing.assert_array_equal(q, rq)
    assert_same_bits(scale, rscale)
    np.testing.assert_array_equal(zp, rzp)
    expected_zp = {"positive": 0, "negative": 255, "zeros": 0}.get(kind)
    if expected_zp is not None:
        assert np.all(zp == expected_zp)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 9), k=st.integers(1, 150), n=st.integers(1, 70), per_row=st.booleans(),
       seed=st.integers(0, 2**31))
def test_dynamic_matmul_matches_reference_on_random_shapes(isa, m, k, n, per_row, seed) -> None:
    a, w, ws, bias = _problem(seed, m, k, n)
    got = dynamic_matmul(a, pack_dynamic_weights(w, ws), bias=bias, per_row=per_row)
    assert_same_bits(got, ref.dynamic_matmul(a, w, ws, bias, per_row=per_row))


def test_dynamic_quantize_saturates_and_rounds_half_to_even() -> None:
    # range [-1, 254]: scale 1, zero point 1; 2.5 -> 2 + 1, 3.5 -> 4 + 1
    a = np.array([[-1.0, 254.0, 2.5, 3.5, 0.0]], F32)
    q, scale, zp = dynamic_quantize(a)
    assert scale[0] == F32(1.0) and zp[0] == 1
    np.testing.assert_array_equal(q, [[0, 255, 3, 5, 1]])


def test_dynamic_matmul_bits_match_onnxruntime_dynamicquantizematmul() -> None:
    vi = helper.make_tensor_value_info
    mismatches = total = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        m, k, n = (int(v) for v in rng.integers(1, 40, 3))
        a, w, ws, bias = _problem(seed, m, k, n, ["normal", "positive", "negative"][seed % 3])
        node = helper.make_node("DynamicQuantizeMatMul", ["a", "b", "bs", "", "bias"], ["y"],
                                domain="com.microsoft")
        sess = ort_session([node], [vi("a", TensorProto.FLOAT, [m, k]), vi("bs", TensorProto.FLOAT, [n]),
                                    vi("bias", TensorProto.FLOAT, [n])],
                           [vi("y", TensorProto.FLOAT, None)],
                           initializers=[numpy_helper.from_array(np.ascontiguousarray(w.T), "b")])
        want = sess.run(None, {"a": a, "bs": ws, "bias": bias})[0]
        got = dynamic_matmul(a, pack_dynamic_weights(w, ws), bias=bias)
        mismatches += int((got.view(np.int32) != want.view(np.int32)).sum())
        total += want.size
        node = helper.make_node("DynamicQuantizeLinear", ["a"], ["q", "s", "z"])
        sess = ort_session([node], [vi("a", TensorProto.FLOAT, [m, k])],
                           [vi("q", TensorProto.UINT8, None), vi("s", TensorProto.FLOAT, None),
                            vi("z", TensorProto.UINT8, None)])
        q_ort, s_ort, z_ort = sess.run(None, {"a": a})
        q, s, z = dynamic_quantize(a)
        np.testing.assert_array_equal(q, q_ort)
        assert s[0] == s_ort and z[0] == z_ort
    assert total > 500
    assert mismatches == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: dynamic_matmul(np.zeros((2, 5), F32), p), "has 5 columns"),
        (lambda p: dynamic_matmul(np.zeros((0, 4), F32), p), "zero-size"),
        (lambda p: dynamic_matmul(np.zeros((2, 4), np.float64), p), "float32"),
        (lambda p: dynamic_matmul(np.full((2, 4), np.inf, F32), p), "expected finite values"),
        (lambda p: dynamic_matmul(np.zeros((2, 4), F32), p, bias=np.zeros(2, F32)),
         "bias: expected 3"),
        (lambda p: pack_dynamic_weights(np.zeros((3, 4), np.int8), [1.0, 2.0]), "w_scale"),
        (lambda p: pack_dynamic_weights(np.zeros((3, 4), np.int8), -1.0), "w_scale"),
        (lambda p: pack_dynamic_weights(np.zeros((3, 4), np.uint8), 1.0), "int8"),
    ],
)
def test_dynamic_matmul_rejects_bad_input(call, match) -> None:
    packed = pack_dynamic_weights(np.ones((3, 4), np.int8), 0.1)
    with pytest.raises(KernelError, match=match):
        call(packed)


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("bad", [np.nan, -np.nan, np.inf, -np.inf])
def test_non_finite_activations_are_rejected_by_native_and_reference(isa, per_row, bad) -> None:
    # Defined semantics: NaN (like +-Inf) anywhere in `a` is a KernelError, in the native kernels
    # (every ISA, every position, in the vector body and in the tails) and in the reference alike.
    a, w, ws, _ = _problem(9, 4, 37, 5)
    packed = pack_dynamic_weights(w, ws)
    for pos in [(0, 0), (1, 3), (2, 31), (3, 36)]:
        bad_a = a.copy()
        bad_a[pos] = bad
        with pytest.raises(KernelError, match="expected finite values"):
            dynamic_matmul(bad_a, packed, per_row=per_row)
        with pytest.raises(KernelError, match="expected finite values"):
            dynamic_quantize(bad_a, per_row=per_row)
        with pytest.raises(KernelError, match="expected finite values"):
            ref.dynamic_quantize(bad_a, per_row=per_row)
        with pytest.raises(KernelError, match="expected finite values"):
            ref.dynamic_matmul(bad_a, w, ws, per_row=per_row)


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize(
    "row", [[-3e38, 3e38, 0.0], [1e-45, 0.0, 0.0], [-1e-45, 1e-45, 0.0]], ids=["overflow", "tiny", "tiny2"]
)
def test_ranges_without_a_usable_scale_are_rejected_by_both(isa, per_row, row) -> None:
    # (hi - lo) / 255 overflowing to inf or underflowing to 0: no finite scale > 0 exists
    a = np.array([row, [0.0, 0.0, 0.0]], F32)
    with pytest.raises(KernelError, match="scale"):
        dynamic_quantize(a, per_row=per_row)
    with pytest.raises(KernelError, match="scale"):
        ref.dynamic_quantize(a, per_row=per_row)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.floats(width=32, allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e-45, 3e38]),
        min_size=1,
        max_size=80,
    ),
    cols=st.integers(1, 9),
    per_row=st.booleans(),
)
def test_native_and_reference_agree_on_any_input(isa, values, cols, per_row) -> None:
    # Same bits or the same refusal, for every float32 input (subnormals, huge, NaN, Inf, -0.0).
    rows = max(1, len(values) // cols)
    a = np.resize(np.array(values, F32), (rows, cols)).astype(F32)
    try:
        want = ref.dynamic_quantize(a, per_row=per_row)
    except KernelError:
        with pytest.raises(KernelError):
            dynamic_quantize(a, per_row=per_row)
        return
    q, scale, zp = dynamic_quantize(a, per_row=per_row)
    np.testing.assert_array_equal(q, want[0])
    assert_same_bits(scale, want[1])
    np.testing.assert_array_equal(zp, want[2])
    for name in available_isas():
        with use_isa(name):
            q2, s2, z2 = dynamic_quantize(a, per_row=per_row)
        np.testing.assert_array_equal(q2, q)
        assert_same_bits(s2, scale)
        np.testing.assert_array_equal(z2, zp)
