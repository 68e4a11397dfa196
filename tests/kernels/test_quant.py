"""Native quantize / dequantize against the numpy reference, on every ISA of this CPU."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxq.errors import KernelError
from onnxq.kernels import dequantize, quantize
from onnxq.kernels import reference as ref

RANGES = {np.uint8: (0, 255), np.int8: (-128, 127)}
EDGE_ZPS = {np.uint8: (0, 128, 255), np.int8: (-128, 0, 127)}
SLOW_OK = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _values(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Random values spanning past both saturation ends, with exact halves, NaN and infinities."""
    x = rng.uniform(-400, 400, size=shape).astype(np.float32) * np.float32(scale)
    flat = x.reshape(-1)
    idx = rng.permutation(flat.size)
    k = max(1, flat.size // 8)
    flat[idx[:k]] = (rng.integers(-300, 300, size=k) + np.float32(0.5)) * np.float32(scale)
    if flat.size > 8:
        flat[idx[k]] = np.nan
        flat[idx[k + 1]] = np.inf
        flat[idx[k + 2]] = -np.inf
        flat[idx[k + 3]] = -0.0
    return x


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("size", [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4099])
def test_quantize_matches_reference_per_tensor_sizes(
    isa: str, rng: np.random.Generator, dtype: type, size: int
) -> None:
    for zp in EDGE_ZPS[dtype]:
        x = _values(rng, (size,), 0.05)
        got = quantize(x, 0.05, zp, dtype=dtype)
        want = ref.quantize(x, 0.05, zp, dtype=dtype)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(
            dequantize(got, 0.05, zp), ref.dequantize(got, 0.05, zp)
        )


def test_quantize_rounds_half_to_even_and_saturates(isa: str) -> None:
    x = np.array([1.25, 1.75, -1000.0, 1000.0, np.nan, -0.75, 0.25, 0.75], dtype=np.float32)
    np.testing.assert_array_equal(
        quantize(x, 0.5, 128), np.array([130, 132, 0, 255, 0, 126, 128, 130], dtype=np.uint8)
    )
    np.testing.assert_array_equal(
        quantize(x, 0.5, -128, dtype=np.int8),
        np.array([-126, -124, -128, 127, -128, -128, -128, -126], dtype=np.int8),
    )


def test_quantize_keeps_shape_of_scalars_and_views(isa: str) -> None:
    assert quantize(np.float32(2.5), 1.0, 0).shape == ()
    assert quantize(np.float32(2.5), 1.0, 0)[()] == 2
    assert dequantize(np.uint8(7), 0.5, 1).shape == ()
    x = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::-2]  # non-contiguous view
    np.testing.assert_array_equal(quantize(x, 0.5, 3), ref.quantize(x, 0.5, 3))


def test_dequantize_exact_values_int8(isa: str) -> None:
    q = np.array([-128, -1, 0, 5, 127], dtype=np.int8)
    np.testing.assert_array_equal(
        dequantize(q, 0.5, 5), np.array([-66.5, -3.0, -2.5, 0.0, 61.0], dtype=np.float32)
    )


@st.composite
def per_channel_cases(draw: st.DrawFn) -> tuple[tuple[int, ...], int, type, int]:
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    axis = draw(st.integers(-ndim, ndim - 1))
    dtype = draw(st.sampled_from([np.uint8, np.int8]))
    seed = draw(st.integers(0, 2**31))
    return shape, axis, dtype, seed


@SLOW_OK
@given(case=per_channel_cases())
def test_quantize_matches_reference_per_channel_random_shapes(
    isa: str, case: tuple[tuple[int, ...], int, type, int]
) -> None:
    shape, axis, dtype, seed = case
    rng = np.random.default_rng(seed)
    channels = shape[axis]
    scale = rng.uniform(0.001, 1.0, size=channels).astype(np.float32)
    lo, hi = RANGES[dtype]
    zp = rng.integers(lo, hi + 1, size=channels).astype(np.int32)
    x = _values(rng, shape, float(scale.mean()))
    got = quantize(x, scale, zp, axis=axis, dtype=dtype)
    np.testing.assert_array_equal(got, ref.quantize(x, scale, zp, axis=axis, dtype=dtype))
    np.testing.assert_array_equal(
        dequantize(got, scale, zp, axis=axis), ref.dequantize(got, scale, zp, axis=axis)
    )


def test_quantize_matches_onnxruntime_quantizelinear() -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    x = _values(rng, (3, 5, 7), 0.02)
    x[np.isnan(x)] = 0.0  # NaN handling is not specified by ONNX
    scale = rng.uniform(0.01, 0.03, size=5).astype(np.float32)
    zp = rng.integers(-128, 128, size=5).astype(np.int8)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1)
    graph = helper.make_graph(
        [node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.INT8, list(x.shape))],
        [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zp, "z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": x})
    assert onnx is not None
    np.testing.assert_array_equal(quantize(x, scale, zp, axis=1, dtype=np.int8), want)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0.0}, r"scale\[0\] = 0, expected a finite value > 0"),
        ({"scale": float("nan")}, r"scale\[0\] = nan"),
        ({"zero_point": 256}, r"zero_point\[0\] = 256, expected 0..255"),
        ({"zero_point": -1}, r"zero_point\[0\] = -1, expected 0..255"),
        ({"scale": np.ones(2, np.float32)}, r"scale: expected 1 value \(per tensor\), got 2"),
        ({"dtype": np.int16}, r"dtype: expected uint8 or int8"),
        ({"axis": 3}, r"axis: 3 is out of range for a 2-D tensor"),
        ({"axis": 1, "zero_point": np.zeros(2, np.int32)}, r"scale: expected 3 values \(axis 1\)"),
    ],
)
def test_quantize_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"scale": 0.1, "zero_point": 0, "dtype": np.uint8}
    args.update(kwargs)
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(KernelError, match=match):
        quantize(x, args.pop("scale"), args.pop("zero_point"), **args)  # type: ignore[arg-type]


def test_quantize_rejects_zero_size_and_wrong_dtype() -> None:
    with pytest.raises(KernelError, match=r"x: zero-size tensor of shape \(0, 3\)"):
        quantize(np.zeros((0, 3), np.float32), 0.1, 0)
    with pytest.raises(KernelError, match="x: expected dtype float32, got float64"):
        quantize(np.zeros(3), 0.1, 0)
    with pytest.raises(KernelError, match="dtype: expected uint8 or int8, got int32"):
        dequantize(np.zeros(3, np.int32), 0.1, 0)
