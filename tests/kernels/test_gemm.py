"""Native u8 x s8 GEMM against the numpy reference (and onnxruntime), on every ISA of this CPU."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxq.errors import KernelError
from onnxq.kernels import (
    ISAS,
    available_isas,
    gemm_u8s8,
    kernel_table,
    pack_gemm_weights,
    use_isa,
)
from onnxq.kernels import reference as ref
from onnxq.kernels.gemm import gemm_kernel_name
from onnxq.passes.uint8_twin import exact_on_onnxruntime

OUT_TYPES = [np.uint8, np.int8, np.float32, np.int32]
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _case(rng: np.random.Generator, m: int, k: int, n: int) -> dict[str, np.ndarray]:
    return {
        "a": rng.integers(0, 256, size=(m, k), dtype=np.uint8),
        "b": rng.integers(-128, 128, size=(k, n), dtype=np.int8),
        "bias": rng.integers(-20000, 20000, size=n, dtype=np.int32),
        "scale": rng.uniform(0.5, 2.0, size=n).astype(np.float32) / np.float32(k * 40),
        "bias_f": rng.uniform(-1, 1, size=n).astype(np.float32),
    }


def _check_all_outputs(c: dict[str, np.ndarray], a_zp: int, out_zp: dict[type, int]) -> None:
    packed = pack_gemm_weights(c["b"])
    for out in OUT_TYPES:
        kwargs = {
            "a_zero_point": a_zp, "bias": c["bias"], "scale": c["scale"], "out_dtype": out,
            "out_zero_point": out_zp.get(out, 0),
            "bias_f": c["bias_f"] if out is np.float32 else None,
        }
        got = gemm_u8s8(c["a"], packed, **kwargs)  # type: ignore[arg-type]
        want = ref.gemm_u8s8(c["a"], c["b"], **kwargs)  # type: ignore[arg-type]
        assert got.dtype == np.dtype(out) and got.shape == want.shape
        np.testing.assert_array_equal(got, want, err_msg=f"out_dtype={out.__name__}")


# K and N around the vector / tile widths (4, 16, 32, 64), M around the row steps (4..32).
EDGE_SHAPES = [
    (1, 1, 1), (1, 3, 17), (2, 4, 16), (5, 63, 31), (7, 64, 32), (8, 65, 33), (9, 127, 48),
    (31, 128, 15), (32, 129, 64), (33, 255, 65), (47, 27, 64), (64, 576, 64), (3, 1000, 7),
]


@pytest.mark.parametrize(("m", "k", "n"), EDGE_SHAPES)
def test_gemm_matches_reference_edge_shapes(
    isa: str, rng: np.random.Generator, m: int, k: int, n: int
) -> None:
    _check_all_outputs(_case(rng, m, k, n), a_zp=7, out_zp={np.uint8: 100, np.int8: -3})


@pytest.mark.parametrize(("m", "k", "n"), EDGE_SHAPES)
@pytest.mark.parametrize("last_byte", [127, 128], ids=["all-below-128", "one-128-last"])
def test_gemm_with_activations_below_128_matches_reference(
    isa: str, rng: np.random.Generator, m: int, k: int, n: int, last_byte: int
) -> None:
    """A below 128 (7-bit activations) takes AVX2's vpmaddubsw path, which cannot saturate there;
    one byte of 128, the very last, must send the whole call back to the int16 kernel."""
    c = _case(rng, m, k, n)
    c["a"] = c["a"] // 2
    c["a"][0, :2], c["b"][:2] = 127, -128  # the widest pair sum: 127 * -128 * 2
    c["a"][-1, -1] = last_byte
    _check_all_outputs(c, a_zp=64, out_zp={np.uint8: 100, np.int8: -3})


@pytest.mark.parametrize(("m", "k", "n"), [(7, 64, 32), (33, 255, 65), (64, 576, 64), (13, 1100, 40)])
@pytest.mark.parametrize("per_step", [1, 3, 40], ids=["one", "few", "many"])
def test_gemm_with_rare_activations_of_128_or_more_matches_reference(
    isa: str, rng: np.random.Generator, m: int, k: int, n: int, per_step: int
) -> None:
    """7-bit activations with rare outliers of 128..255 (a conv after a 7-bit calibrated ReLU):
    AVX2 runs them on vpmaddubsw with the top bits fixed up exactly, or, when a 6-row step has
    many (``many``), on the int16 path; both must match the reference bit for bit."""
    c = _case(rng, m, k, n)
    c["a"] = c["a"] // 2
    count = per_step * ((m + 5) // 6)
    rows, cols = rng.integers(0, m, count), rng.integers(0, k, count)
    c["a"][rows, cols] = rng.integers(128, 256, count)
    c["b"][cols[0]] = -128  # the extreme weight under an outlier
    _check_all_outputs(c, a_zp=64, out_zp={np.uint8: 100, np.int8: -3})


@pytest.mark.parametrize(("m", "k", "n"), [(1, 2, 3), (7, 64, 32), (33, 255, 65), (13, 1100, 40)])
@pytest.mark.parametrize(("lo", "hi", "small"), [(-64, 64, True), (-64, 63, True), (-65, 64, False),
                                                  (-64, 65, False)])  # fmt: skip
def test_gemm_with_weights_of_7_bits_matches_reference_at_the_limits(
    isa: str, rng: np.random.Generator, m: int, k: int, n: int, lo: int, hi: int, small: bool
) -> None:
    """Weights in [-64, 64] (reduce_range) let AVX2 run full 8-bit activations on vpmaddubsw:
    with A at 255 and a pair of weights at an end the pair sum is +-32640, inside int16. One
    weight of -65 or 65 pushes such a pair past int16 (-33150 / 33150) and must send the call to
    the exact paths; either way the bytes are the reference's."""
    c = _case(rng, m, k, n)
    c["b"] = rng.integers(-64, 65, size=(k, n), dtype=np.int8)
    c["a"][:, :2] = 255  # every row's first pair at the top of u8 ...
    c["b"][:2] = lo  # ... times the lower end in every column,
    c["b"][:2, -1] = hi  # the upper end in the last
    packed = pack_gemm_weights(c["b"])
    assert packed.small_weights is small
    _check_all_outputs(c, a_zp=201, out_zp={np.uint8: 100, np.int8: -3})


# Small K (1x1 convs with few input channels) against the column steps of the AVX-512 kernel
# (48 = three 16-column blocks, tails of one or two) and its 8-row steps.
SMALL_K_SHAPES = [
    (9, 16, 96), (17, 24, 144), (8, 16, 49), (15, 32, 33), (3, 3, 47), (25, 8, 100), (1, 24, 17),
]


@pytest.mark.parametrize(("m", "k", "n"), SMALL_K_SHAPES)
def test_gemm_matches_reference_small_k(
    isa: str, rng: np.random.Generator, m: int, k: int, n: int
) -> None:
    _check_all_outputs(_case(rng, m, k, n), a_zp=3, out_zp={np.uint8: 5, np.int8: -7})


@pytest.mark.parametrize(
    ("k", "kernel_isa"), [(1, "avx512vnni"), (16, "avx512vnni"), (32, "avx512vnni"), (33, "amx")]
)
def test_gemm_kernel_name_uses_avx512vnni_for_small_k_under_amx(k: int, kernel_isa: str) -> None:
    if "amx" not in available_isas():
        pytest.skip("this CPU lacks amx")
    with use_isa("amx"):
        assert gemm_kernel_name(k).endswith(f"__{kernel_isa}")
        assert gemm_kernel_name(k).startswith("onnxq_gemm_u8s8_ukernel_")


def test_gemm_kernel_name_is_best_kernel_of_active_isa_for_large_k(isa: str) -> None:
    rank = ISAS.index(isa)
    rows = [r for r in kernel_table() if r.op == "gemm_u8s8" and r.available]
    expected = next(r.name for r in rows if r.isa == "scalar" or ISAS.index(r.isa) <= rank)
    assert gemm_kernel_name(64) == expected
    with pytest.raises(KernelError, match="k: expected a positive integer, got 0"):
        gemm_kernel_name(0)


@pytest.mark.parametrize(("a_zp", "u8_zp", "s8_zp"), [(0, 0, -128), (128, 128, 0), (255, 255, 127)])
def test_gemm_matches_reference_zero_points(
    isa: str, rng: np.random.Generator, a_zp: int, u8_zp: int, s8_zp: int
) -> None:
    _check_all_outputs(_case(rng, 19, 70, 40), a_zp=a_zp, out_zp={np.uint8: u8_zp, np.int8: s8_zp})


@pytest.mark.parametrize("out", [np.uint8, np.int8])
@pytest.mark.parametrize("scale", [10.0, 1e30, 3e38])  # products past 2^31, and past fp32 (inf)
def test_gemm_saturates_both_ends_with_large_scale(
    isa: str, rng: np.random.Generator, out: type, scale: float
) -> None:
    c = _case(rng, 21, 50, 37)
    packed = pack_gemm_weights(c["b"])
    got = gemm_u8s8(c["a"], packed, a_zero_point=128, scale=scale, out_dtype=out)
    with np.errstate(over="ignore"):  # the fp32 products of scale 3e38 are inf
        want = ref.gemm_u8s8(c["a"], c["b"], a_zero_point=128, scale=scale, out_dtype=out)
    np.testing.assert_array_equal(got, want)
    info = np.iinfo(out)
    assert (got == info.min).sum() > 50 and (got == info.max).sum() > 50


def test_gemm_fused_relu6_clamp_limits_output(isa: str, rng: np.random.Generator) -> None:
    c = _case(rng, 33, 80, 50)
    packed = pack_gemm_weights(c["b"])
    kwargs = {"a_zero_point": 3, "scale": 0.05, "out_zero_point": 10, "qmin": 10, "qmax": 70}
    got = gemm_u8s8(c["a"], packed, **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got, ref.gemm_u8s8(c["a"], c["b"], **kwargs))  # type: ignore[arg-type]
    assert got.min() == 10 and got.max() == 70


def test_gemm_per_tensor_scale_and_no_bias(isa: str, rng: np.random.Generator) -> None:
    c = _case(rng, 10, 33, 20)
    packed = pack_gemm_weights(c["b"])
    got = gemm_u8s8(c["a"], packed, a_zero_point=1, scale=0.001, out_zero_point=128)
    want = ref.gemm_u8s8(c["a"], c["b"], a_zero_point=1, scale=0.001, out_zero_point=128)
    np.testing.assert_array_equal(got, want)


def test_gemm_int32_accumulator_wraps_like_reference(isa: str) -> None:
    k = 70000  # 255 * 127 * k > 2**31: the int32 sum wraps
    a = np.full((2, k), 255, np.uint8)
    b = np.full((k, 3), 127, np.int8)
    got = gemm_u8s8(a, pack_gemm_weights(b), out_dtype=np.int32)
    want = ref.gemm_u8s8(a, b, out_dtype=np.int32)
    assert int(want[0, 0]) == (255 * 127 * k + 2**31) % 2**32 - 2**31
    np.testing.assert_array_equal(got, want)


def test_gemm_packs_transposed_weights_and_strided_a(isa: str, rng: np.random.Generator) -> None:
    c = _case(rng, 12, 45, 30)
    wide = np.zeros((12, 60), np.uint8)
    wide[:, :45] = c["a"]
    packed_t = pack_gemm_weights(np.ascontiguousarray(c["b"].T), transposed=True)
    got = gemm_u8s8(wide[:, :45], packed_t, scale=c["scale"], bias=c["bias"])
    np.testing.assert_array_equal(got, ref.gemm_u8s8(c["a"], c["b"], scale=c["scale"], bias=c["bias"]))


@pytest.mark.parametrize(("m", "k", "pad"), [(70, 100, 28), (96, 100, 30), (33, 64, 0), (65, 1, 63)])
def test_gemm_ignores_garbage_between_strided_a_rows(
    isa: str, rng: np.random.Generator, m: int, k: int, pad: int
) -> None:
    c = _case(rng, m, k, 40)
    wide = rng.integers(0, 256, size=(m, k + pad), dtype=np.uint8)  # garbage past column k
    wide[:, :k] = c["a"]
    got = gemm_u8s8(wide[:, :k], pack_gemm_weights(c["b"]), a_zero_point=9, out_dtype=np.int32)
    np.testing.assert_array_equal(got, ref.gemm_u8s8(c["a"], c["b"], a_zero_point=9, out_dtype=np.int32))


@st.composite
def shapes(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    return (
        draw(st.integers(1, 70)), draw(st.integers(1, 300)), draw(st.integers(1, 80)),
        draw(st.integers(0, 255)), draw(st.integers(0, 2**31)),
    )


@SETTINGS
@given(case=shapes())
def test_gemm_matches_reference_random_shapes(isa: str, case: tuple[int, int, int, int, int]) -> None:
    m, k, n, a_zp, seed = case
    _check_all_outputs(_case(np.random.default_rng(seed), m, k, n), a_zp, {np.uint8: a_zp})


def test_gemm_matches_onnxruntime_qlinearmatmul(rng: np.random.Generator) -> None:
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    m, k, n = 50, 200, 70
    a = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    b = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
    a_s, b_s, y_s = np.float32(0.02), rng.uniform(0.001, 0.01, n).astype(np.float32), np.float32(0.3)
    a_zp, y_zp = 131, 117
    inits = {
        "as": np.array(a_s), "az": np.array(a_zp, np.uint8), "b": b, "bs": b_s,
        "bz": np.zeros(n, np.int8), "ys": np.array(y_s), "yz": np.array(y_zp, np.uint8),
    }
    node = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [m, n])],
        [numpy_helper.from_array(v, name) for name, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    exact = exact_on_onnxruntime(model)  # the uint8 twin where onnxruntime's u8s8 saturates
    session = ort.InferenceSession(exact.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"a": a})
    scale = (a_s * b_s) / y_s  # fp32, in onnxruntime's order
    got = gemm_u8s8(a, pack_gemm_weights(b), a_zero_point=a_zp, scale=scale, out_zero_point=y_zp)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a_zero_point": 256}, "gemm: a_zero_point=256, expected 0..255"),
        ({"out_zero_point": -1}, "gemm: out_zero_point=-1, expected 0..255"),
        ({"qmin": 10, "qmax": 5}, r"gemm: clamp \[10, 5\] is not inside \[0, 255\] or empty"),
        ({"scale": np.ones(3, np.float32)}, "gemm: scale has 3 values, expected 1 or n=5"),
        ({"scale": float("inf")}, r"gemm: scale\[0\]=inf, expected finite and >= 0"),
        ({"scale": None}, "scale: required for out_dtype uint8"),
        ({"bias": np.zeros(4, np.int32)}, "bias: expected 5 values, got 4"),
        ({"bias": np.zeros(5, np.int64)}, "bias: expected dtype int32, got int64"),
        ({"out_dtype": np.int16}, "out_dtype: expected uint8, int8, float32 or int32"),
        ({"bias_f": np.zeros(5, np.float32)}, "bias_f: only for out_dtype float32"),
    ],
)
def test_gemm_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    packed = pack_gemm_weights(np.ones((4, 5), np.int8))
    args: dict[str, object] = {"scale": 0.1}
    args.update(kwargs)
    with pytest.raises(KernelError, match=match):
        gemm_u8s8(np.zeros((3, 4), np.uint8), packed, **args)  # type: ignore[arg-type]


def test_gemm_rejects_shape_mismatch_and_zero_size() -> None:
    packed = pack_gemm_weights(np.ones((4, 5), np.int8))
    with pytest.raises(KernelError, match="a: has 3 columns, the packed weights have k=4"):
        gemm_u8s8(np.zeros((2, 3), np.uint8), packed, scale=1.0)
    with pytest.raises(KernelError, match="a: zero rows"):
        gemm_u8s8(np.zeros((0, 4), np.uint8), packed, scale=1.0)
    with pytest.raises(KernelError, match="a: expected a 2-D uint8 array, got int8"):
        gemm_u8s8(np.zeros((2, 4), np.int8), packed, scale=1.0)
    with pytest.raises(KernelError, match=r"b: zero-size weights of shape \(0, 5\)"):
        pack_gemm_weights(np.zeros((0, 5), np.int8))
    with pytest.raises(KernelError, match="b: expected a 2-D int8 array, got uint8"):
        pack_gemm_weights(np.zeros((3, 5), np.uint8))


def test_packed_weights_expose_column_sums(rng: np.random.Generator) -> None:
    b = rng.integers(-128, 128, size=(300, 37), dtype=np.int8)
    packed = pack_gemm_weights(b)
    assert (packed.k, packed.n) == (300, 37)
    np.testing.assert_array_equal(packed.column_sums(), b.astype(np.int32).sum(axis=0))


def test_gemm_f32_output_matches_onnxruntime_matmulintegertofloat(
    rng: np.random.Generator,
) -> None:
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    m, k, n = 37, 300, 50
    a = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    b = rng.integers(-128, 128, size=(k, n), dtype=np.int8)
    a_s, b_s = np.float32(0.0123), rng.uniform(0.001, 0.01, n).astype(np.float32)
    bias = rng.uniform(-1, 1, n).astype(np.float32)
    inits = {"b": b, "as": np.array(a_s), "bs": b_s, "az": np.array(117, np.uint8), "bias": bias}
    node = helper.make_node(
        "MatMulIntegerToFloat", ["a", "b", "as", "bs", "az", "", "bias"], ["y"],
        domain="com.microsoft",
    )
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(v, name) for name, v in inits.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        exact_on_onnxruntime(model).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    (want,) = session.run(None, {"a": a})
    got = gemm_u8s8(
        a, pack_gemm_weights(b), a_zero_point=117, out_dtype=np.float32, scale=a_s * b_s,
        bias_f=bias,
    )
    np.testing.assert_array_equal(got, want)
