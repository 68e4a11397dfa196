"""Native quantized concat vs the numpy reference (every ISA present) and vs onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import DTYPES, F32, ZERO_POINTS, ort_session, random_q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from onnxq.errors import KernelError
from onnxq.kernels.concat import qconcat
from onnxq.kernels.reference.concat import qconcat as reference_qconcat
from onnxq.kernels.reference.concat import requant_table


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_qconcat_matches_reference_bitexact(isa, dtype, axis) -> None:
    rng = np.random.default_rng(axis + 4)
    base = [2, 3, 33]
    inputs, scales, zps = [], [], []
    for i, (extent, zp) in enumerate(zip((1, 5, 31), ZERO_POINTS[dtype], strict=True)):
        shape = list(base)
        shape[axis] = extent
        inputs.append(random_q(rng, dtype, tuple(shape)))
        scales.append(F32(0.01 * (i + 1)))
        zps.append(zp)
    y_zp = ZERO_POINTS[dtype][1]
    scales[1], zps[1] = F32(0.02), y_zp  # equal to the output: copied as is
    got = qconcat(inputs, scales, zps, F32(0.02), y_zp, axis=axis)
    want = reference_qconcat(inputs, scales, zps, F32(0.02), y_zp, axis=axis)
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.take(got, range(1, 6), axis=axis), inputs[1])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    outer=st.integers(1, 4), inner=st.integers(1, 70),
    extents=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    signed=st.booleans(), seed=st.integers(0, 2**31),
)
def test_qconcat_matches_reference_on_random_shapes(isa, outer, inner, extents, signed,
                                                    seed) -> None:
    dtype = np.int8 if signed else np.uint8
    rng = np.random.default_rng(seed)
    inputs = [random_q(rng, dtype, (outer, e, inner)) for e in extents]
    scales = [F32(v) for v in np.exp(rng.uniform(-5, 1, len(extents)))]
    zps = [int(v) for v in random_q(rng, dtype, (len(extents),))]
    y_scale, y_zp = F32(np.exp(rng.uniform(-5, 1))), int(random_q(rng, dtype, ()))
    np.testing.assert_array_equal(qconcat(inputs, scales, zps, y_scale, y_zp, axis=1),
                                  reference_qconcat(inputs, scales, zps, y_scale, y_zp, axis=1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_requant_table_saturates_both_ends(dtype) -> None:
    info = np.iinfo(dtype)
    mid = 0 if dtype == np.int8 else 128
    table = requant_table(dtype, 1.0, mid, 0.01, mid)
    codes = np.arange(256, dtype=np.uint8).view(dtype).astype(int)
    assert np.all(table[codes > mid + 1] == info.max)
    assert np.all(table[codes < mid - 1] == info.min)
    assert table[np.flatnonzero(codes == mid)[0]] == mid


def _ort_concat(dtype, inputs, scales, zps, y_scale, y_zp, axis) -> np.ndarray:
    t = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    names = ["ys", "yz"]
    value_infos = [helper.make_tensor_value_info("ys", TensorProto.FLOAT, []),
                   helper.make_tensor_value_info("yz", t, [])]
    feeds = {"ys": np.array(y_scale, F32), "yz": np.array(y_zp, dtype)}
    for i, (x, s, z) in enumerate(zip(inputs, scales, zps, strict=True)):
        names += [f"x{i}", f"s{i}", f"z{i}"]
        value_infos += [helper.make_tensor_value_info(f"x{i}", t, list(x.shape)),
                        helper.make_tensor_value_info(f"s{i}", TensorProto.FLOAT, []),
                        helper.make_tensor_value_info(f"z{i}", t, [])]
        feeds |= {f"x{i}": x, f"s{i}": np.array(s, F32), f"z{i}": np.array(z, dtype)}
    node = helper.make_node("QLinearConcat", names, ["y"], domain="com.microsoft", axis=axis)
    sess = ort_session([node], value_infos, [helper.make_tensor_value_info("y", t, None)])
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_qconcat_bytes_match_onnxruntime_qlinearconcat(dtype) -> None:
    rng = np.random.default_rng(2)
    mismatches = total = 0
    for trial in range(20):
        inputs = [random_q(rng, dtype, (2, int(rng.integers(1, 6)), 4, 9)) for _ in range(3)]
        scales = [F32(v) for v in np.exp(rng.uniform(-5, 0, 3))]
        zps = [int(v) for v in random_q(rng, dtype, (3,))]
        y_scale, y_zp = F32(np.exp(rng.uniform(-5, 0))), int(random_q(rng, dtype, ()))
        if trial % 3 == 0:
            scales[0], zps[0] = y_scale, y_zp
        want = _ort_concat(dtype, inputs, scales, zps, y_scale, y_zp, axis=1)
        got = qconcat(inputs, scales, zps, y_scale, y_zp, axis=1)
        mismatches += int((got != want).sum())
        total += want.size
    assert total > 2000
    assert mismatches == 0


@pytest.mark.parametrize(
    ("inputs", "kwargs", "match"),
    [
        ([np.zeros((2, 3), np.uint8), np.zeros((3, 3), np.uint8)], {"axis": 1}, "does not match"),
        ([np.zeros((2, 3), np.uint8), np.zeros((2, 3), np.int8)], {}, "dtype"),
        ([np.zeros((2, 0), np.uint8), np.zeros((2, 3), np.uint8)], {}, "zero-size"),
        ([np.zeros((2, 3), np.uint8)], {"axis": 2}, "out of range"),
        ([np.zeros((2, 3), np.uint8)], {"y_zero_point": -1}, "y_zero_point = -1"),
        ([np.zeros((2, 3), np.uint8)], {"y_scale": float("inf")}, "y_scale = inf"),
        ([], {}, "at least one"),
    ],
)
def test_qconcat_rejects_bad_input(inputs, kwargs, match) -> None:
    args = {"y_scale": 0.1, "y_zero_point": 0, "axis": 0} | kwargs
    with pytest.raises(KernelError, match=match):
        qconcat(inputs, [0.1] * len(inputs), [0] * len(inputs), args["y_scale"],
                args["y_zero_point"], axis=args["axis"])
